// abode-allocator's command line: bad values are refused before anything starts, naming the flag, and an
// address it cannot listen on is named with the system's reason.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "integration/allocator_process.h"
#include "integration/cluster_harness.h"
#include "test-support/temp_dir.h"

namespace abode::integration {
namespace {

using test_support::TempDir;

TEST(AllocatorFlagsTest, BadSnapshotPacingIsRefusedNamingTheFlag) {
  TempDir dir;
  for (const std::string bad : {"nan", "inf", "-1", "half"}) {
    const ProcessResult r = RunProcess({ABODE_ALLOCATOR_BIN, "--listen", "127.0.0.1:0", "--data-dir",
                                        dir.path() + "/data", "--snapshot-log-ratio", bad});
    EXPECT_NE(r.exit_code, 0) << bad;
    EXPECT_NE(r.err.find("--snapshot-log-ratio"), std::string::npos) << bad << ": " << r.err;
  }
  const ProcessResult r = RunProcess({ABODE_ALLOCATOR_BIN, "--listen", "127.0.0.1:0", "--data-dir",
                                      dir.path() + "/data", "--snapshot-threshold", "many"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--snapshot-threshold"), std::string::npos) << r.err;
}

TEST(AllocatorFlagsTest, AReadNiceOutsideZeroToNineteenIsRefusedNamingTheFlag) {
  TempDir dir;
  for (const std::string bad : {"-1", "20", "low"}) {
    const ProcessResult r = RunProcess({ABODE_ALLOCATOR_BIN, "--listen", "127.0.0.1:0", "--data-dir",
                                        dir.path() + "/data", "--read-nice", bad});
    EXPECT_NE(r.exit_code, 0) << bad;
    EXPECT_NE(r.err.find("--read-nice"), std::string::npos) << bad << ": " << r.err;
  }
}

TEST(AllocatorFlagsTest, AReadSchedOtherThanIdleOrNiceIsRefusedNamingTheFlag) {
  TempDir dir;
  for (const std::string bad : {"batch", "IDLE", ""}) {
    const ProcessResult r = RunProcess({ABODE_ALLOCATOR_BIN, "--listen", "127.0.0.1:0", "--data-dir",
                                        dir.path() + "/data", "--read-sched", bad});
    EXPECT_NE(r.exit_code, 0) << bad;
    EXPECT_NE(r.err.find("--read-sched"), std::string::npos) << bad << ": " << r.err;
  }
}

TEST(AllocatorFlagsTest, AReadCgroupTheThreadsCannotJoinIsRefusedNamingTheFlag) {
  TempDir dir;
  for (const bool check_only : {false, true}) {
    std::vector<std::string> args = {ABODE_ALLOCATOR_BIN, "--listen", "127.0.0.1:0", "--data-dir",
                                     dir.path() + "/data", "--read-cgroup", dir.path() + "/no-such-cgroup"};
    if (check_only) args.push_back("--check-config");
    const ProcessResult r = RunProcess(args);
    EXPECT_EQ(r.exit_code, 2) << check_only;
    EXPECT_NE(r.err.find("--read-cgroup"), std::string::npos) << check_only << ": " << r.err;
  }
}

TEST(AllocatorFlagsTest, AMetricsAddressItCannotServeIsRefusedNamingTheFlag) {
  TempDir dir;
  for (const std::string bad : {"localhost:9464", "[::1]:9464", "127.0.0.1"}) {
    const ProcessResult r = RunProcess({ABODE_ALLOCATOR_BIN, "--listen", "127.0.0.1:0", "--data-dir",
                                        dir.path() + "/data", "--metrics-listen", bad});
    EXPECT_EQ(r.exit_code, 1) << bad;
    EXPECT_NE(r.err.find("--metrics-listen"), std::string::npos) << bad << ": " << r.err;
  }
}

TEST(AllocatorFlagsTest, ARaftPortInUseIsNamedWithTheReason) {
  // Holds a listening socket on a loopback port for the allocator to collide with.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  const std::string taken = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));

  TempDir dir;
  const std::string peers = "1=" + taken + "@127.0.0.1:1,2=127.0.0.1:2@127.0.0.1:3";
  const ProcessResult r = RunProcess({ABODE_ALLOCATOR_BIN, "--id", "1", "--listen", "127.0.0.1:0", "--raft-listen",
                                      taken, "--peers", peers, "--data-dir", dir.path() + "/data"});
  ::close(fd);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("raft-listen: cannot listen on " + taken + ": Address already in use"), std::string::npos)
      << r.err;
}

}  // namespace
}  // namespace abode::integration

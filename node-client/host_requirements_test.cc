#include "host_requirements.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <string>

#include "test-support/temp_dir.h"

namespace abode::node {
namespace {

// ProcSysctls under another root: what --sysctl-dir points at when the host's /proc/sys/net is mounted there.
TEST(ProcSysctlsTest, ReadsAndWritesUnderItsRoot) {
  test_support::TempDir dir("sysctls");
  ASSERT_EQ(::mkdir(dir.File("net").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(dir.File("net/ipv4").c_str(), 0755), 0);
  std::ofstream(dir.File("net/ipv4/ip_forward")) << "0\n";
  ProcSysctls sysctls(dir.path());
  absl::StatusOr<std::string> value = sysctls.Read("net.ipv4.ip_forward");
  ASSERT_TRUE(value.ok()) << value.status();
  EXPECT_EQ(*value, "0");
  ASSERT_TRUE(sysctls.Write("net.ipv4.ip_forward", "1").ok());
  std::ifstream in(dir.File("net/ipv4/ip_forward"));
  std::string written;
  std::getline(in, written);
  EXPECT_EQ(written, "1");
  EXPECT_EQ(sysctls.Read("net.bridge.bridge-nf-call-iptables").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace abode::node

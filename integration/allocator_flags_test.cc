// abode-allocator's command line: bad values are refused before anything starts, naming the flag.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "integration/allocator_process.h"
#include "integration/cluster_harness.h"

namespace abode::integration {
namespace {

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

}  // namespace
}  // namespace abode::integration

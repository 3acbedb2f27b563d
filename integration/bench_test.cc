// abode-bench, whose figures the README quotes, against a real allocator: the operations it reports are
// the allocations the allocator holds afterwards, churn gives back what it takes, and bad flags are refused.
#include <string>
#include <vector>

#include <grpcpp/create_channel.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "abode/v1/pools.grpc.pb.h"
#include "integration/allocator_process.h"
#include "integration/cluster_harness.h"
#include "test-support/temp_dir.h"

namespace abode::integration {
namespace {

using test_support::TempDir;

class BenchTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(server_.Start().ok()) << server_.log_path(); }

  // Runs abode-bench against the server and returns its last output line as JSON.
  nlohmann::json RunBench(std::vector<std::string> args) {
    args.insert(args.begin(), {ABODE_BENCH_BIN, "--server", server_.address()});
    const ProcessResult r = RunProcess(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    const size_t start = r.out.rfind('\n', r.out.size() > 1 ? r.out.size() - 2 : 0);
    const std::string last = r.out.substr(start == std::string::npos ? 0 : start + 1);
    auto j = nlohmann::json::parse(last, nullptr, /*allow_exceptions=*/false);
    EXPECT_FALSE(j.is_discarded()) << r.out;
    return j;
  }

  uint64_t Used(const std::string& pool) {
    auto stub = v1::Pools::NewStub(grpc::CreateChannel(server_.address(), grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::GetPoolRequest req;
    req.set_name(pool);
    v1::Pool out;
    const grpc::Status s = stub->GetPool(&ctx, req, &out);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return out.used();
  }

  TempDir dir_;
  AllocatorProcess server_{ABODE_ALLOCATOR_BIN, dir_.path() + "/data"};
};

TEST_F(BenchTest, CountedRunReportsExactlyTheAllocationsThePoolHolds) {
  const auto j = RunBench({"--pool", "counted", "--create-cidr", "10.9.0.0/16", "--concurrency", "16", "--count",
                           "3000"});
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(j["ops"], 3000);
  EXPECT_EQ(j["errors"], 0);
  EXPECT_EQ(j["channels"], 1);
  EXPECT_EQ(j["grpc_retries"], false);
  EXPECT_GT(j["ops_per_sec"].get<double>(), 0);
  EXPECT_LE(j["p50_ms"].get<double>(), j["p99_ms"].get<double>());
  EXPECT_LE(j["p99_ms"].get<double>(), j["p999_ms"].get<double>());
  EXPECT_EQ(Used("counted"), 3000u);
}

TEST_F(BenchTest, ChurnOverSeveralConnectionsGivesBackEveryAddress) {
  const auto j = RunBench({"--pool", "churn", "--create-cidr", "10.10.0.0/24", "--mode", "churn", "--concurrency",
                           "8", "--channels", "4", "--grpc-retries", "--warmup", "0s", "--duration", "1s"});
  ASSERT_TRUE(j.is_object());
  EXPECT_GT(j["ops"].get<int>(), 0);
  EXPECT_EQ(j["errors"], 0);
  EXPECT_EQ(j["channels"], 4);
  EXPECT_EQ(j["grpc_retries"], true);
  EXPECT_EQ(Used("churn"), 0u);
}

// --concurrency 0: the process is a lister alone (beside a process of writers, in bench-lister-pair.sh).
TEST_F(BenchTest, AListerAloneListsThePoolAgainAndAgain) {
  ASSERT_EQ(RunBench({"--pool", "listed", "--create-cidr", "10.11.0.0/24", "--concurrency", "4", "--count", "40"})["ops"],
            40);
  const auto j = RunBench({"--concurrency", "0", "--list-pool", "listed", "--list-page-size", "7", "--list-sched",
                           "nice", "--warmup", "0s", "--duration", "1s"});
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(j["ops"], 0);
  EXPECT_EQ(j["list_errors"], 0);
  EXPECT_GE(j["whole_listings"].get<int>(), 1);
  EXPECT_GT(j["listed_per_sec"].get<double>(), 0);
  EXPECT_EQ(Used("listed"), 40u);
}

TEST_F(BenchTest, BadFlagsAreRefusedWithTheirName) {
  const ProcessResult r = RunProcess({ABODE_BENCH_BIN, "--server", server_.address(), "--channels", "0"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--channels"), std::string::npos) << r.err;
  const ProcessResult d = RunProcess({ABODE_BENCH_BIN, "--server", server_.address(), "--duration", "soon"});
  EXPECT_NE(d.exit_code, 0);
  EXPECT_NE(d.err.find("--duration"), std::string::npos) << d.err;
  const ProcessResult alone = RunProcess({ABODE_BENCH_BIN, "--server", server_.address(), "--concurrency", "0"});
  EXPECT_NE(alone.exit_code, 0);
  EXPECT_NE(alone.err.find("--list-pool"), std::string::npos) << alone.err;
  const ProcessResult sched =
      RunProcess({ABODE_BENCH_BIN, "--server", server_.address(), "--list-pool", "p", "--list-sched", "low"});
  EXPECT_NE(sched.exit_code, 0);
  EXPECT_NE(sched.err.find("--list-sched"), std::string::npos) << sched.err;
}

}  // namespace
}  // namespace abode::integration

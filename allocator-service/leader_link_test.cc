// GrpcLeaderLink against a leader that takes calls and never answers them (a leader cut off mid-call, a
// frozen process): every call gives up before its caller's deadline, with UNAVAILABLE.
#include "allocator-service/leader_link.h"

#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <vector>

#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <gtest/gtest.h>

#include "abode/v1/cluster.grpc.pb.h"

namespace abode::allocator {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// A Replica service that holds every call until the test ends.
class SilentLeader final : public v1::Replica::CallbackService {
 public:
  grpc::ServerUnaryReactor* Forward(grpc::CallbackServerContext* ctx, const v1::ForwardRequest*,
                                    v1::ForwardResponse*) override {
    return Hold(ctx);
  }
  grpc::ServerUnaryReactor* ReadIndex(grpc::CallbackServerContext* ctx, const v1::ReadIndexRequest*,
                                      v1::ReadIndexResponse*) override {
    return Hold(ctx);
  }
  int held() {
    std::lock_guard<std::mutex> lock(mu_);
    return static_cast<int>(held_.size());
  }
  void ReleaseAll() {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto* r : held_) r->Finish(grpc::Status(grpc::StatusCode::CANCELLED, "test over"));
    held_.clear();
  }

 private:
  grpc::ServerUnaryReactor* Hold(grpc::CallbackServerContext* ctx) {
    std::lock_guard<std::mutex> lock(mu_);
    held_.push_back(ctx->DefaultReactor());
    return held_.back();
  }
  std::mutex mu_;
  std::vector<grpc::ServerUnaryReactor*> held_;
};

class LeaderLinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&leader_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    address_ = "127.0.0.1:" + std::to_string(port_);
  }
  void TearDown() override {
    leader_.ReleaseAll();
    server_->Shutdown();
  }

  SilentLeader leader_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::string address_;
};

TEST_F(LeaderLinkTest, AForwardGivesUpBeforeTheCallersDeadlineWithUnavailable) {
  GrpcLeaderLink link(nullptr, /*timeout_ms=*/5000);
  std::promise<absl::Status> done;
  const Clock::time_point t0 = Clock::now();
  v1::Command cmd;
  link.Forward(address_, {cmd}, std::chrono::system_clock::now() + milliseconds(1000),
               [&done](absl::StatusOr<LeaderLink::Outcomes> outcomes) { done.set_value(outcomes.status()); });
  const absl::Status s = done.get_future().get();
  const auto waited = Clock::now() - t0;
  EXPECT_EQ(leader_.held(), 1) << "the call reached the leader";
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_NE(s.message().find(address_), std::string::npos) << s;
  EXPECT_LT(waited, milliseconds(1000)) << "the forward outlived its caller's deadline";
  EXPECT_GE(waited, milliseconds(800)) << "the forward gave up long before it had to";
}

TEST_F(LeaderLinkTest, AReadIndexGivesUpBeforeTheCallersDeadlineWithUnavailable) {
  GrpcLeaderLink link(nullptr, /*timeout_ms=*/5000);
  std::promise<absl::Status> done;
  const Clock::time_point t0 = Clock::now();
  link.ReadIndex(address_, std::chrono::system_clock::now() + milliseconds(600),
                 [&done](absl::StatusOr<uint64_t> index) { done.set_value(index.status()); });
  const absl::Status s = done.get_future().get();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_LT(Clock::now() - t0, milliseconds(600));
}

TEST_F(LeaderLinkTest, ACallerWithoutADeadlineWaitsTheForwardTimeout) {
  GrpcLeaderLink link(nullptr, /*timeout_ms=*/300);
  std::promise<absl::Status> done;
  const Clock::time_point t0 = Clock::now();
  link.ReadIndex(address_, kNoDeadline, [&done](absl::StatusOr<uint64_t> index) { done.set_value(index.status()); });
  const absl::Status s = done.get_future().get();
  const auto waited = Clock::now() - t0;
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_GE(waited, milliseconds(300));
  EXPECT_LT(waited, milliseconds(3000));
}

TEST(LeaderLinkDeadlineTest, EndsALittleBeforeTheCallerAndNeverAfterTheForwardTimeout) {
  GrpcLeaderLink link(nullptr, /*timeout_ms=*/5000);
  const auto now = std::chrono::system_clock::now();
  // Far deadlines and none: the forward timeout.
  const auto none = link.CallDeadline(kNoDeadline);
  const auto far = link.CallDeadline(now + milliseconds(60000));
  const auto later = std::chrono::system_clock::now();
  EXPECT_GE(none, now + milliseconds(5000));
  EXPECT_LE(none, later + milliseconds(5000));
  EXPECT_GE(far, now + milliseconds(5000));
  EXPECT_LE(far, later + milliseconds(5000));
  // A 3 s caller: 100 ms before its deadline.
  const auto three = now + milliseconds(3000);
  EXPECT_EQ(link.CallDeadline(three), three - milliseconds(100));
  // A 500 ms caller: a tenth of its time left before its deadline.
  const auto half = now + milliseconds(500);
  const auto d = link.CallDeadline(half);
  EXPECT_LT(d, half - milliseconds(40));
  EXPECT_GT(d, half - milliseconds(60));
  // A caller whose deadline passed: now.
  const auto passed = link.CallDeadline(now - milliseconds(10));
  EXPECT_GE(passed, now);
  EXPECT_LE(passed, std::chrono::system_clock::now());
}

}  // namespace
}  // namespace abode::allocator

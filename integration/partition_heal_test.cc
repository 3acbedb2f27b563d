// A follower cut off from the leader, while the leader keeps its quorum with the third member: calls to the
// follower fail UNAVAILABLE within their deadline during the cut, and it serves forwarded writes and
// linearizable reads again within 2 s of the heal, whatever the length of the cut. Each member runs in its
// own network namespace; the cut is made with nftables drops on the leader's side. The same for abode-node's
// assignment stream cut off from its allocator.
#include <algorithm>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "abode/v1/allocator.grpc.pb.h"
#include "integration/cluster_harness.h"
#include "integration/require_root.h"
#include "node-client/assignment_stream.h"
#include "test-support/eventually.h"

namespace abode::integration {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

// How long the leader and the follower cannot hear each other.
constexpr auto kCut = seconds(20);
// The client deadline of the calls made during the cut: shorter than the allocator's forward timeout (5 s).
constexpr int kCallDeadlineMs = 3000;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

TEST(ClusterPartitionTest, FollowerServesWithinTwoSecondsAfterItsCutFromTheLeaderHeals) {
  ABODE_REQUIRE_ROOT("the partition test needs root (network namespaces) in CI",
                     "needs root for network namespaces and nftables; runs in CI");
  ClusterOptions o;
  o.network_namespaces = true;
  auto h = ClusterHarness::Create(ABODE_ALLOCATOR_BIN, o);
  ASSERT_TRUE(h.ok()) << h.status();
  ClusterHarness& c = **h;
  ASSERT_TRUE(c.StartAll().ok());
  auto leader = c.WaitForLeader(seconds(30));
  ASSERT_TRUE(leader.ok()) << leader.status();
  const int l = *leader;
  const int f = (l + 1) % c.size();
  ASSERT_TRUE(CreatePool(c, l, "p", "10.14.0.0/16").ok());
  auto before = c.Status(f);
  ASSERT_TRUE(before.ok()) << before.status();

  // The follower's link to the leader is up and in use before the cut.
  v1::Allocation a;
  grpc::Status s = Allocate(c, f, "p", "warm", &a);
  ASSERT_TRUE(s.ok()) << s.error_message();
  v1::GetAllocationResponse got;
  s = GetByOwner(c, f, "warm", &got);
  ASSERT_TRUE(s.ok()) << s.error_message();

  ASSERT_TRUE(c.Cut(l, {f}).ok());
  // Writes and linearizable reads keep arriving at the follower; each fails UNAVAILABLE, never by running
  // out its deadline (a forward to the leader gives up before the caller's deadline).
  const Clock::time_point cut_at = Clock::now();
  int writes = 0;
  int reads = 0;
  while (Clock::now() - cut_at < kCut) {
    const std::string owner = "cut-" + std::to_string(writes++);
    const Clock::time_point t0 = Clock::now();
    s = Allocate(c, f, "p", owner, &a, kCallDeadlineMs);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE)
        << owner << " at " << Seconds(t0 - cut_at) << " s into the cut: " << s.error_message();
    ++reads;
    s = GetByOwner(c, f, "warm", &got, /*stale=*/false, kCallDeadlineMs);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE)
        << "read at " << Seconds(Clock::now() - cut_at) << " s into the cut: " << s.error_message();
    std::this_thread::sleep_for(milliseconds(100));
  }
  ASSERT_GT(writes, 5);

  ASSERT_TRUE(c.Heal(l).ok());
  const Clock::time_point healed_at = Clock::now();
  // The next forwarded write through the follower, then its next linearizable read.
  int attempt = 0;
  ASSERT_TRUE(test_support::Eventually(
      [&] { return (s = Allocate(c, f, "p", "after-" + std::to_string(attempt++), &a, 1000)).ok(); }, seconds(60)))
      << "no write through the follower: " << s.error_message();
  const Clock::time_point wrote_at = Clock::now();
  ASSERT_TRUE(test_support::Eventually(
      [&] { return (s = GetByOwner(c, f, "warm", &got, /*stale=*/false, 1000)).ok(); }, seconds(60)))
      << "no read through the follower: " << s.error_message();
  const Clock::time_point read_at = Clock::now();
  // Pre-vote keeps the leader that held its quorum: the heal is the moment the follower may serve again.
  auto after = c.Status(f);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->leader_id(), static_cast<uint64_t>(l + 1)) << "the leadership moved during the cut";
  EXPECT_EQ(after->term(), before->term()) << "an election took place during the cut";

  EXPECT_LT(wrote_at - healed_at, seconds(2))
      << "first forwarded write " << Seconds(wrote_at - healed_at) << " s after the heal";
  EXPECT_LT(read_at - healed_at, seconds(2))
      << "first linearizable read " << Seconds(read_at - healed_at) << " s after the heal";
  std::printf("after a %.0f s cut: first write %.3f s, first linearizable read %.3f s after the heal\n",
              Seconds(kCut), Seconds(wrote_at - healed_at), Seconds(read_at - healed_at));
}

// Takes the assignment stream's messages and applies nothing.
class CountingSink final : public node::AssignmentSink {
 public:
  std::vector<v1::AssignmentStatus> OnUpdate(const v1::WatchAssignmentsResponse& update) override {
    std::lock_guard<std::mutex> lock(mu_);
    revision_ = std::max(revision_, update.revision());
    return {};
  }
  std::vector<v1::AssignmentStatus> AllStatuses() override { return {}; }
  std::vector<v1::AssignmentStatus> OnLeaseRenewed() override { return {}; }
  uint64_t AppliedRevision() override {
    std::lock_guard<std::mutex> lock(mu_);
    return revision_;
  }

 private:
  std::mutex mu_;
  uint64_t revision_ = 0;
};

// Polls `done` every 20 ms for up to `limit`; returns when it became true (or the limit, when it never did).
template <typename Done>
Clock::time_point When(Done done, Clock::duration limit) {
  test_support::Eventually(done, limit, milliseconds(20));
  return Clock::now();
}

TEST(ClusterPartitionTest, NodeStreamComesBackWithinTwoSecondsAfterItsCutFromTheAllocatorHeals) {
  ABODE_REQUIRE_ROOT("the partition test needs root (network namespaces) in CI",
                     "needs root for network namespaces and nftables; runs in CI");
  ClusterOptions o;
  o.members = 1;
  o.network_namespaces = true;
  o.node_lease_ms = 3000;
  auto h = ClusterHarness::Create(ABODE_ALLOCATOR_BIN, o);
  ASSERT_TRUE(h.ok()) << h.status();
  ClusterHarness& c = **h;
  ASSERT_TRUE(c.StartAll().ok());
  ASSERT_TRUE(c.WaitForLeader(seconds(30)).ok());

  // abode-node's stream client with its default transport (keepalive, reconnect backoff).
  std::unique_ptr<node::WatchTransport> transport = node::NewGrpcWatchTransport();
  CountingSink sink;
  node::AssignmentStreamOptions options;
  options.registration.set_name("edge-1");
  options.endpoints = {c.grpc_address(0)};
  node::AssignmentStreamClient client(options, transport.get(), &sink);
  std::thread runner([&client] { client.Run(); });
  struct StopOnExit {
    node::AssignmentStreamClient& client;
    std::thread& runner;
    ~StopOnExit() {
      client.Stop();
      runner.join();
    }
  } stop{client, runner};
  When([&] { return client.streaming(); }, seconds(30));
  ASSERT_TRUE(client.streaming());

  ASSERT_TRUE(c.CutFromTestHost(0).ok());
  const Clock::time_point cut_at = Clock::now();
  // Heartbeats go unanswered: the client gives the stream up during the cut.
  When([&] { return !client.streaming(); }, kCut);
  EXPECT_FALSE(client.streaming()) << "the stream still counts as up after a " << Seconds(kCut) << " s cut";
  std::this_thread::sleep_until(cut_at + kCut);

  const int64_t streams = client.established_streams();
  ASSERT_TRUE(c.Heal(0).ok());
  const Clock::time_point healed_at = Clock::now();
  const Clock::time_point back_at = When([&] { return client.established_streams() > streams; }, seconds(60));
  ASSERT_GT(client.established_streams(), streams) << "the stream never came back";
  EXPECT_LT(back_at - healed_at, seconds(2)) << "the stream came back " << Seconds(back_at - healed_at)
                                             << " s after the heal; the allocator's log:\n"
                                             << Slurp(c.log_path(0));
  std::printf("after a %.0f s cut: the node's stream back %.3f s after the heal\n", Seconds(kCut),
              Seconds(back_at - healed_at));
}

}  // namespace
}  // namespace abode::integration

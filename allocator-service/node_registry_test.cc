// The node registry's sweeps on an injected clock and manual timers: a lease runs out only when the clock
// passes it and a sweep fires, with no real time waited.
#include "allocator-service/node_registry.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "allocator-service/timers.h"
#include "gtest/gtest.h"
#include "replication/clock.h"

namespace abode::allocator {
namespace {

constexpr int64_t kT0 = 1'700'000'000'000;
constexpr int64_t kLeaseMs = 5000;
constexpr int64_t kReclaimMs = 600'000;

// Records proposed commands and answers each with success at once.
class RecordingLog final : public replication::CommandLog {
 public:
  void Propose(v1::Command command, replication::Deadline /*deadline*/, Done done) override {
    {
      absl::MutexLock lock(&mu_);
      commands_.push_back(command);
    }
    std::move(done)(v1::CommandResult());
  }
  std::vector<v1::Command> commands() {
    absl::MutexLock lock(&mu_);
    return commands_;
  }

 private:
  absl::Mutex mu_;
  std::vector<v1::Command> commands_ ABSL_GUARDED_BY(mu_);
};

// The view of nodes the test sets, handed out as the watch hub would hand out the one it published.
class FakeViews final : public NodeViewSource {
 public:
  std::shared_ptr<const domain::NodeStateView> view() override {
    absl::MutexLock lock(&mu_);
    return view_;
  }
  void Set(std::shared_ptr<const domain::NodeStateView> view) {
    absl::MutexLock lock(&mu_);
    view_ = std::move(view);
  }

 private:
  absl::Mutex mu_;
  std::shared_ptr<const domain::NodeStateView> view_ ABSL_GUARDED_BY(mu_) =
      std::make_shared<domain::NodeStateView>();
};

class NodeRegistryTest : public ::testing::Test {
 protected:
  NodeRegistryTest() {
    PublishNode("n1", /*ready=*/true, kT0);
    registry_ = std::make_unique<NodeRegistry>(log_, views_,
                                               NodeRegistryOptions{.lease_ms = kLeaseMs,
                                                                   .sweep_interval_ms = 200,
                                                                   .clock = &clock_,
                                                                   .timers = &timers_,
                                                                   .reclaim_not_ready_after_ms = kReclaimMs});
  }
  ~NodeRegistryTest() override { registry_.reset(); }

  // Publishes a view with one node, as the state machine would after applying its registration.
  void PublishNode(const std::string& name, bool ready, int64_t change_ms) {
    auto view = std::make_shared<domain::NodeStateView>();
    auto node = std::make_shared<v1::Node>();
    node->mutable_spec()->set_name(name);
    node->set_ready(ready);
    node->set_ready_change_time_unix_ms(change_ms);
    view->nodes[name] = std::move(node);
    view->revision = ++revision_;
    views_.Set(std::move(view));
  }

  size_t NotReadyProposals() {
    size_t n = 0;
    for (const auto& c : log_.commands()) n += c.has_mark_node_not_ready() ? 1 : 0;
    return n;
  }
  std::vector<v1::ReclaimNodeAllocations> Reclaims() {
    std::vector<v1::ReclaimNodeAllocations> out;
    for (const auto& c : log_.commands()) {
      if (c.has_reclaim_node_allocations()) out.push_back(c.reclaim_node_allocations());
    }
    return out;
  }

  replication::FakeClock clock_{kT0};
  ManualTimers timers_;
  RecordingLog log_;
  FakeViews views_;
  uint64_t revision_ = 0;
  std::unique_ptr<NodeRegistry> registry_;
};

TEST_F(NodeRegistryTest, SweepsRunOnTheInjectedTimer) {
  EXPECT_EQ(timers_.live(), 1u);
  registry_->Stop();
  EXPECT_EQ(timers_.live(), 0u) << "stopping removes the timer: no sweep runs after Stop";
}

TEST_F(NodeRegistryTest, LeaseExpiresOnlyWhenTheClockPassesItAndTheTimerFires) {
  registry_->Connect([] {
    v1::NodeSpec spec;
    spec.set_name("n1");
    return spec;
  }());
  clock_.Advance(kLeaseMs);  // exactly the lease: still alive
  timers_.Fire();
  EXPECT_EQ(NotReadyProposals(), 0u);

  clock_.Advance(1);  // past the lease, but no sweep yet
  EXPECT_EQ(NotReadyProposals(), 0u);
  timers_.Fire();
  ASSERT_EQ(NotReadyProposals(), 1u);
  EXPECT_EQ(log_.commands().back().mark_node_not_ready().name(), "n1");
}

TEST_F(NodeRegistryTest, HeartbeatsKeepTheLeaseAcrossSweeps) {
  v1::NodeSpec spec;
  spec.set_name("n1");
  registry_->Connect(spec);
  for (int i = 0; i < 10; ++i) {
    clock_.Advance(kLeaseMs - 1);
    registry_->Heartbeat("n1");
    timers_.Fire();
  }
  EXPECT_EQ(NotReadyProposals(), 0u);
  clock_.Advance(kLeaseMs + 1);
  timers_.Fire();
  EXPECT_EQ(NotReadyProposals(), 1u);
}

TEST_F(NodeRegistryTest, ALostNodeIsReclaimedOnceAfterTheConfiguredTime) {
  const int64_t lost_at = kT0 + 1000;
  PublishNode("n1", /*ready=*/false, lost_at);
  clock_.Set(lost_at + kReclaimMs - 1);
  timers_.Fire();
  EXPECT_TRUE(Reclaims().empty()) << "not lost for long enough yet";

  clock_.Advance(1);
  timers_.Fire();
  ASSERT_EQ(Reclaims().size(), 1u);
  EXPECT_EQ(Reclaims()[0].node(), "n1");
  EXPECT_EQ(Reclaims()[0].not_ready_since_unix_ms(), lost_at);
  EXPECT_EQ(Reclaims()[0].reason(), "node n1 not ready for more than 10m: reclaimed");

  clock_.Advance(kReclaimMs);
  timers_.Fire();
  EXPECT_EQ(Reclaims().size(), 1u) << "once per lost period";

  // Back, then lost again: a new period.
  PublishNode("n1", /*ready=*/false, clock_.NowUnixMs());
  clock_.Advance(kReclaimMs);
  timers_.Fire();
  ASSERT_EQ(Reclaims().size(), 2u);
  EXPECT_EQ(Reclaims()[1].not_ready_since_unix_ms(), clock_.NowUnixMs() - kReclaimMs);
}

TEST_F(NodeRegistryTest, AReadyNodeIsNeverReclaimed) {
  v1::NodeSpec spec;
  spec.set_name("n1");
  registry_->Connect(spec);
  for (int i = 0; i < 5; ++i) {
    clock_.Advance(kLeaseMs);
    registry_->Heartbeat("n1");
    timers_.Fire();
  }
  clock_.Advance(kReclaimMs);  // the view still shows it ready: only a lease expiry is due
  timers_.Fire();
  EXPECT_TRUE(Reclaims().empty());
  EXPECT_EQ(NotReadyProposals(), 1u);
}

}  // namespace
}  // namespace abode::allocator

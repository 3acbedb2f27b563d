// The watch hub on its own: updates published as the loop thread publishes them, read as watchers read them.
#include "allocator-service/watch_hub.h"

#include <atomic>
#include <string>

#include <gtest/gtest.h>

namespace abode::allocator {
namespace {

domain::NodeStateUpdate BareRevision(uint64_t revision) {
  domain::NodeStateUpdate u;
  u.revision = revision;
  return u;
}

domain::NodeStateUpdate Assign(uint64_t revision, const std::string& node, const std::string& id) {
  domain::NodeStateUpdate u = BareRevision(revision);
  v1::AssignmentChange& c = u.changes.emplace_back();
  c.set_node(node);
  c.set_id(id);
  c.mutable_assignment()->set_id(id);
  return u;
}

class CountingWatcher : public WatchHub::Watcher {
 public:
  void Notify() override { notified.fetch_add(1); }
  std::atomic<int> notified{0};
};

// Most entries touch no node (plain pod allocations): their revision is recorded without waking anyone.
TEST(WatchHubTest, ABareRevisionIsRecordedAtOnce) {
  WatchHub hub;
  CountingWatcher w;
  hub.Subscribe("n1", &w);
  hub.Publish(BareRevision(5));
  EXPECT_EQ(hub.revision(), 5u);  // no Flush: nothing had to pass through the fan-out thread
  hub.Publish(BareRevision(4));   // never backwards
  EXPECT_EQ(hub.revision(), 5u);
  hub.Flush();
  EXPECT_EQ(w.notified.load(), 0);
  hub.Unsubscribe("n1", &w);
}

// A bare revision published behind a change still waiting for the fan-out thread is applied after it, in
// order: the change carries its own revision, and the hub's revision ends at the later one.
TEST(WatchHubTest, BareRevisionsStayInOrderBehindChanges) {
  WatchHub hub;
  CountingWatcher w;
  hub.Subscribe("n1", &w);
  for (uint64_t r = 1; r <= 200; ++r) {
    hub.Publish(r % 10 == 0 ? Assign(r, "n1", "a" + std::to_string(r)) : BareRevision(r));
  }
  hub.Flush();
  EXPECT_EQ(hub.revision(), 200u);
  EXPECT_GE(w.notified.load(), 1);
  EXPECT_EQ(hub.Assignments("n1").size(), 20u);
  // Deltas since revision 95 name the assignments of revisions 100, 110, ... 200 and end at 200.
  uint64_t after = 95;
  auto next = hub.Next("n1", &after, /*first=*/true);
  ASSERT_TRUE(next.has_value());
  EXPECT_FALSE(next->snapshot());
  EXPECT_EQ(next->assignments_size(), 11);
  EXPECT_EQ(next->revision(), 200u);
  EXPECT_EQ(after, 200u);
  hub.Unsubscribe("n1", &w);
}

}  // namespace
}  // namespace abode::allocator

// A replica's watch hub: the node assignments derived by the state machine, per node, and a bounded window of
// recent changes, so that every replica can serve WatchAssignments streams and resume them by revision.
//
// The raft loop thread only enqueues each applied batch's update (Publish); a fan-out thread applies it to
// the hub and wakes the watchers of the nodes it touched. Watchers pull their next message (Next) from their
// own threads, so the loop thread never does per-watcher work.
//
// Thread safety: thread-safe.
#ifndef ABODE_ALLOCATOR_SERVICE_WATCH_HUB_H_
#define ABODE_ALLOCATOR_SERVICE_WATCH_HUB_H_

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "abode/v1/nodes.pb.h"
#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "allocator-service/assignment_feed.h"
#include "domain/node_state_sink.h"
#include "domain/node_state_view.h"

namespace abode::allocator {

struct WatchHubOptions {
  size_t retained_batches = 4096;    // applied batches kept for resume
  size_t retained_changes = 200000;  // and at most this many assignment changes in them
};

class WatchHub final : public domain::NodeStateSink, public AssignmentFeed {
 public:
  explicit WatchHub(WatchHubOptions options = {});
  ~WatchHub() override;  // REQUIRES: no watcher is subscribed

  // The loop thread: O(1) apart from swapping in the published view.
  void Publish(domain::NodeStateUpdate update) override;

  // AssignmentFeed (assignment_feed.h); watchers are notified from the hub's fan-out thread.
  std::shared_ptr<const domain::NodeStateView> view() override;
  std::vector<v1::Assignment> Assignments(const std::string& node) override;
  bool Ready(const std::string& node) override;
  void Subscribe(const std::string& node, Watcher* watcher) override;
  void Unsubscribe(const std::string& node, Watcher* watcher) override;
  std::optional<v1::WatchAssignmentsResponse> Next(const std::string& node, uint64_t* after, bool first) override;

  uint64_t revision();

  // Waits until every update published so far reached the hub (tests and benchmarks).
  void Flush();

 private:
  struct Batch {
    uint64_t revision = 0;
    absl::flat_hash_map<std::string, std::vector<v1::AssignmentChange>> by_node;
    size_t changes = 0;
  };
  struct NodeEntry {
    std::map<std::string, v1::Assignment> assignments;
    uint64_t last_change = 0;
    std::set<Watcher*> watchers;
  };

  void FanOut();
  void Apply(domain::NodeStateUpdate& update, std::vector<Watcher*>* wake) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::WatchAssignmentsResponse SnapshotOf(const NodeEntry* entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const WatchHubOptions options_;

  // Lock order: notify_mu_, then mu_; queue_mu_, then mu_. view_mu_ is taken alone.
  absl::Mutex view_mu_;
  std::shared_ptr<const domain::NodeStateView> view_ ABSL_GUARDED_BY(view_mu_);

  absl::Mutex queue_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  absl::CondVar queue_cv_;
  std::deque<domain::NodeStateUpdate> queue_ ABSL_GUARDED_BY(queue_mu_);
  uint64_t published_ ABSL_GUARDED_BY(queue_mu_) = 0;
  uint64_t applied_ ABSL_GUARDED_BY(queue_mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(queue_mu_) = false;

  absl::Mutex mu_;
  uint64_t revision_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t retained_after_ ABSL_GUARDED_BY(mu_) = 0;  // deltas can be served to watchers at or after this
  size_t retained_changes_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<Batch> batches_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, NodeEntry, std::less<>> nodes_ ABSL_GUARDED_BY(mu_);
  // The view of the last update applied to nodes_.
  std::shared_ptr<const domain::NodeStateView> applied_view_ ABSL_GUARDED_BY(mu_);

  // Held while notifying, so that Unsubscribe can wait for a notification in flight.
  absl::Mutex notify_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  std::thread thread_;
};

}  // namespace abode::allocator

#endif  // ABODE_ALLOCATOR_SERVICE_WATCH_HUB_H_

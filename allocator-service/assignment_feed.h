// What a node's WatchAssignments stream pulls from its replica: the assignments of one node, as a first
// message and then as changes by revision, with a wake-up when there is something new. Implemented by the
// watch hub (watch_hub.h).
#ifndef ABODE_ALLOCATOR_SERVICE_ASSIGNMENT_FEED_H_
#define ABODE_ALLOCATOR_SERVICE_ASSIGNMENT_FEED_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "abode/v1/nodes.pb.h"
#include "allocator-service/node_view_source.h"

namespace abode::allocator {

// Thread-safe.
class AssignmentFeed : public NodeViewSource {
 public:
  // Told when its node may have a new message. Called from the feed's own thread; must not block.
  class Watcher {
   public:
    virtual ~Watcher() = default;
    virtual void Notify() = 0;
  };

  // What `node` must carry now, by assignment id.
  virtual std::vector<v1::Assignment> Assignments(const std::string& node) = 0;
  // Whether `node` is ready in the state the feed's assignments reflect (view() may be ahead). Watchers of
  // a node are notified when its readiness changes.
  virtual bool Ready(const std::string& node) = 0;

  virtual void Subscribe(const std::string& node, Watcher* watcher) = 0;
  // After it returns, `watcher` is never notified again.
  virtual void Unsubscribe(const std::string& node, Watcher* watcher) = 0;

  // The next message for a watcher of `node` that holds the state at `*after` (0: nothing). first: the
  // stream's first message (always returned: a snapshot, or the deltas since *after when they are still
  // retained). Otherwise returns nothing when the node has nothing new. Advances *after.
  virtual std::optional<v1::WatchAssignmentsResponse> Next(const std::string& node, uint64_t* after,
                                                           bool first) = 0;
};

}  // namespace abode::allocator

#endif  // ABODE_ALLOCATOR_SERVICE_ASSIGNMENT_FEED_H_

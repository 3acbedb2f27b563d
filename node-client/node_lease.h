// The node's lease as abode-node knows it. The allocator moves what a node carries for it (external and elastic
// addresses) when it has not heard from the node for its lease; so the node may keep carrying them only while
// it knows the allocator heard from it within the lease. The allocator acknowledges heartbeats (and `start`);
// the lease runs lease_ms from the moment the node *sent* the latest acknowledged one, which is never later
// than the moment the allocator heard it, so the node's view of its lease ends no later than the allocator's.
//
// Thread safety: thread-safe.
#ifndef ABODE_NODE_CLIENT_NODE_LEASE_H_
#define ABODE_NODE_CLIENT_NODE_LEASE_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>

#include "absl/base/thread_annotations.h"

namespace abode::node {

class NodeLease {
 public:
  using Clock = std::chrono::steady_clock;
  // `now` reads the monotonic clock (tests inject their own).
  explicit NodeLease(std::function<Clock::time_point()> now = [] { return Clock::now(); });

  Clock::time_point Now() const { return now_(); }

  // The lease (lease_ms from the allocator's first message) runs until `sent_at` + lease; never shortened.
  void Renew(Clock::time_point sent_at, std::chrono::milliseconds lease);
  // When the lease runs out; nothing before the first renewal.
  std::optional<Clock::time_point> Until() const;
  bool Valid() const;
  // The lease length last stated by the allocator (0 before the first renewal).
  std::chrono::milliseconds length() const;

 private:
  const std::function<Clock::time_point()> now_;
  mutable std::mutex mu_;
  std::optional<Clock::time_point> until_ ABSL_GUARDED_BY(mu_);
  std::chrono::milliseconds length_ ABSL_GUARDED_BY(mu_){0};
};

}  // namespace abode::node

#endif  // ABODE_NODE_CLIENT_NODE_LEASE_H_

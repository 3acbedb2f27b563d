// The seam between reads and replication: before answering a read, a service awaits the fence, which
// holds the read until the local state is recent enough for the requested consistency.
#ifndef ABODE_ALLOCATOR_SERVICE_READ_FENCE_H_
#define ABODE_ALLOCATOR_SERVICE_READ_FENCE_H_

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "allocator-service/command_log.h"

namespace abode::allocator {

enum class ReadConsistency {
  // Reflects every write acknowledged before the read began, on whichever replica answers.
  kLinearizable,
  // This replica's state as it is: it has caught up with the leader once, but may lag behind it.
  kStale,
};

class ReadFence {
 public:
  virtual ~ReadFence() = default;
  // Thread-safe. `done` runs exactly once: OK when the local state may be read, UNAVAILABLE when this
  // replica cannot vouch for it (no leader, no quorum, not caught up; a leader that does not answer before
  // the caller's `deadline`). It runs on a thread that may block briefly on a local read (never the raft loop).
  virtual void Await(ReadConsistency consistency, Deadline deadline,
                     absl::AnyInvocable<void(absl::Status) &&> done) = 0;
};

}  // namespace abode::allocator

#endif  // ABODE_ALLOCATOR_SERVICE_READ_FENCE_H_

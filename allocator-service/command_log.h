// The seam between the gRPC layer and replication: a command goes in, its applied outcome comes back once
// it is committed. Implemented by RaftNode; tests may substitute their own.
#ifndef ABODE_ALLOCATOR_SERVICE_COMMAND_LOG_H_
#define ABODE_ALLOCATOR_SERVICE_COMMAND_LOG_H_

#include <chrono>

#include "abode/v1/commands.pb.h"
#include "absl/functional/any_invocable.h"
#include "storage/state_machine.h"

namespace abode::allocator {

// When a caller stops waiting for an answer (gRPC's clock: the system clock). kNoDeadline: never.
using Deadline = std::chrono::system_clock::time_point;
inline constexpr Deadline kNoDeadline = Deadline::max();

class CommandLog {
 public:
  using Done = absl::AnyInvocable<void(storage::CommandOutcome) &&>;
  virtual ~CommandLog() = default;

  // Thread-safe. `done` runs exactly once: with the command's outcome after it was committed durably and
  // applied (on a completion thread, never the raft loop; for a write a follower forwarded to the leader, on
  // the thread that received the leader's answer), or with UNAVAILABLE if it could not be committed (no
  // leader, no quorum, shutdown; on any thread, the caller's included). It must not block. Nothing the
  // command waits on (a forward to the leader included) outlives `deadline`: the caller hears UNAVAILABLE
  // just before it rather than DEADLINE_EXCEEDED after it.
  virtual void Propose(v1::Command command, Deadline deadline, Done done) = 0;
};

}  // namespace abode::allocator

#endif  // ABODE_ALLOCATOR_SERVICE_COMMAND_LOG_H_

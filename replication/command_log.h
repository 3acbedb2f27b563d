// The seam between the gRPC layer and replication: a command goes in, its applied outcome comes back once
// it is committed. Implemented by RaftNode; tests may substitute their own.
#ifndef ABODE_REPLICATION_COMMAND_LOG_H_
#define ABODE_REPLICATION_COMMAND_LOG_H_

#include "abode/v1/commands.pb.h"
#include "absl/functional/any_invocable.h"
#include "replication/deadline.h"
#include "replication/state_machine.h"

namespace abode::replication {

class CommandLog {
 public:
  using Done = absl::AnyInvocable<void(CommandOutcome) &&>;
  virtual ~CommandLog() = default;

  // Thread-safe. `done` runs exactly once: with the command's outcome after it was committed durably and
  // applied (on a completion thread, or on the raft loop when the command was its entry's only one and
  // nothing else waits; for a write a follower forwarded to the leader, on the thread that received the
  // leader's answer), or with UNAVAILABLE if it could not be committed (no leader, no quorum, shutdown; on
  // any thread, the caller's included). It must not block, nor wait for anything the raft loop does. Nothing the
  // command waits on (a forward to the leader included) outlives `deadline`: the caller hears UNAVAILABLE
  // just before it rather than DEADLINE_EXCEEDED after it.
  virtual void Propose(v1::Command command, Deadline deadline, Done done) = 0;
};

}  // namespace abode::replication

#endif  // ABODE_REPLICATION_COMMAND_LOG_H_

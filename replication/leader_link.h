// How a follower reaches the leader: forwarded writes and read indexes. The service layer implements it
// over gRPC (allocator-service/leader_link.h); tests may substitute their own.
#ifndef ABODE_REPLICATION_LEADER_LINK_H_
#define ABODE_REPLICATION_LEADER_LINK_H_

#include <cstdint>
#include <string>
#include <vector>

#include "abode/v1/commands.pb.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "replication/deadline.h"
#include "replication/state_machine.h"

namespace abode::replication {

// Thread safety: thread-safe. Callbacks may run on any thread and must not block. A call gives up,
// UNAVAILABLE, shortly before `deadline` (the earliest deadline of the callers it serves) so that they hear
// why in time.
class LeaderLink {
 public:
  using Outcomes = std::vector<CommandOutcome>;
  virtual ~LeaderLink() = default;
  // Proposes `commands` at the leader; `done` gets one outcome per command, or one error for all.
  virtual void Forward(const std::string& leader_grpc_address, std::vector<v1::Command> commands,
                       Deadline deadline, absl::AnyInvocable<void(absl::StatusOr<Outcomes>) &&> done) = 0;
  // Asks the leader for a read index (see ReadIndexResponse in cluster.proto).
  virtual void ReadIndex(const std::string& leader_grpc_address, Deadline deadline,
                         absl::AnyInvocable<void(absl::StatusOr<uint64_t>) &&> done) = 0;
};

}  // namespace abode::replication

#endif  // ABODE_REPLICATION_LEADER_LINK_H_

// The version gate of commands added after the first release (AllocateMany, DeleteNode,
// ReclaimNodeAllocations, UpdateLabels, SetNodeLabels): during a rolling upgrade a member whose build does not know a command would refuse
// the whole batch that carries it (RAFT_MALFORMED), so such a command is proposed only once every member of
// the configuration said it applies it. Otherwise the caller hears FAILED_PRECONDITION naming the member to
// upgrade, or UNAVAILABLE while a member has never answered.
//
// Members advertise what their build applies in ClusterStatus.known_commands (the field numbers of
// Command.op, see KnownCommands). GatedCommandLog asks every other member's Cluster.Status the first time, and
// again in the background once its answer is older than answer_ttl_ms of the injected clock; a member that
// cannot be reached keeps its last answer.
//
// Thread safety: thread-safe. `done` runs on the caller's thread or a gRPC completion thread.
#ifndef ABODE_ALLOCATOR_SERVICE_COMMAND_GATE_H_
#define ABODE_ALLOCATOR_SERVICE_COMMAND_GATE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "allocator-service/leader_channels.h"
#include "replication/clock.h"
#include "replication/cluster_view.h"
#include "replication/command_log.h"

namespace abode::allocator {

// The field numbers of Command.op this build applies.
std::vector<uint32_t> KnownCommands();
// Whether `op` must wait for every member to apply it (a command added after the first release).
bool IsGatedCommand(v1::Command::OpCase op);

struct CommandGateOptions {
  std::function<replication::ClusterView()> view;  // required: this replica's id and the members
  LeaderChannels* channels = nullptr;               // reaches the other members; null: a single voter
  replication::Clock* clock = nullptr;              // required
  int64_t answer_ttl_ms = 10'000;
};

class GatedCommandLog final : public replication::CommandLog {
 public:
  // `inner` outlives this.
  GatedCommandLog(replication::CommandLog& inner, CommandGateOptions options);
  ~GatedCommandLog() override;  // waits for the questions in flight

  void Propose(v1::Command command, replication::Deadline deadline, Done done) override;

 private:
  struct Answer {
    bool answered = false;
    std::set<uint32_t> commands;
    int64_t at_ms = 0;
    bool asking = false;
    std::string error;  // why the last question failed
  };
  struct Round;
  using MemberKey = std::pair<uint64_t, std::string>;  // id, gRPC address

  // Refusal of `op` by the members' answers, or OK; unless `final`, nullopt while a member that has never
  // answered is being asked.
  std::optional<absl::Status> Decide(uint32_t op, const std::vector<replication::Member>& members, bool final)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Asks the members in `ask` (marked asking); `then` runs once every answer is in.
  void Ask(std::vector<MemberKey> ask, replication::Deadline deadline, absl::AnyInvocable<void() &&> then)
      ABSL_LOCKS_EXCLUDED(mu_);

  replication::CommandLog& inner_;
  const CommandGateOptions options_;
  absl::Mutex mu_;
  std::map<MemberKey, Answer> answers_ ABSL_GUARDED_BY(mu_);
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace abode::allocator

#endif  // ABODE_ALLOCATOR_SERVICE_COMMAND_GATE_H_

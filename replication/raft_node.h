// A replica's raft node: c-raft with its libuv disk and TCP I/O over an injected state machine
// (state_machine.h), running on one loop thread.
//
// Its parts, each in files of its own:
//   raft_loop.h          the loop thread: c-raft's life cycle, wake-ups, the published cluster view
//   proposal_queue.h     group commit: proposals queued from any thread become one log entry per wake-up;
//                        entries in flight until applied; a follower forwards instead (LeaderLink)
//   read_index.h         read fences (a leadership barrier) and waiters for an applied index
//   membership_change.h  adding, removing and promoting members, leadership transfer
//   replicated_fsm.h     the c-raft fsm over the injected state machine; raft_codec.h its formats
//   socket_tuning.h      what is changed about libraft's TCP sockets
//   offline_tools.h      reading and recovering a stopped member's log
//
// The path of one proposal: Propose (any thread) → the loop's inbox → ProposalQueue: one CommandBatch per
// wake-up, raft_apply → c-raft commits it → ReplicatedFsm::Apply → StateMachine::Apply gives the outcomes,
// which travel as the entry's result to ProposalQueue::AnswerProposers, the apply request's callback → the
// completion threads run each caller's `done`.
//
// Membership: with no peers the node is a single voter that bootstraps itself. With peers, every pristine
// member bootstraps the same initial configuration (c-raft refuses a second bootstrap once the log holds
// anything, so restarts never start a second cluster); a member started with `join` never bootstraps and
// waits to be added by AddMember.
//
// Threads and locks: the public methods are thread-safe. The state machine is called on the loop thread
// only (and PinnedState::Serialize on a libuv worker); completion callbacks run on the completion threads.
// Lock order: RaftLoop's inbox mutex, then nothing; its view mutex, then nothing. No callback is run while
// either is held.
#ifndef ABODE_REPLICATION_RAFT_NODE_H_
#define ABODE_REPLICATION_RAFT_NODE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "replication/clock.h"
#include "replication/cluster_view.h"
#include "replication/command_log.h"
#include "replication/leader_link.h"
#include "replication/membership.h"
#include "replication/membership_change.h"
#include "replication/raft_node_options.h"
#include "replication/read_fence.h"
#include "replication/state_machine.h"

namespace abode::replication {


class RaftNode final : public CommandLog, public ReadFence, public ReplicaStatus {
 public:
  // Starts raft over `state_machine` (which outlives the node; the node calls it on its loop thread
  // only): restores the latest snapshot unless the state machine is already past it, and replays the log.
  // A single voter returns once everything in its log is applied and it leads; a cluster member returns
  // once raft runs (it serves as soon as it knows a leader and has caught up).
  static absl::StatusOr<std::unique_ptr<RaftNode>> Start(const RaftNodeOptions& options, StateMachine* state_machine);
  // INVALID_ARGUMENT naming the field when Start would refuse `options`.
  static absl::Status CheckOptions(const RaftNodeOptions& options);
  ~RaftNode() override;  // stops the loop; pending proposals fail with UNAVAILABLE

  // CommandLog. The leader proposes; a follower forwards to the leader; with no leader known: UNAVAILABLE.
  void Propose(v1::Command command, Deadline deadline, Done done) override;
  // Proposes commands at this node only (the leader's side of forwarding, and the leader's housekeeping);
  // together in one entry when they fit. UNAVAILABLE if this node does not lead.
  void ProposeLocal(std::vector<v1::Command> commands, std::vector<Done> dones);

  // ReadFence. `done` runs on a completion thread or, for a follower, the thread of the leader's answer.
  void Await(ReadConsistency consistency, Deadline deadline, absl::AnyInvocable<void(absl::Status) &&> done) override;

  // Leader side of ReadIndex: confirms leadership with a barrier, then yields the applied index.
  void LocalReadIndex(absl::AnyInvocable<void(absl::StatusOr<uint64_t>) &&> done);

  // Membership and leadership; run by the leader (UNAVAILABLE elsewhere). `done` runs on the loop thread
  // and must not block.
  void AddMember(const Member& member, bool voter, ChangeDone done);
  void RemoveMember(uint64_t id, ChangeDone done);
  void TransferLeadership(uint64_t id, ChangeDone done);

  // Runs `task` on the loop thread between two applies, with the applied index: the state machine holds
  // exactly the state at that index and may be read (or pinned) there; `task` must be short. When the
  // loop no longer runs, `task` gets UNAVAILABLE instead, on the caller's thread.
  void BetweenApplies(absl::AnyInvocable<void(absl::StatusOr<uint64_t> applied_index) &&> task);

  // ReplicaStatus.
  ClusterView view() override;
  ReplicationStats stats() override;

 private:
  explicit RaftNode(std::unique_ptr<class RaftLoop> loop);
  std::unique_ptr<class RaftLoop> loop_;
};

}  // namespace abode::replication

#endif  // ABODE_REPLICATION_RAFT_NODE_H_

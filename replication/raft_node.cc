#include "replication/raft_node.h"

#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "replication/raft_loop.h"

namespace abode::replication {

absl::Status RaftNode::CheckOptions(const RaftNodeOptions& options) {
  if (options.clock == nullptr) return absl::InvalidArgumentError("clock: required");
  if (options.id == 0) return absl::InvalidArgumentError("id: must be greater than 0");
  if (options.command_format_version == 0) return absl::InvalidArgumentError("command_format_version: required");
  if (!options.peers.empty()) {
    if (options.leader_link == nullptr) return absl::InvalidArgumentError("leader_link: required with peers");
    if (FindMember(options.peers, options.id) == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("peers: no entry for this member's id ", options.id));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<RaftNode>> RaftNode::Start(const RaftNodeOptions& options,
                                                          StateMachine* state_machine) {
  if (absl::Status s = CheckOptions(options); !s.ok()) return s;
  if (state_machine == nullptr) return absl::InvalidArgumentError("state_machine: required");
  auto loop = std::make_unique<RaftLoop>(options, state_machine);
  if (absl::Status s = loop->Start(); !s.ok()) return s;
  return std::unique_ptr<RaftNode>(new RaftNode(std::move(loop)));
}

RaftNode::RaftNode(std::unique_ptr<RaftLoop> loop) : loop_(std::move(loop)) {}
RaftNode::~RaftNode() = default;

void RaftNode::Propose(v1::Command command, Deadline deadline, Done done) {
  loop_->Enqueue(Proposal{std::move(command), std::move(done), false, deadline});
}

void RaftNode::ProposeLocal(std::vector<v1::Command> commands, std::vector<Done> dones) {
  loop_->EnqueueLocal(std::move(commands), std::move(dones));
}

void RaftNode::Await(ReadConsistency consistency, Deadline deadline,
                     absl::AnyInvocable<void(absl::Status) &&> done) {
  // A single voter's configuration never changes under it: its applied state is the committed state, but
  // for an entry whose lone caller heard while the store was committing it: a read waits for that commit.
  if (loop_->single_voter()) {
    const uint64_t answered = loop_->indexes().answered_early.load(std::memory_order_acquire);
    if (loop_->indexes().local_index() >= answered) {
      std::move(done)(absl::OkStatus());
      return;
    }
    RaftLoop* loop = loop_.get();
    loop->RunOnLoopOrRefuse(std::move(done), [loop, answered](absl::AnyInvocable<void(absl::Status) &&> d) {
      loop->read_index().AddIndexWaiter(answered, std::move(d));
    });
    return;
  }
  const ClusterView v = view();
  if (consistency == ReadConsistency::kStale) {
    if (v.ready) {
      std::move(done)(absl::OkStatus());
    } else if (v.leader_id == 0) {
      std::move(done)(absl::UnavailableError("no raft leader is known to this replica"));
    } else {
      std::move(done)(absl::UnavailableError("this replica has not caught up with the leader yet"));
    }
    return;
  }
  if (v.leader_id == 0) {
    std::move(done)(absl::UnavailableError(
        "no raft leader is known to this replica (an election is under way or a quorum is unreachable)"));
    return;
  }
  RaftLoop* loop = loop_.get();
  if (v.role == RaftRole::kLeader) {
    loop->RunOnLoopOrRefuse(std::move(done), [loop](absl::AnyInvocable<void(absl::Status) &&> done) {
      loop->read_index().AddFence([loop, done = std::move(done)](absl::StatusOr<uint64_t> index) mutable {
        // Everything up to the barrier is applied here already: the read may go ahead, off the loop.
        loop->PostCompletion([done = std::move(done), s = index.status()]() mutable { std::move(done)(s); });
      });
    });
    return;
  }
  loop->leader_link()->ReadIndex(
      v.leader_grpc_address, deadline, [loop, done = std::move(done)](absl::StatusOr<uint64_t> index) mutable {
        if (!index.ok()) {
          std::move(done)(index.status());
          return;
        }
        if (loop->indexes().local_index() >= *index) {
          std::move(done)(absl::OkStatus());
          return;
        }
        loop->RunOnLoopOrRefuse(std::move(done), [loop, at = *index](absl::AnyInvocable<void(absl::Status) &&> d) {
          loop->read_index().AddIndexWaiter(at, std::move(d));
        });
      });
}

void RaftNode::LocalReadIndex(absl::AnyInvocable<void(absl::StatusOr<uint64_t>) &&> done) {
  RaftLoop* loop = loop_.get();
  loop->RunOnLoopOrRefuse(std::move(done), [loop](absl::AnyInvocable<void(absl::StatusOr<uint64_t>) &&> d) {
    loop->read_index().AddFence(std::move(d));
  });
}

namespace {

void QueueChange(RaftLoop* loop, MembershipOp op, Member member, bool voter, ChangeDone done) {
  loop->RunOnLoopOrRefuse(std::move(done), [loop, op, member = std::move(member), voter](ChangeDone d) {
    ChangeMembership(loop->raft(), op, member, voter, std::move(d), [loop] { loop->PublishView(); });
  });
}

Member MemberWithId(uint64_t id) {
  Member m;
  m.id = id;
  return m;
}

}  // namespace

void RaftNode::AddMember(const Member& member, bool voter, ChangeDone done) {
  QueueChange(loop_.get(), MembershipOp::kAdd, member, voter, std::move(done));
}

void RaftNode::RemoveMember(uint64_t id, ChangeDone done) {
  QueueChange(loop_.get(), MembershipOp::kRemove, MemberWithId(id), true, std::move(done));
}

void RaftNode::TransferLeadership(uint64_t id, ChangeDone done) {
  QueueChange(loop_.get(), MembershipOp::kTransfer, MemberWithId(id), true, std::move(done));
}

void RaftNode::BetweenApplies(absl::AnyInvocable<void(absl::StatusOr<uint64_t> applied_index) &&> task) {
  using Task = absl::AnyInvocable<void(absl::StatusOr<uint64_t>) &&>;
  RaftLoop* loop = loop_.get();
  loop->RunOnLoopOrRefuse(std::move(task), [loop](Task t) { std::move(t)(raft_last_applied(loop->raft())); });
}

ClusterView RaftNode::view() { return loop_->view(); }

ReplicationStats RaftNode::stats() { return loop_->stats(); }

}  // namespace abode::replication

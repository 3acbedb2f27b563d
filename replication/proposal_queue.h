// Group commit on the raft loop. Proposals drained from the loop's inbox become one log entry (a
// CommandBatch of up to max_batch_commands) per wake-up; while max_inflight_entries entries wait for commit
// and apply, new proposals are held and go out together when one completes. Fewer, larger entries cost less
// per command everywhere: one SQLite transaction, one AppendEntries and one log write on every replica.
// A follower sends what it drained to the leader as one forwarded group instead.
//
// The reply path: ReplicatedFsm::Apply asks AwaitsOutcomes(proposal_id); for an entry in flight here it
// hands the state machine's outcomes to c-raft as the entry's result, and c-raft passes them to
// AnswerProposers, the callback of the entry's raft_apply request, which answers every caller of the entry
// on the completion threads (a large entry's callers spread over all of them in order, AnswerChunks); the
// only caller of an entry, when no proposal is held, it answers itself on the loop.
//
// Threading: loop thread only, except stats() (any thread).
#ifndef ABODE_REPLICATION_PROPOSAL_QUEUE_H_
#define ABODE_REPLICATION_PROPOSAL_QUEUE_H_

#include <uv.h>

extern "C" {
#include <raft.h>
}

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "abode/v1/commands.pb.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "replication/clock.h"
#include "replication/command_log.h"
#include "replication/leader_link.h"
#include "replication/worker_threads.h"
#include "tracing/tracer.h"

namespace abode::replication {

struct Proposal {
  v1::Command command;
  CommandLog::Done done;
  bool local = false;  // propose here or fail, never forward (forwarded to us, or the leader's own)
  Deadline deadline = kNoDeadline;  // the caller's; a forward to the leader gives up before it
};

class ProposalQueue {
 public:
  struct Options {
    uint64_t self_id = 0;
    bool single_voter = true;
    size_t max_batch_commands = 2048;
    size_t max_inflight_entries = 1;  // 0: no limit
    uint32_t command_format_version = 0;
    Clock* clock = nullptr;
    LeaderLink* leader_link = nullptr;  // with peers
    tracing::Tracer* tracer = nullptr;  // a "raft.commit" span per entry; null: none
  };
  // `raft`, `completions` and `wakeup` (which runs ProposeOrHold again) outlive the queue.
  ProposalQueue(const Options& options, struct raft* raft, WorkerThreads* completions, uv_async_t* wakeup);
  ProposalQueue(const ProposalQueue&) = delete;
  ProposalQueue& operator=(const ProposalQueue&) = delete;

  // Proposes (leader) or forwards (follower) `proposals` with those held so far, unless the entries in
  // flight are at the limit: then they are held. Leaves `proposals` empty.
  void ProposeOrHold(std::vector<Proposal>& proposals);
  // Whether a caller here waits for the entry with `proposal_id` (it is in flight).
  bool AwaitsOutcomes(uint64_t proposal_id) const { return inflight_.contains(proposal_id); }
  // The outcomes of the entry in flight as `proposal_id` are final, before the store commits them: a lone
  // caller, with nobody held, is answered now, on the loop (see ReplicatedFsm::Observer::OnOutcomesDecided).
  // Others are answered when raft completes the entry.
  // `before_answering` runs first when it does.
  void AnswerDecided(uint64_t proposal_id, const std::vector<CommandOutcome>& outcomes,
                     absl::FunctionRef<void()> before_answering);
  // At shutdown: held proposals hear `held`; entries raft never called back about hear `inflight`.
  void FailHeld(const absl::Status& held);
  void FailInFlight(const absl::Status& inflight);

  struct Stats {
    uint64_t entries = 0;
    uint64_t commands = 0;
    uint64_t most_inflight_entries = 0;
  };
  Stats stats() const;  // thread-safe

 private:
  struct InFlight;
  void ProposeAll(std::vector<Proposal>& proposals);
  void Forward(std::vector<Proposal>& proposals);
  static void AnswerProposers(struct raft_apply* req, int status, void* result);

  const Options options_;
  struct raft* const raft_;
  WorkerThreads* const completions_;
  uv_async_t* const wakeup_;
  uint64_t proposal_base_ = 0;  // random high half: ids stay unique across restarts and leaders
  uint64_t proposal_seq_ = 0;
  std::vector<Proposal> held_;  // waiting for an entry in flight to complete
  absl::flat_hash_map<uint64_t, InFlight*> inflight_;  // by proposal id; owned
  std::atomic<uint64_t> entries_{0};
  std::atomic<uint64_t> commands_{0};
  std::atomic<uint64_t> most_inflight_{0};  // written by the loop thread only
};

}  // namespace abode::replication

#endif  // ABODE_REPLICATION_PROPOSAL_QUEUE_H_

// Linearizable reads on the raft loop: fences, confirmed by a leadership barrier, and waiters for the local
// state to reach an index (a follower's read, after the leader named its read index).
//
// Threading: ReadIndex lives on the loop thread; every method runs there. AppliedIndexes is read from any
// thread. Callbacks that answer readers are posted to the completion threads, never run on the loop.
#ifndef ABODE_REPLICATION_READ_INDEX_H_
#define ABODE_REPLICATION_READ_INDEX_H_

extern "C" {
#include <raft.h>
}

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <map>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "replication/worker_threads.h"

namespace abode::replication {

// How far the local state is, written by the loop thread.
struct AppliedIndexes {
  // Index of the newest entry that changed the state (a command batch or an installed snapshot). Entries
  // after it up to the applied index are barriers and configuration changes, which leave the state alone.
  std::atomic<uint64_t> state_index{0};
  std::atomic<uint64_t> last_applied{0};
  // Index of the newest entry whose caller was answered while the store was still committing it
  // (ProposalQueue::AnswerDecided): written before that answer, so that a read after the answer finds it.
  std::atomic<uint64_t> answered_early{0};
  // Highest index whose effects the local state holds.
  uint64_t local_index() const {
    return std::max(state_index.load(std::memory_order_acquire), last_applied.load(std::memory_order_acquire));
  }
};

class ReadIndex {
 public:
  using IndexDone = absl::AnyInvocable<void(absl::StatusOr<uint64_t>) &&>;
  using Done = absl::AnyInvocable<void(absl::Status) &&>;

  // All three outlive this object.
  ReadIndex(struct raft* raft, const AppliedIndexes* indexes, WorkerThreads* completions)
      : raft_(raft), indexes_(indexes), completions_(completions) {}
  ReadIndex(const ReadIndex&) = delete;
  ReadIndex& operator=(const ReadIndex&) = delete;

  // A linearizable-read fence: `done` gets the index reads must wait for once a barrier confirmed that this
  // replica still leads. UNAVAILABLE at once when it does not lead. `done` runs on the loop thread.
  void AddFence(IndexDone done);
  // One barrier for every fence added since the last one; run at the end of each wake-up of the loop.
  void IssueBarrier();
  // `done` runs (off the loop) once the local state holds `index`.
  void AddIndexWaiter(uint64_t index, Done done);
  // Answers the waiters whose index the local state now holds.
  void WakeIndexWaiters();
  void FailFences(const absl::Status& s);
  // At shutdown: every fence and waiter hears `s`.
  void FailAll(const absl::Status& s);

 private:
  struct FenceBarrier;
  static void OnFenceBarrier(struct raft_barrier* req, int status);

  struct raft* const raft_;
  const AppliedIndexes* const indexes_;
  WorkerThreads* const completions_;
  std::vector<IndexDone> fences_;
  std::multimap<uint64_t, Done> index_waiters_;
};

}  // namespace abode::replication

#endif  // ABODE_REPLICATION_READ_INDEX_H_

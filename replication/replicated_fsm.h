// The injected state machine (state_machine.h) as c-raft sees it: a struct raft_fsm (version 3).
//
// - apply: decodes the entry (raft_codec.h) and applies it at its raft index, raft_last_applied() + 1. An
//   entry the reopened store already holds (start-up replay) is skipped. An unreadable entry is refused
//   (RAFT_MALFORMED), which halts apply on this replica rather than letting it diverge. When a caller on
//   this replica waits for the entry (Observer::AwaitsOutcomes), its outcomes become the entry's result,
//   which c-raft hands to the callback of the entry's raft_apply request (see TakeEntryOutcomes).
// - snapshot: pins the state at the applied index on the raft loop (one read); with asynchronous snapshots a
//   libuv worker serialises the pinned state while the loop goes on applying, otherwise the loop does it
//   at once; snapshot_finalize releases the pin and the buffers once raft has stored the snapshot.
// - restore: unframes the snapshot and restores it, or skips it when the store is already past it.
//
// The raft node and the in-memory fixture tests run this same code. Threading: raft calls it on one thread
// (the loop); SnapshotAsync on a libuv worker.
#ifndef ABODE_REPLICATION_REPLICATED_FSM_H_
#define ABODE_REPLICATION_REPLICATED_FSM_H_

extern "C" {
#include <raft.h>
}

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "replication/snapshot_pacer.h"
#include "replication/state_machine.h"

namespace abode::replication {

// The result c-raft passes to a raft_apply callback for an entry applied by ReplicatedFsm.
using EntryOutcomes = std::vector<CommandOutcome>;
// Takes over such a result (null: the entry's outcomes are not known here, or it was not applied).
inline std::unique_ptr<EntryOutcomes> TakeEntryOutcomes(void* result) {
  return std::unique_ptr<EntryOutcomes>(static_cast<EntryOutcomes*>(result));
}

class ReplicatedFsm {
 public:
  // Told what apply and restore did, on the thread raft calls the fsm on (the loop).
  class Observer {
   public:
    virtual ~Observer() = default;
    // The state now reflects the entry at `index`, proposed as `proposal_id`: applied now, or, when
    // `replayed`, already held by the reopened store.
    virtual void OnEntryApplied(uint64_t index, uint64_t proposal_id, bool replayed) = 0;
    // Whether a caller on this replica waits for the entry proposed as `proposal_id`. Only then are its
    // outcomes made the entry's result, so that the raft_apply callback that must free them gets them.
    virtual bool AwaitsOutcomes(uint64_t proposal_id) = 0;
    // The outcomes of the entry at `index`, proposed as `proposal_id`, are final (StateMachine::OutcomesDecided):
    // before the store commits them, and before OnEntryApplied. A caller may be answered now.
    virtual void OnOutcomesDecided(uint64_t /*index*/, uint64_t /*proposal_id*/,
                                   const std::vector<CommandOutcome>& /*outcomes*/) {}
    // The store failed to apply a decodable entry. Going on would let this replica diverge.
    virtual void OnApplyFailed(uint64_t index, const absl::Status& status) = 0;
    // A snapshot taken at `raft_index` was restored (`installed`), or skipped because the store is past it.
    virtual void OnRestored(uint64_t raft_index, bool installed) = 0;
  };

  struct Stats {
    uint64_t snapshots = 0;        // snapshots serialised
    uint64_t restores = 0;         // snapshots installed
    uint64_t refused_entries = 0;  // entries that could not be decoded
    uint64_t last_snapshot_index = 0;  // raft index of the latest snapshot taken here
  };

  // `sm` and `observer` outlive the fsm. With `asynchronous_snapshots` the raft_io must offer async_work.
  ReplicatedFsm(StateMachine* sm, Observer* observer, bool asynchronous_snapshots);
  ReplicatedFsm(const ReplicatedFsm&) = delete;
  ReplicatedFsm& operator=(const ReplicatedFsm&) = delete;

  raft_fsm* fsm() { return &fsm_; }
  void Attach(raft* r) { raft_ = r; }  // the raft instance this fsm serves, before it starts
  // Paces snapshots from now on (see snapshot_pacer.h): sets raft's snapshot threshold as entries are applied
  // and snapshots taken or restored. Without it the threshold stays what the caller set.
  void Pace(unsigned min_entries, double log_ratio, double stagger) { pacer_.emplace(min_entries, log_ratio, stagger); }
  Stats stats() const { return stats_; }  // the loop thread's view

 private:
  static int Apply(raft_fsm* fsm, const raft_buffer* buf, void** result);
  static int Snapshot(raft_fsm* fsm, raft_buffer* bufs[], unsigned* n_bufs);
  static int SnapshotAsync(raft_fsm* fsm, raft_buffer* bufs[], unsigned* n_bufs);
  static int SnapshotFinalize(raft_fsm* fsm, raft_buffer* bufs[], unsigned* n_bufs);
  static int Restore(raft_fsm* fsm, raft_buffer* buf);
  void Repace();

  StateMachine* const sm_;
  Observer* const observer_;
  raft_fsm fsm_{};
  raft* raft_ = nullptr;
  // The state being serialised for a snapshot, and where it stands. Between Snapshot and SnapshotFinalize
  // only the worker running SnapshotAsync touches them.
  std::unique_ptr<PinnedState> pin_;
  uint64_t pin_index_ = 0;
  uint64_t pin_revision_ = 0;
  Stats stats_;
  std::optional<SnapshotPacer> pacer_;  // loop thread only
  unsigned paced_threshold_ = 0;        // what raft was last told
};

}  // namespace abode::replication

#endif  // ABODE_REPLICATION_REPLICATED_FSM_H_

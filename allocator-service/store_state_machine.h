// abode's state as replication runs it: StateMachine over storage::StateMachine (the SQLite
// store in DATA_DIR/state.db). After every apply and restore it hands the node-state changes to the watch
// hub's sink.
//
// Threading: like every StateMachine, called on the raft loop thread only (the fixture tests:
// their stepping thread). The extra methods here (EarliestExpiry, PinState, revision) are for tasks the
// raft node runs between two applies (RaftNode::BetweenApplies), on that same thread.
#ifndef ABODE_ALLOCATOR_SERVICE_STORE_STATE_MACHINE_H_
#define ABODE_ALLOCATOR_SERVICE_STORE_STATE_MACHINE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "replication/state_machine.h"
#include "domain/node_state_sink.h"
#include "storage/snapshot.h"
#include "storage/state_machine.h"
#include "tracing/tracer.h"

namespace abode::allocator {

class StoreStateMachine final : public replication::StateMachine {
 public:
  // Opens `db_path`: the existing store when `reuse_existing` (and its schema version matches), else an
  // empty one. `sink` (optional) outlives the state machine.
  static absl::StatusOr<std::unique_ptr<StoreStateMachine>> Open(const std::string& db_path, bool reuse_existing,
                                                                 domain::NodeStateSink* sink);
  // Over a store opened by the caller (tests).
  StoreStateMachine(std::unique_ptr<storage::StateMachine> store, domain::NodeStateSink* sink)
      : store_(std::move(store)), sink_(sink) {}

  // StateMachine.
  uint64_t raft_index() override { return store_->raft_index(); }
  uint64_t revision() override { return store_->revision(); }
  absl::StatusOr<std::vector<replication::CommandOutcome>> Apply(const v1::CommandBatch& batch, uint64_t index,
                                                                 OutcomesDecided decided) override;
  absl::StatusOr<std::unique_ptr<replication::PinnedState>> Pin() override;
  absl::Status Restore(absl::string_view snapshot, uint64_t index) override;

  // Hands what the store holds so far to the sink (at start-up: what a reopened store already holds).
  void PublishNodeState();
  // Earliest expiry among allocations with a TTL, if any.
  absl::StatusOr<std::optional<int64_t>> EarliestExpiry() { return store_->EarliestExpiry(); }
  // The state as it is now, on a connection of its own, for serialising on another thread.
  absl::StatusOr<std::unique_ptr<storage::PinnedState>> PinState() { return storage::PinnedState::Pin(db_path()); }
  const std::string& db_path() const { return store_->db_path(); }
  // What a StateReader over the same store needs to answer owner queries consistently.
  const std::shared_ptr<storage::OwnerIndex>& owner_index() const { return store_->owner_index(); }
  storage::StateMachine& store() { return *store_; }
  // Spans for applied commands (apply_spans.h); null: none. Set before raft starts; outlives this object.
  void set_tracer(tracing::Tracer* tracer) { tracer_ = tracer; }

 private:
  std::unique_ptr<storage::StateMachine> store_;
  domain::NodeStateSink* const sink_;
  tracing::Tracer* tracer_ = nullptr;
};

}  // namespace abode::allocator

#endif  // ABODE_ALLOCATOR_SERVICE_STORE_STATE_MACHINE_H_

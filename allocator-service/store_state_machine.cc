#include "allocator-service/store_state_machine.h"

#include <utility>

#include "allocator-service/apply_spans.h"

namespace abode::allocator {
namespace {

class PinnedStore final : public replication::PinnedState {
 public:
  explicit PinnedStore(std::unique_ptr<storage::PinnedState> pinned) : pinned_(std::move(pinned)) {}
  absl::StatusOr<std::string> Serialize() override { return pinned_->Dump(); }

 private:
  std::unique_ptr<storage::PinnedState> pinned_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<StoreStateMachine>> StoreStateMachine::Open(const std::string& db_path,
                                                                           bool reuse_existing,
                                                                           domain::NodeStateSink* sink) {
  storage::StateMachineOptions options;
  options.db_path = db_path;
  options.reuse_existing = reuse_existing;
  auto store = storage::StateMachine::Open(options);
  if (!store.ok()) return store.status();
  return std::make_unique<StoreStateMachine>(std::move(*store), sink);
}

absl::StatusOr<std::vector<replication::CommandOutcome>> StoreStateMachine::Apply(const v1::CommandBatch& batch,
                                                                                  uint64_t index,
                                                                                  OutcomesDecided decided) {
  const bool traced = tracer_ != nullptr && tracer_->enabled();
  const int64_t start = traced ? tracer_->Now() : 0;
  // Node state is published to the watch hub after the apply, and a caller that changed it may look there
  // next (a node's stream): such a batch is answered only after the publication. A batch that left node
  // state alone may be answered as soon as its outcomes are decided.
  auto outcomes = store_->Apply(batch, index, [&](const std::vector<replication::CommandOutcome>& o) {
    if (!store_->NodeStatePending()) decided(o);
  });
  if (outcomes.ok()) PublishNodeState();
  if (traced) RecordApplySpans(*tracer_, batch, index, start, outcomes);
  return outcomes;
}

absl::StatusOr<std::unique_ptr<replication::PinnedState>> StoreStateMachine::Pin() {
  auto pinned = PinState();
  if (!pinned.ok()) return pinned.status();
  return std::make_unique<PinnedStore>(std::move(*pinned));
}

absl::Status StoreStateMachine::Restore(absl::string_view snapshot, uint64_t index) {
  absl::Status s = store_->Restore(snapshot, index);
  if (s.ok()) PublishNodeState();
  return s;
}

void StoreStateMachine::PublishNodeState() {
  domain::NodeStateUpdate update = store_->TakeNodeStateUpdate();
  if (sink_ != nullptr) sink_->Publish(std::move(update));
}

}  // namespace abode::allocator

// The state machine replication runs, injected by whoever assembles a replica. Replication knows entries
// (command batches) and opaque snapshots; what a command does, how the state is stored and how a snapshot
// is laid out are the implementation's business.
//
// Threading: every method runs on the raft loop thread (the fixture tests: their stepping thread), one at a
// time, except PinnedState::Serialize, which a libuv worker may run while the loop goes on applying.
#ifndef ABODE_REPLICATION_STATE_MACHINE_H_
#define ABODE_REPLICATION_STATE_MACHINE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "abode/v1/commands.pb.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace abode::replication {

// What applying one command gave: its result, or why it was refused (the batch went on without it).
using CommandOutcome = absl::StatusOr<v1::CommandResult>;

// The state as it was at one applied index, held while it is serialised.
class PinnedState {
 public:
  virtual ~PinnedState() = default;  // releases the pin
  // The whole state as one opaque snapshot. Any thread, once.
  virtual absl::StatusOr<std::string> Serialize() = 0;
};

class StateMachine {
 public:
  virtual ~StateMachine() = default;

  // The raft index the state already reflects (a store reopened at start-up); 0 when unknown.
  virtual uint64_t raft_index() = 0;
  // How many changes the state has seen; reported in the cluster view.
  virtual uint64_t revision() = 0;
  // Called by Apply, on its thread, with the batch's outcomes once they are final and before the store has
  // made the rest of the batch durable (the transaction's commit). The entry itself is already durable in
  // the raft log, and applying it is deterministic: a store that fails after this point fails Apply, the
  // replica stops, and a restart replays the entry to the same outcomes. So a caller may be answered here.
  using OutcomesDecided = absl::FunctionRef<void(const std::vector<CommandOutcome>&)>;

  // Applies one batch at raft index `index`: one outcome per command, in order, passed to `decided` (at most
  // once) as soon as they are final. A non-OK return means the batch could not be applied at all; the
  // replica must not go on (it would diverge).
  virtual absl::StatusOr<std::vector<CommandOutcome>> Apply(const v1::CommandBatch& batch, uint64_t index,
                                                            OutcomesDecided decided) = 0;
  // Holds the state as it is now, between two applies, for Serialize.
  virtual absl::StatusOr<std::unique_ptr<PinnedState>> Pin() = 0;
  // Replaces the state with a snapshot taken at raft index `index` (0: unknown). On error the previous
  // state is kept.
  virtual absl::Status Restore(absl::string_view snapshot, uint64_t index) = 0;
};

}  // namespace abode::replication

#endif  // ABODE_REPLICATION_STATE_MACHINE_H_

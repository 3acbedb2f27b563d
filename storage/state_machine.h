// The deterministic state machine: applies replicated command batches to the SQLite store through the domain
// core (domain/): Allocations runs the pool and allocation commands, NodeStore the node ones, and the
// node model derives the assignments. Every replica runs one; given the same log they reach byte-identical
// state.
//
// Apply never reads the clock, randomness or the environment: time comes from the batch, stamped by the
// leader. Each batch is one SQLite transaction; each command inside it that may write more than once is a
// savepoint, so a refused command leaves nothing behind while its neighbours still apply.
//
// Thread safety: not thread-safe. The raft loop thread owns it. Readers use StateReader connections and
// share the owner index (owner_index.h), which the state machine changes only while holding its mutex.
#ifndef ABODE_STORAGE_STATE_MACHINE_H_
#define ABODE_STORAGE_STATE_MACHINE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "abode/v1/commands.pb.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "domain/node_model.h"
#include "domain/node_state_sink.h"
#include "domain/node_state_view.h"
#include "domain/pools.h"
#include "storage/owner_index.h"
#include "storage/sqlite.h"

namespace abode::storage {

inline constexpr uint32_t kCommandFormatVersion = 1;

using CommandOutcome = absl::StatusOr<v1::CommandResult>;

struct StateMachineOptions {
  std::string db_path;  // the materialised database
  // Reopen an existing database of this schema version instead of starting empty. The raft node sets this
  // when its log is not pristine: the database then already reflects the log up to raft_index(), and
  // start-up skips what it holds instead of rebuilding it.
  bool reuse_existing = false;
  // Allocation TTLs above this are refused (10 years).
  int64_t max_ttl_seconds = int64_t{10} * 365 * 24 * 3600;
  // At most this many allocations are reclaimed by one ExpireAllocations command.
  int max_expire_per_command = 20000;
  // The index of owners to rows, shared with the StateReader (a new one if null; see owner_index()).
  std::shared_ptr<OwnerIndex> owner_index;
};

// The SQLite schema version of the store (PRAGMA user_version). A store of another version is rebuilt from
// the raft snapshot and log instead of migrated in place.
uint32_t SchemaVersion();

// What the state machine publishes of the node state (defined by the domain core).
using domain::NodeStateSink;
using domain::NodeStateUpdate;
using domain::NodeStateView;

class Allocations;
class NodeStore;
class WalCheckpointer;

class StateMachine {
 public:
  // Opens the store at options.db_path: the existing one when options.reuse_existing and its schema
  // version matches, otherwise an empty one (removing whatever was there). The store is a materialisation
  // of the raft snapshot and log; raft_index() says how much of the log it already reflects.
  static absl::StatusOr<std::unique_ptr<StateMachine>> Open(const StateMachineOptions& options);

  StateMachine(const StateMachine&) = delete;
  StateMachine& operator=(const StateMachine&) = delete;
  ~StateMachine();

  // Applies one batch in one transaction and returns one outcome per command, in order. A non-OK return
  // means the batch itself was refused (unknown format version) or the store failed; nothing was applied.
  // `raft_index` (if not 0) is the log index of the batch; it is recorded in the same transaction.
  // `decided`, if set, gets the outcomes as soon as they are final, before the transaction commits (the
  // commit can still fail: then Apply returns the error, and the caller must not go on from this state).
  using OutcomesDecided = absl::FunctionRef<void(const std::vector<CommandOutcome>&)>;
  absl::StatusOr<std::vector<CommandOutcome>> Apply(const v1::CommandBatch& batch, uint64_t raft_index = 0,
                                                    std::optional<OutcomesDecided> decided = std::nullopt);
  // Decodes and applies a serialized CommandBatch (a raft log entry).
  absl::StatusOr<std::vector<CommandOutcome>> ApplyEncoded(absl::string_view entry);

  // Serialises the whole state (see snapshot.proto). Deterministic: equal states give equal bytes.
  absl::StatusOr<std::string> Snapshot();
  // Replaces the whole state with a snapshot. On error the previous state is kept.
  absl::Status Restore(absl::string_view snapshot, uint64_t raft_index = 0);

  uint64_t revision() const { return stamp_.revision; }
  // The raft log index the store reflects (0 if unknown).
  uint64_t raft_index() const { return raft_index_; }
  int64_t time_ms() const { return stamp_.time_ms; }
  // Earliest expiry among allocations with a TTL, if any.
  absl::StatusOr<std::optional<int64_t>> EarliestExpiry();
  const std::string& db_path() const { return options_.db_path; }
  // Which rows each owner holds: what a StateReader needs to answer owner queries consistently.
  const std::shared_ptr<OwnerIndex>& owner_index() const { return owners_; }

  // Assignment changes since the last call and, when nodes or addresses changed, a new view of them.
  // Called after Apply or Restore by the thread that owns the state machine.
  NodeStateUpdate TakeNodeStateUpdate() { return nodes_.TakeUpdate(stamp_.revision); }
  // Whether the commands applied since the last TakeNodeStateUpdate changed node state (assignments or
  // node-bound objects).
  bool NodeStatePending() const { return nodes_.UpdatePending(); }

 private:
  struct Statements;

  StateMachine(StateMachineOptions options, Database db);
  absl::Status PrepareStatements();
  // Moves WAL checkpoints off the applying thread (see wal_checkpointer.h).
  absl::Status StartCheckpointer();
  // Rebuilds memory from the store. REQUIRES: the owner index's mutex held.
  absl::Status LoadFromDatabase();
  CommandOutcome ApplyCommand(const v1::Command& command);
  absl::Status WriteBatchEnd();

  StateMachineOptions options_;
  Database db_;
  std::unique_ptr<WalCheckpointer> checkpointer_;  // after db_: detaches from it before it closes
  std::unique_ptr<Statements> stmts_;
  std::shared_ptr<OwnerIndex> owners_;  // changed only while its mutex is held (see owner_index.h)
  domain::Stamp stamp_;
  uint64_t raft_index_ = 0;
  // The pools and allocations, the node model (which reads the pools) and the node commands, in that order.
  std::unique_ptr<Allocations> allocations_;
  domain::NodeModel nodes_;
  std::unique_ptr<NodeStore> node_store_;
  absl::Status batch_failure_;  // a store failure that must roll back the whole batch
};

}  // namespace abode::storage

#endif  // ABODE_STORAGE_STATE_MACHINE_H_

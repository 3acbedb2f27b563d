// The deterministic state machine: applies replicated command batches to the SQLite store and keeps the
// per-pool free-space index. Every replica runs one; given the same log they reach byte-identical state.
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
#include <map>
#include <memory>
#include <optional>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "abode/v1/commands.pb.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "storage/free_set.h"
#include "storage/node_state.h"
#include "storage/owner_index.h"
#include "storage/pool_layout.h"
#include "storage/sqlite.h"
#include "storage/wal_checkpointer.h"

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

class StateMachine : private NodeStateHost {
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
  absl::StatusOr<std::vector<CommandOutcome>> Apply(const v1::CommandBatch& batch, uint64_t raft_index = 0);
  // Decodes and applies a serialized CommandBatch (a raft log entry).
  absl::StatusOr<std::vector<CommandOutcome>> ApplyEncoded(absl::string_view entry);

  // Serialises the whole state (see snapshot.proto). Deterministic: equal states give equal bytes.
  absl::StatusOr<std::string> Snapshot();
  // Replaces the whole state with a snapshot. On error the previous state is kept.
  absl::Status Restore(absl::string_view snapshot, uint64_t raft_index = 0);

  uint64_t revision() const { return revision_; }
  // The raft log index the store reflects (0 if unknown).
  uint64_t raft_index() const { return raft_index_; }
  int64_t time_ms() const { return time_ms_; }
  // Earliest expiry among allocations with a TTL, if any.
  absl::StatusOr<std::optional<int64_t>> EarliestExpiry();
  const std::string& db_path() const { return options_.db_path; }
  // Which rows each owner holds: what a StateReader needs to answer owner queries consistently.
  const std::shared_ptr<OwnerIndex>& owner_index() const { return owners_; }

  // Assignment changes since the last call and, when nodes or addresses changed, a new view of them.
  // Called after Apply or Restore by the thread that owns the state machine.
  NodeStateUpdate TakeNodeStateUpdate() { return nodes_->TakeUpdate(); }

 private:
  struct PoolState {
    int64_t id = 0;
    v1::PoolSpec spec;
    PoolLayout layout;
    FreeSet free;
    uint64_t used = 0;
    std::optional<u128> cursor;  // last address handed out (sequential strategy)
    uint64_t create_revision = 0;
    int64_t create_time_ms = 0;
    bool dirty = false;
  };
  struct Statements;

  explicit StateMachine(StateMachineOptions options, Database db);
  absl::Status PrepareStatements();
  // Moves WAL checkpoints off the applying thread (see wal_checkpointer.h).
  absl::Status StartCheckpointer();
  absl::Status LoadFromDatabase();

  CommandOutcome ApplyCommand(const v1::Command& command);
  CommandOutcome CreatePool(const v1::CreatePoolRequest& req);
  CommandOutcome DeletePool(const v1::DeletePoolRequest& req);
  CommandOutcome Allocate(const v1::AllocateRequest& req);
  absl::Status RenewLease(int64_t id, int64_t ttl_seconds, v1::Allocation& a);
  std::optional<CommandOutcome> HeldByOwner(const v1::AllocateRequest& req, PoolState& pool,
                                            const std::optional<IpAddress>& wanted);
  CommandOutcome Release(const v1::ReleaseRequest& req);
  CommandOutcome Renew(const v1::RenewRequest& req);
  CommandOutcome ExpireAllocations();
  CommandOutcome PruneHistory(const v1::PruneHistory& req);

  // Frees one allocation row (already read into `alloc`): deletes it, closes its history entry.
  absl::Status FreeAllocation(PoolState& pool, int64_t row_id, const v1::Allocation& alloc, absl::string_view reason);
  absl::StatusOr<std::vector<std::pair<int64_t, v1::Allocation>>> QueryAllocations(Statement& stmt);
  // The allocations `owner` holds (in pool `pool_id` only, if not 0), by pool id, then row id.
  absl::StatusOr<std::vector<std::pair<int64_t, v1::Allocation>>> AllocationsOfOwner(absl::string_view owner,
                                                                                     int64_t pool_id);
  absl::Status AddToOwnerIndex(absl::string_view owner, int64_t row_id, int64_t pool_id);
  PoolState* PoolById(int64_t id);
  absl::StatusOr<PoolState*> PoolByName(absl::string_view name, absl::string_view field);
  v1::Pool PoolMessage(const PoolState& pool) const;
  absl::Status WriteBatchEnd();

  // NodeStateHost: what the node commands use of the pools.
  uint64_t NextRevision() override { return ++revision_; }
  uint64_t CurrentRevision() const override { return revision_; }
  int64_t NowMs() const override { return time_ms_; }
  absl::StatusOr<v1::Allocation> AllocateAddress(const v1::AllocateRequest& req) override;
  absl::Status ReleaseOwner(const std::string& owner, const std::string& pool) override;
  const v1::PoolSpec* FindPool(absl::string_view name) const override;
  absl::StatusOr<std::vector<v1::Allocation>> OwnerAllocations(absl::string_view owner) override;
  std::string PoolContaining(const IpAddress& address) const override;

  StateMachineOptions options_;
  Database db_;
  std::unique_ptr<WalCheckpointer> checkpointer_;  // after db_: detaches from it before it closes
  std::unique_ptr<Statements> stmts_;
  std::shared_ptr<OwnerIndex> owners_;  // changed only while its mutex is held (see owner_index.h)
  std::map<std::string, PoolState, std::less<>> pools_;  // by name
  absl::flat_hash_map<int64_t, std::string> pool_names_;  // id -> name
  int64_t next_pool_id_ = 1;
  uint64_t revision_ = 0;
  int64_t time_ms_ = 0;
  uint64_t raft_index_ = 0;
  // Nodes and the addresses they carry; told of every allocation the current command adds or removes.
  std::unique_ptr<NodeState> nodes_;
  std::vector<AllocationChange> allocation_changes_;
  absl::Status batch_failure_;  // a store failure that must roll back the whole batch
};

}  // namespace abode::storage

#endif  // ABODE_STORAGE_STATE_MACHINE_H_

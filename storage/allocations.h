// The pools and allocations of the state machine over SQLite: the engine of the pool and allocation
// commands. The domain's handlers (domain/allocation_commands.h) check a command, ask the policy for an
// address and return the changes; the engine writes them and, only once every write of the command
// succeeded, commits them to memory (pools, free-interval indexes, owner index), so that a command refused
// anywhere (its savepoint rolls back) leaves memory untouched.
//
// Thread safety: not thread-safe; owned by the state machine (the raft loop thread), which holds the owner
// index's mutex around every call that changes it.
#ifndef ABODE_STORAGE_ALLOCATIONS_H_
#define ABODE_STORAGE_ALLOCATIONS_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "abode/v1/commands.pb.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "domain/allocation_commands.h"
#include "domain/node_model.h"
#include "domain/pools.h"
#include "storage/owner_index.h"
#include "storage/sqlite.h"

namespace abode::storage {

using CommandOutcome = absl::StatusOr<v1::CommandResult>;
using domain::AllocationChange;
using AllocationChanges = std::vector<AllocationChange>;

using domain::AllocationLimits;

// Implements the domain's AllocationReader over the allocations table and the owner index.
class Allocations final : private domain::AllocationReader {
 public:
  // `db`, `stamp` and `owners` outlive this.
  Allocations(Database& db, domain::Stamp& stamp, OwnerIndex& owners, AllocationLimits limits);
  Allocations(const Allocations&) = delete;
  Allocations& operator=(const Allocations&) = delete;
  ~Allocations() override;

  absl::Status PrepareStatements();
  // Rebuilds the pools, free sets and owner index from the stored rows. REQUIRES: owners' mutex held.
  absl::Status Load();

  const domain::Pools& pools() const { return pools_; }
  // The domain's handlers, for the node commands that allocate and release (storage/node_store.h).
  domain::AllocationCommands& commands() { return commands_; }

  // The commands. All but PruneHistory run the domain's handler (domain/allocation_commands.h) and commit
  // the changes it returns (see Commit). Those that add or remove allocations append them to `changes`.
  // `nodes` answers whether a new pool would contain a magic address.
  CommandOutcome CreatePool(const v1::CreatePoolRequest& req, const domain::NodeModel& nodes);
  CommandOutcome DeletePool(const v1::DeletePoolRequest& req, AllocationChanges& changes);
  CommandOutcome Allocate(const v1::AllocateRequest& req, AllocationChanges& changes);
  CommandOutcome AllocateMany(const v1::AllocateManyRequest& req, AllocationChanges& changes);
  CommandOutcome Release(const v1::ReleaseRequest& req, AllocationChanges& changes);
  CommandOutcome Renew(const v1::RenewRequest& req);
  // Appends the relabelled allocations to `changes` (as AllocationChange::relabelled).
  CommandOutcome UpdateLabels(const v1::UpdateLabelsRequest& req, AllocationChanges& changes);
  CommandOutcome Expire(AllocationChanges& changes);
  CommandOutcome PruneHistory(const v1::PruneHistory& req);

  // Commits the changes a domain handler proposed, with `result` as its answer (see Commit).
  CommandOutcome CommitChangeSet(domain::AllocationChangeSet& set, CommandOutcome result, AllocationChanges& changes);

  // The allocations `owner` holds, in every pool, by pool id, then row id.
  absl::StatusOr<std::vector<v1::Allocation>> OfOwner(absl::string_view owner);
  // Visits every stored allocation, with its pool name (no prefix length or gateway).
  absl::Status ForEach(absl::FunctionRef<void(v1::Allocation)> visit);

  // Writes the counters of the pools the batch changed.
  absl::Status WriteDirtyPools();
  // Earliest expiry among allocations with a TTL, if any.
  absl::StatusOr<std::optional<int64_t>> EarliestExpiry();

 private:
  struct Statements;
  using Rows = domain::StoredAllocations;

  // domain::AllocationReader
  absl::StatusOr<Rows> OfOwner(absl::string_view owner, int64_t pool_id) override;
  absl::StatusOr<Rows> AtAddress(absl::string_view network, const domain::IpAddress& address) override;
  absl::StatusOr<Rows> InPool(int64_t pool_id) override;
  absl::StatusOr<Rows> OnNode(absl::string_view node) override;
  absl::StatusOr<Rows> ExpiredAt(int64_t time_ms, int limit) override;

  absl::StatusOr<Rows> Query(Statement& stmt);
  absl::Status AddToOwnerIndex(absl::string_view owner, int64_t row_id, int64_t pool_id);
  // Applies the outcome of a domain handler: writes `set`, then commits it to memory and appends the
  // allocations added and removed to `changes`. A refused command or a failed write changes nothing.
  CommandOutcome Commit(CommandOutcome outcome, AllocationChanges& changes) {
    return CommitChangeSet(changes_, std::move(outcome), changes);
  }
  absl::Status Write(const domain::AllocationChangeSet& c);
  absl::Status WriteRemoval(const domain::AllocationChangeSet::Removal& r);

  Database& db_;
  domain::Stamp& stamp_;
  OwnerIndex& owners_;  // changed only while its mutex is held (see owner_index.h)
  std::unique_ptr<Statements> stmts_;
  domain::Pools pools_;
  domain::AllocationCommands commands_;
  domain::AllocationChangeSet changes_;  // of the command being applied; kept to reuse its capacity
  std::vector<int64_t> inserted_rows_;   // row ids of changes_.inserts, once written
};

}  // namespace abode::storage

#endif  // ABODE_STORAGE_ALLOCATIONS_H_

// The pools and allocations of the state machine over SQLite: the engine of the pool and allocation
// commands. It checks a request (domain/allocation_policy.h), asks the policy for an address, and commits:
// first the rows, then the in-memory pools, free-interval indexes and owner index, so that a command refused
// half-way (its savepoint rolls back) leaves memory untouched.
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
#include "domain/node_model.h"
#include "domain/pools.h"
#include "storage/owner_index.h"
#include "storage/sqlite.h"

namespace abode::storage {

using CommandOutcome = absl::StatusOr<v1::CommandResult>;
using domain::AllocationChange;
using AllocationChanges = std::vector<AllocationChange>;

struct AllocationLimits {
  int64_t max_ttl_seconds = 0;
  int max_expire_per_command = 0;
};

class Allocations {
 public:
  // `db`, `stamp` and `owners` outlive this.
  Allocations(Database& db, domain::Stamp& stamp, OwnerIndex& owners, AllocationLimits limits);
  Allocations(const Allocations&) = delete;
  Allocations& operator=(const Allocations&) = delete;
  ~Allocations();

  absl::Status PrepareStatements();
  // Rebuilds the pools, free sets and owner index from the stored rows. REQUIRES: owners' mutex held.
  absl::Status Load();

  const domain::Pools& pools() const { return pools_; }

  // The commands. Those that add or remove allocations append them to `changes`. `nodes` answers whether a
  // new pool would contain a magic address.
  CommandOutcome CreatePool(const v1::CreatePoolRequest& req, const domain::NodeModel& nodes);
  CommandOutcome DeletePool(const v1::DeletePoolRequest& req, AllocationChanges& changes);
  CommandOutcome Allocate(const v1::AllocateRequest& req, AllocationChanges& changes);
  CommandOutcome Release(const v1::ReleaseRequest& req, AllocationChanges& changes);
  CommandOutcome Renew(const v1::RenewRequest& req);
  CommandOutcome Expire(AllocationChanges& changes);
  CommandOutcome PruneHistory(const v1::PruneHistory& req);

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
  using Rows = std::vector<std::pair<int64_t, v1::Allocation>>;  // (row id, allocation)

  absl::StatusOr<Rows> Query(Statement& stmt);
  absl::StatusOr<Rows> RowsOfOwner(absl::string_view owner, int64_t pool_id);
  absl::Status AddToOwnerIndex(absl::string_view owner, int64_t row_id, int64_t pool_id);
  absl::Status RenewLease(int64_t id, int64_t ttl_seconds, v1::Allocation& a);
  std::optional<CommandOutcome> HeldByOwner(const v1::AllocateRequest& req, const domain::Pool& pool,
                                            const std::optional<domain::IpAddress>& wanted);
  // Deletes one allocation row and records its history entry.
  absl::Status Free(const domain::Pool& pool, int64_t row_id, const v1::Allocation& alloc, absl::string_view reason,
                    AllocationChanges& changes);
  // Frees the rows (of any pools), then gives their addresses back in memory.
  absl::Status FreeAll(Rows& rows, absl::string_view reason, AllocationChanges& changes);
  absl::StatusOr<Rows> HoldersOf(const v1::ReleaseRequest& req, const domain::Pool* only_pool);

  Database& db_;
  domain::Stamp& stamp_;
  OwnerIndex& owners_;  // changed only while its mutex is held (see owner_index.h)
  const AllocationLimits limits_;
  std::unique_ptr<Statements> stmts_;
  domain::Pools pools_;
};

}  // namespace abode::storage

#endif  // ABODE_STORAGE_ALLOCATIONS_H_

// The pool and allocation commands (CreatePool, DeletePool, Allocate, Release, Renew, expiry) as pure code: each handler
// checks the request, asks the policy (allocation_policy.h) for an address, and returns the command's
// answer with the changes to make, without making any. The engine (storage/) writes the changes in the
// command's part of the batch transaction and, only once they are written, commits them to memory
// (CommitToPools here; its owner index itself), so a command refused anywhere leaves no trace.
//
// The handlers read stored allocations through AllocationReader (allocation_reader.h), which the engine
// implements.
//
// Not thread-safe: the engine calls it from the thread that applies commands.
#ifndef ABODE_DOMAIN_ALLOCATION_COMMANDS_H_
#define ABODE_DOMAIN_ALLOCATION_COMMANDS_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "abode/v1/commands.pb.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "domain/address.h"
#include "domain/allocation_reader.h"
#include "domain/node_model.h"
#include "domain/pools.h"

namespace abode::domain {

// The most items one AllocateMany may carry.
inline constexpr int kMaxAllocateItems = 16;

struct AllocationLimits {
  int64_t max_ttl_seconds = 0;
  int max_expire_per_command = 0;
};

// The changes of one command. Reused from command to command (Clear keeps the capacity), so that the hot
// path, one Allocate, allocates nothing of its own.
struct AllocationChangeSet {
  // A new allocation row: the request's fields, the pool's, and `value`, created at `revision`.
  struct Insert {
    Pool* pool = nullptr;
    u128 value = 0;
    const v1::AllocateRequest* request = nullptr;  // owned by the command being applied
    int64_t expire_ms = 0;
    uint64_t revision = 0;
    int result_index = -1;  // the allocation's place in an AllocateMany answer; -1 for Allocate's
  };
  // An allocation row to delete, and its history entry (ended at `revision` for `reason`).
  struct Removal {
    Pool* pool = nullptr;
    u128 value = 0;
    int64_t row_id = 0;
    v1::Allocation allocation;  // as stored
    uint64_t revision = 0;
    absl::string_view reason;  // a literal, or reason_text
  };
  // A lease restarted: the row's new TTL, expiry and revision.
  struct LeaseRenewal {
    int64_t row_id = 0;
    int64_t ttl_seconds = 0;
    int64_t expire_ms = 0;
    uint64_t revision = 0;
    int result_index = -1;  // the allocation's place in an AllocateMany answer; -1 for Allocate's
  };

  // An allocation's labels replaced in place: the row's new labels (encoded) and revision.
  struct Relabel {
    int64_t row_id = 0;
    std::string labels;  // EncodeLabels form
    uint64_t revision = 0;
    int result_index = 0;  // the allocation's place in the UpdateLabels answer
  };

  std::vector<Insert> inserts;
  // The per-item requests of an AllocateMany, which its inserts point into (reserved up front, never moved).
  std::vector<v1::AllocateRequest> item_requests;
  bool has_new_pool = false;
  Pool new_pool;  // added to the pools
  std::vector<Removal> removals;
  std::vector<LeaseRenewal> renewals;
  std::vector<Relabel> relabels;
  Pool* deleted_pool = nullptr;  // removed after its allocations
  uint64_t revision = 0;         // the global revision once the changes are made
  std::string reason_text;       // a reason composed for this command (removals point into it)

  void Clear(uint64_t start_revision) {
    inserts.clear();
    item_requests.clear();
    has_new_pool = false;
    removals.clear();
    renewals.clear();
    relabels.clear();
    deleted_pool = nullptr;
    revision = start_revision;
    reason_text.clear();
  }
};

using CommandOutcome = absl::StatusOr<v1::CommandResult>;

// The checks of an UpdateLabels request that need no state (owner, pool, labels, keep_keys).
absl::Status CheckUpdateLabelsRequest(const v1::UpdateLabelsRequest& req);

class AllocationCommands {
 public:
  // `pools` and `reader` outlive this.
  AllocationCommands(Pools& pools, AllocationReader& reader, AllocationLimits limits)
      : pools_(pools), reader_(reader), limits_(limits) {}

  // Each handler clears `out` to start at `stamp`, and on success fills it with the command's changes.
  // `nodes` answers whether the new pool would contain a magic address.
  CommandOutcome CreatePool(const v1::CreatePoolRequest& req, const NodeModel& nodes, const Stamp& stamp,
                            AllocationChangeSet& out);
  CommandOutcome Allocate(const v1::AllocateRequest& req, const Stamp& stamp, AllocationChangeSet& out);
  // All items or none: a refused item refuses the command, with its code and a message naming it.
  CommandOutcome AllocateMany(const v1::AllocateManyRequest& req, const Stamp& stamp, AllocationChangeSet& out);
  CommandOutcome Release(const v1::ReleaseRequest& req, const Stamp& stamp, AllocationChangeSet& out);
  CommandOutcome Renew(const v1::RenewRequest& req, const Stamp& stamp, AllocationChangeSet& out);
  // Replaces the labels of the owner's allocations (see UpdateLabelsRequest); unchanged ones keep their
  // revision. NOT_FOUND when the owner holds nothing (in the pool).
  CommandOutcome UpdateLabels(const v1::UpdateLabelsRequest& req, const Stamp& stamp, AllocationChangeSet& out);
  CommandOutcome Expire(const Stamp& stamp, AllocationChangeSet& out);
  CommandOutcome DeletePool(const v1::DeletePoolRequest& req, const Stamp& stamp, AllocationChangeSet& out);
  // Ends every allocation made through `node`, for `reason` (kept in `out`); returns them as they end.
  absl::StatusOr<StoredAllocations> ReleaseOnNode(absl::string_view node, std::string reason, const Stamp& stamp,
                                                  AllocationChangeSet& out);

  // Commits written changes to the pools: free sets, counters and cursors; adds a new pool (moved out of
  // `changes`) and removes a deleted one.
  void CommitToPools(AllocationChangeSet& changes);

 private:
  // One allocation of Allocate or AllocateMany into `out` (not cleared); the insert gets `result_index`.
  absl::StatusOr<v1::Allocation> AllocateOne(const v1::AllocateRequest& req, const Stamp& stamp, int result_index,
                                             AllocationChangeSet& out);
  // Ends the holdings of `held` for `reason` (one revision each); the result shows them at that revision.
  absl::Status RemoveAll(StoredAllocations& held, absl::string_view reason, AllocationChangeSet& out);
  // Restarts the lease of `a` for `ttl_seconds`, or its own TTL when that is 0 (nothing without a TTL).
  void RenewLease(int64_t row_id, int64_t ttl_seconds, int64_t time_ms, v1::Allocation& a, AllocationChangeSet& out);
  absl::StatusOr<StoredAllocations> HoldersOf(const v1::ReleaseRequest& req, const Pool* only_pool);
  absl::StatusOr<Pool*> OptionalPool(const std::string& name);
  // The allocations `owner` holds (in `pool`, if named); NOT_FOUND when there are none.
  absl::StatusOr<StoredAllocations> HeldBy(const std::string& owner, const std::string& pool);

  Pools& pools_;
  AllocationReader& reader_;
  const AllocationLimits limits_;
};

}  // namespace abode::domain

#endif  // ABODE_DOMAIN_ALLOCATION_COMMANDS_H_

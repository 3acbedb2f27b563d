// A store of allocations in memory for the domain's tests: what the engine (storage/) reads and writes,
// without SQLite.
#ifndef ABODE_DOMAIN_FAKE_ALLOCATION_STORE_H_
#define ABODE_DOMAIN_FAKE_ALLOCATION_STORE_H_

#include <algorithm>
#include <map>
#include <string>
#include <utility>

#include "domain/allocation_commands.h"
#include "domain/node_commands.h"

namespace abode::domain {

// Stored rows in a vector, and the writes an engine would make.
class FakeAllocationStore final : public AllocationReader, public AllocationScan {
 public:
  absl::StatusOr<StoredAllocations> OfOwner(absl::string_view owner, int64_t pool_id) override {
    return Matching([&](const StoredAllocation& r) {
      return r.allocation.owner() == owner && (pool_id == 0 || pool_ids_.at(r.row_id) == pool_id);
    });
  }
  absl::StatusOr<StoredAllocations> AtAddress(absl::string_view network, const IpAddress& address) override {
    return Matching([&](const StoredAllocation& r) {
      return r.allocation.network() == network && r.allocation.address() == address.ToString();
    });
  }
  absl::StatusOr<StoredAllocations> InPool(int64_t pool_id) override {
    return Matching([&](const StoredAllocation& r) { return pool_ids_.at(r.row_id) == pool_id; });
  }
  absl::StatusOr<StoredAllocations> OnNode(absl::string_view node) override {
    return Matching([&](const StoredAllocation& r) { return !node.empty() && r.allocation.node() == node; });
  }
  absl::StatusOr<StoredAllocations> ExpiredAt(int64_t time_ms, int limit) override {
    StoredAllocations out = Matching([&](const StoredAllocation& r) {
      return r.allocation.expire_time_unix_ms() > 0 && r.allocation.expire_time_unix_ms() <= time_ms;
    });
    if (out.size() > static_cast<size_t>(limit)) out.resize(static_cast<size_t>(limit));
    return out;
  }

  // Writes a change set as the engine does (the allocation an insert creates is the command's answer).
  void Write(const AllocationChangeSet& c, const v1::CommandResult& result) {
    for (const auto& in : c.inserts) {
      pool_ids_[next_id_] = in.pool->id;
      rows_.push_back(StoredAllocation{
          next_id_++, in.result_index < 0 ? result.allocation() : result.allocate_many().allocations(in.result_index)});
    }
    for (const auto& r : c.removals) {
      rows_.erase(std::find_if(rows_.begin(), rows_.end(), [&](const auto& row) { return row.row_id == r.row_id; }));
    }
    for (const auto& r : c.relabels) {
      for (auto& row : rows_) {
        if (row.row_id == r.row_id) row.allocation = result.update_labels().allocations(r.result_index);
      }
    }
    for (const auto& r : c.renewals) {
      for (auto& row : rows_) {
        if (row.row_id != r.row_id) continue;
        row.allocation.set_ttl_seconds(r.ttl_seconds);
        row.allocation.set_expire_time_unix_ms(r.expire_ms);
        row.allocation.set_revision(r.revision);
      }
    }
  }
  size_t size() const { return rows_.size(); }

  // AllocationScan
  absl::Status ForEach(absl::string_view owner, absl::FunctionRef<void(v1::Allocation)> visit) override {
    for (const auto& r : rows_) {
      if (owner.empty() || r.allocation.owner() == owner) visit(r.allocation);
    }
    return absl::OkStatus();
  }

 private:
  template <typename Pred>
  StoredAllocations Matching(Pred pred) const {
    StoredAllocations out;
    for (const auto& r : rows_) {
      if (pred(r)) out.push_back(r);
    }
    return out;
  }

  StoredAllocations rows_;
  std::map<int64_t, int64_t> pool_ids_;  // row id -> pool id
  int64_t next_id_ = 1;
};

// Adds a pool of `cidr` to `pools` as CreatePool would once committed; null when the spec is refused.
inline Pool* AddTestPool(Pools& pools, const std::string& name, const std::string& cidr, v1::PoolPurpose purpose) {
  v1::PoolSpec spec;
  spec.set_name(name);
  spec.set_cidr(cidr);
  spec.set_purpose(purpose);
  auto canonical = CanonicalizePool(spec);
  if (!canonical.ok()) return nullptr;
  Pool p;
  p.id = pools.next_id();
  p.spec = canonical->spec;
  p.layout = canonical->layout;
  p.free = p.layout.Assignable();
  return &pools.Add(std::move(p));
}

}  // namespace abode::domain

#endif  // ABODE_DOMAIN_FAKE_ALLOCATION_STORE_H_

#include "storage/owner_index.h"

#include <algorithm>

#include "absl/hash/hash.h"

namespace abode::storage {

uint64_t OwnerIndex::DefaultHash(absl::string_view owner) { return absl::HashOf(owner); }

void OwnerIndex::Add(absl::string_view owner, int64_t row_id, int64_t pool_id) {
  auto& rows = by_hash_[hash_(owner)];
  // Row ids only grow while the writer runs, but a rebuild may add them in any order: keep them sorted.
  auto at = std::upper_bound(rows.begin(), rows.end(), row_id, [](int64_t id, const Row& r) { return id < r.row_id; });
  rows.insert(at, Row{row_id, pool_id});
  ++rows_;
}

void OwnerIndex::Remove(absl::string_view owner, int64_t row_id) {
  auto it = by_hash_.find(hash_(owner));
  if (it == by_hash_.end()) return;
  auto& rows = it->second;
  auto at = std::find_if(rows.begin(), rows.end(), [&](const Row& r) { return r.row_id == row_id; });
  if (at == rows.end()) return;
  rows.erase(at);
  --rows_;
  if (rows.empty()) by_hash_.erase(it);
}

void OwnerIndex::Clear() {
  by_hash_.clear();
  rows_ = 0;
}

OwnerIndex::Rows OwnerIndex::Find(absl::string_view owner, int64_t pool_id) const {
  Rows out;
  auto it = by_hash_.find(hash_(owner));
  if (it == by_hash_.end()) return out;
  for (const Row& r : it->second) {
    if (pool_id == 0 || r.pool_id == pool_id) out.push_back(r);
  }
  return out;
}

}  // namespace abode::storage

// Which allocation rows each owner holds, kept in memory instead of as an SQLite index.
//
// Owner keys are random (pod UIDs): a B-tree index over them puts each new allocation on a leaf page of its
// own, so every allocation would write one more 4 KiB page to the WAL and, at the next checkpoint, to the
// database, on every replica. In memory the index costs one hash-table slot per owner (about 70 bytes per
// allocation at 1,000,000) and is rebuilt from the allocations table when the state machine loads.
//
// Keys are a 64-bit hash of the owner, not the owner itself (the index lives in memory only, so the hash
// need not be stable across processes): a lookup returns the rows of every owner with that hash, and callers
// keep only rows whose stored owner matches. Rows are never missed.
//
// Consistency with SQLite: the state machine holds mutex() exclusively from the start of each batch
// transaction until it has committed (or rolled back) and updated the index, so whenever the mutex is free
// the index matches the last committed state. A reader that starts its read transaction and runs its first
// statement while sharing the mutex sees that same state in SQLite, and may look rows up afterwards.
#ifndef ABODE_STORAGE_OWNER_INDEX_H_
#define ABODE_STORAGE_OWNER_INDEX_H_

#include <cstddef>
#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace abode::storage {

class OwnerIndex {
 public:
  struct Row {
    int64_t row_id = 0;   // allocations.id
    int64_t pool_id = 0;  // allocations.pool_id
  };
  using Rows = absl::InlinedVector<Row, 2>;
  using HashFn = uint64_t (*)(absl::string_view owner);

  // `hash` is for tests that need owners to collide.
  explicit OwnerIndex(HashFn hash = &DefaultHash) : hash_(hash) {}
  OwnerIndex(const OwnerIndex&) = delete;
  OwnerIndex& operator=(const OwnerIndex&) = delete;

  // Held exclusively by the writer while it changes the store and the index; shared by readers (see above).
  absl::Mutex& mutex() const ABSL_LOCK_RETURNED(mu_) { return mu_; }

  // Writer, holding mutex() exclusively.
  void Add(absl::string_view owner, int64_t row_id, int64_t pool_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Remove(absl::string_view owner, int64_t row_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Clear() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Rows that may belong to `owner`, in row order: every row it holds, and perhaps rows of owners whose key
  // hashes alike. `pool_id` (if not 0) keeps only rows of that pool. Holding mutex() (either way).
  Rows Find(absl::string_view owner, int64_t pool_id = 0) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  size_t rows() const ABSL_SHARED_LOCKS_REQUIRED(mu_) { return rows_; }

  // absl::Hash, seeded per process: owners cannot be chosen to fall into one bucket and slow every lookup.
  static uint64_t DefaultHash(absl::string_view owner);

 private:
  const HashFn hash_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<uint64_t, absl::InlinedVector<Row, 1>> by_hash_ ABSL_GUARDED_BY(mu_);
  size_t rows_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace abode::storage

#endif  // ABODE_STORAGE_OWNER_INDEX_H_

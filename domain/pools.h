// The pools of the state in memory: each pool's validated layout, its free-interval index, its counters, and
// the registry that finds pools by name, id or address. Pure: no storage, no threads.
#ifndef ABODE_DOMAIN_POOLS_H_
#define ABODE_DOMAIN_POOLS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "abode/v1/allocator.pb.h"
#include "abode/v1/pools.pb.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "domain/address.h"
#include "domain/free_set.h"
#include "domain/pool_layout.h"

namespace abode::domain {

// The global revision and the batch time, shared by every command handler of one state machine.
struct Stamp {
  uint64_t revision = 0;
  int64_t time_ms = 0;  // the leader-stamped time of the batch being applied
};

// One allocation added or removed by a command: what node placement and derivation react to.
struct AllocationChange {
  v1::Allocation allocation;
  bool added = false;
  bool relabelled = false;  // held before and after the command, with new labels (added is true)
};

struct Pool {
  int64_t id = 0;
  v1::PoolSpec spec;
  PoolLayout layout;
  FreeSet free;
  uint64_t used = 0;
  std::optional<u128> cursor;  // last address handed out (sequential strategy)
  uint64_t create_revision = 0;
  int64_t create_time_ms = 0;
  bool dirty = false;  // used or cursor changed since the store last wrote them

  // The pool as the API shows it (size, used and free counts).
  v1::Pool Message() const;
};

// A pool spec as CreatePool stores it: defaults filled in, addresses in canonical text (so that equal pools
// compare equal), with the layout it validated to.
struct CanonicalPool {
  v1::PoolSpec spec;
  PoolLayout layout;
};
absl::StatusOr<CanonicalPool> CanonicalizePool(const v1::PoolSpec& spec);

// Not thread-safe: owned by the state machine.
class Pools {
 public:
  using Map = std::map<std::string, Pool, std::less<>>;

  Pool* Find(absl::string_view name);
  const Pool* Find(absl::string_view name) const;
  Pool* ById(int64_t id);
  const Pool* ById(int64_t id) const;
  // The pool named in a request field: INVALID_ARGUMENT when empty, NOT_FOUND when unknown (naming `field`).
  absl::StatusOr<Pool*> Named(absl::string_view name, absl::string_view field);
  // FAILED_PRECONDITION when `pool` overlaps a pool of the same network.
  absl::Status CheckNoOverlap(const CanonicalPool& pool) const;
  // A pool (any network) whose CIDR contains the address; empty if none.
  std::string Containing(const IpAddress& address) const;
  // The distinct networks of all pools, in pool-name order.
  std::vector<std::string> Networks() const;

  // The id the next pool gets: one above the highest id in use, so that it follows from the pools alone (a
  // replica restored from a snapshot numbers later pools as the one that replayed the log).
  int64_t next_id() const { return next_id_; }
  Pool& Add(Pool pool);
  void Remove(absl::string_view name);
  void Clear();

  Map::iterator begin() { return by_name_.begin(); }
  Map::iterator end() { return by_name_.end(); }
  Map::const_iterator begin() const { return by_name_.begin(); }
  Map::const_iterator end() const { return by_name_.end(); }

 private:
  Map by_name_;
  absl::flat_hash_map<int64_t, std::string> names_;  // id -> name
  int64_t next_id_ = 1;
};

}  // namespace abode::domain

#endif  // ABODE_DOMAIN_POOLS_H_

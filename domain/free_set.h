// An ordered set of free address intervals. Every operation is O(log n) in the number of intervals and
// independent of how many addresses they span, so a /8 or a /48 costs the same as a /24.
#ifndef ABODE_DOMAIN_FREE_SET_H_
#define ABODE_DOMAIN_FREE_SET_H_

#include <cstddef>
#include <map>
#include <optional>

#include "domain/address.h"

namespace abode::domain {

// Not thread-safe; owned by the state machine, which runs on one thread.
class FreeSet {
 public:
  // Adds [lo, hi] (inclusive) to the set, merging with neighbours. REQUIRES: lo <= hi.
  void AddRange(u128 lo, u128 hi);
  // Removes [lo, hi] from the set wherever it is free. Returns how many addresses were removed.
  u128 RemoveRange(u128 lo, u128 hi);

  bool Contains(u128 v) const;
  // Lowest free value, if any.
  std::optional<u128> Lowest() const;
  // Lowest free value >= from, wrapping to the lowest free value overall.
  std::optional<u128> NextFrom(u128 from) const;
  // Marks v used. Returns false if v was not free.
  bool Take(u128 v);
  // Marks v free again. Returns false if v was already free.
  bool Give(u128 v);

  u128 count() const { return count_; }
  size_t interval_count() const { return intervals_.size(); }
  bool empty() const { return intervals_.empty(); }

  template <typename F>
  void ForEachInterval(F&& f) const {
    for (const auto& [lo, hi] : intervals_) f(lo, hi);
  }

 private:
  // start -> end (inclusive); intervals are disjoint and never adjacent.
  std::map<u128, u128> intervals_;
  u128 count_ = 0;
};

}  // namespace abode::domain

#endif  // ABODE_DOMAIN_FREE_SET_H_

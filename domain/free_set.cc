#include "domain/free_set.h"

#include <iterator>

namespace abode::domain {

void FreeSet::AddRange(u128 lo, u128 hi) {
  // Absorb every interval that overlaps or touches [lo, hi].
  auto it = intervals_.upper_bound(lo);
  if (it != intervals_.begin()) {
    auto prev = std::prev(it);
    if (prev->second == ~u128{0} || prev->second + 1 >= lo) it = prev;
  }
  while (it != intervals_.end() && (hi == ~u128{0} || it->first <= hi + 1)) {
    if (it->first < lo) lo = it->first;
    if (it->second > hi) hi = it->second;
    count_ -= it->second - it->first + 1;
    it = intervals_.erase(it);
  }
  intervals_.emplace_hint(it, lo, hi);
  count_ += hi - lo + 1;
}

u128 FreeSet::RemoveRange(u128 lo, u128 hi) {
  u128 removed = 0;
  auto it = intervals_.upper_bound(lo);
  if (it != intervals_.begin() && std::prev(it)->second >= lo) it = std::prev(it);
  while (it != intervals_.end() && it->first <= hi) {
    const u128 a = it->first;
    const u128 b = it->second;
    const u128 cut_lo = a > lo ? a : lo;
    const u128 cut_hi = b < hi ? b : hi;
    removed += cut_hi - cut_lo + 1;
    it = intervals_.erase(it);
    if (a < cut_lo) intervals_.emplace_hint(it, a, cut_lo - 1);
    if (cut_hi < b) it = intervals_.emplace_hint(it, cut_hi + 1, b);
  }
  count_ -= removed;
  return removed;
}

bool FreeSet::Contains(u128 v) const {
  auto it = intervals_.upper_bound(v);
  if (it == intervals_.begin()) return false;
  return std::prev(it)->second >= v;
}

std::optional<u128> FreeSet::Lowest() const {
  if (intervals_.empty()) return std::nullopt;
  return intervals_.begin()->first;
}

std::optional<u128> FreeSet::NextFrom(u128 from) const {
  if (intervals_.empty()) return std::nullopt;
  auto it = intervals_.upper_bound(from);
  if (it != intervals_.begin() && std::prev(it)->second >= from) return from;
  if (it != intervals_.end()) return it->first;
  return intervals_.begin()->first;
}

bool FreeSet::Take(u128 v) {
  auto it = intervals_.upper_bound(v);
  if (it == intervals_.begin()) return false;
  --it;
  const u128 a = it->first;
  const u128 b = it->second;
  if (b < v) return false;
  --count_;
  if (a == v && b == v) {
    intervals_.erase(it);
  } else if (a == v) {
    // Re-key the node in place instead of reallocating it: the common case for the lowest strategy.
    auto node = intervals_.extract(it);
    node.key() = v + 1;
    intervals_.insert(std::move(node));
  } else if (b == v) {
    it->second = v - 1;
  } else {
    it->second = v - 1;
    intervals_.emplace_hint(std::next(it), v + 1, b);
  }
  return true;
}

bool FreeSet::Give(u128 v) {
  if (Contains(v)) return false;
  AddRange(v, v);
  return true;
}

}  // namespace abode::domain

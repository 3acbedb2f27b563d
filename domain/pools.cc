#include "domain/pools.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace abode::domain {
namespace {

std::string Q(absl::string_view s) { return absl::StrCat("\"", s, "\""); }

}  // namespace

v1::Pool Pool::Message() const {
  v1::Pool out;
  *out.mutable_spec() = spec;
  out.set_size(U128ToString(layout.size()));
  out.set_used(used);
  out.set_free(U128ToString(free.count()));
  out.set_create_revision(create_revision);
  out.set_create_time_unix_ms(create_time_ms);
  return out;
}

absl::StatusOr<CanonicalPool> CanonicalizePool(const v1::PoolSpec& in) {
  auto layout = PoolLayout::FromSpec(in);
  if (!layout.ok()) return layout.status();
  v1::PoolSpec spec = in;
  if (spec.strategy() == v1::ALLOCATION_STRATEGY_UNSPECIFIED) spec.set_strategy(v1::ALLOCATION_STRATEGY_LOWEST);
  if (spec.purpose() == v1::POOL_PURPOSE_UNSPECIFIED) spec.set_purpose(v1::POOL_PURPOSE_WORKLOAD);
  spec.set_cidr(layout->cidr().ToString());
  if (!spec.range_start().empty()) spec.set_range_start(IpAddress(layout->family(), layout->range_first()).ToString());
  if (!spec.range_end().empty()) spec.set_range_end(IpAddress(layout->family(), layout->range_last()).ToString());
  if (layout->gateway()) spec.set_gateway(layout->gateway()->ToString());
  for (auto& e : *spec.mutable_exclude()) e = Prefix::Parse(e, "pool.exclude").value().ToString();
  return CanonicalPool{std::move(spec), std::move(*layout)};
}

Pool* Pools::Find(absl::string_view name) {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &it->second;
}

const Pool* Pools::Find(absl::string_view name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &it->second;
}

Pool* Pools::ById(int64_t id) {
  auto it = names_.find(id);
  return it == names_.end() ? nullptr : Find(it->second);
}

const Pool* Pools::ById(int64_t id) const {
  auto it = names_.find(id);
  return it == names_.end() ? nullptr : Find(it->second);
}

absl::StatusOr<Pool*> Pools::Named(absl::string_view name, absl::string_view field) {
  if (name.empty()) return absl::InvalidArgumentError(absl::StrCat(field, ": must not be empty"));
  Pool* p = Find(name);
  if (p == nullptr) return absl::NotFoundError(absl::StrCat(field, ": pool ", Q(name), " not found"));
  return p;
}

absl::Status Pools::CheckNoOverlap(const CanonicalPool& pool) const {
  const PoolLayout& layout = pool.layout;
  for (const auto& [name, other] : by_name_) {
    if (other.spec.network() != pool.spec.network() || other.layout.family() != layout.family()) continue;
    if (layout.range_first() <= other.layout.range_last() && other.layout.range_first() <= layout.range_last()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "pool.cidr: ", pool.spec.cidr(), " overlaps pool ", Q(name), " (", other.spec.cidr(), ") in network ",
          Q(pool.spec.network().empty() ? "default" : pool.spec.network()), "; use another range or network"));
    }
  }
  return absl::OkStatus();
}

std::string Pools::Containing(const IpAddress& address) const {
  for (const auto& [name, pool] : by_name_) {
    if (pool.layout.family() == address.family() && pool.layout.cidr().Contains(address)) return name;
  }
  return {};
}

std::vector<std::string> Pools::Networks() const {
  std::vector<std::string> out;
  for (const auto& [name, p] : by_name_) {
    if (std::find(out.begin(), out.end(), p.spec.network()) == out.end()) out.push_back(p.spec.network());
  }
  return out;
}

Pool& Pools::Add(Pool pool) {
  next_id_ = std::max(next_id_, pool.id + 1);
  names_[pool.id] = pool.spec.name();
  std::string name = pool.spec.name();
  return by_name_.insert_or_assign(std::move(name), std::move(pool)).first->second;
}

void Pools::Remove(absl::string_view name) {
  auto it = by_name_.find(name);
  if (it == by_name_.end()) return;
  names_.erase(it->second.id);
  by_name_.erase(it);
  next_id_ = 1;
  for (const auto& [id, n] : names_) next_id_ = std::max(next_id_, id + 1);
}

void Pools::Clear() {
  by_name_.clear();
  names_.clear();
  next_id_ = 1;
}

}  // namespace abode::domain

#include "domain/pool_layout.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "domain/validation.h"

namespace abode::domain {
namespace {

absl::StatusOr<IpAddress> ParseInside(const std::string& text, const Prefix& cidr, absl::string_view field) {
  auto a = IpAddress::Parse(text, field);
  if (!a.ok()) return a.status();
  if (a->family() != cidr.family()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", text, " is IPv", static_cast<int>(a->family()),
                                                   " but the pool cidr ", cidr.ToString(), " is IPv",
                                                   static_cast<int>(cidr.family())));
  }
  if (!cidr.Contains(*a)) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", text, " is outside the pool cidr ", cidr.ToString()));
  }
  return a;
}

}  // namespace

absl::StatusOr<PoolLayout> PoolLayout::FromSpec(const v1::PoolSpec& spec) {
  if (absl::Status s = ValidateName(spec.name(), "pool.name", false); !s.ok()) return s;
  if (absl::Status s = ValidateName(spec.network(), "pool.network", true); !s.ok()) return s;
  if (spec.cidr().empty()) return absl::InvalidArgumentError("pool.cidr: must not be empty");
  if (!v1::AllocationStrategy_IsValid(spec.strategy())) {
    return absl::InvalidArgumentError(absl::StrCat("pool.strategy: unknown value ", spec.strategy()));
  }
  if (!v1::PoolPurpose_IsValid(spec.purpose())) {
    return absl::InvalidArgumentError(absl::StrCat("pool.purpose: unknown value ", spec.purpose()));
  }
  auto cidr = Prefix::Parse(spec.cidr(), "pool.cidr");
  if (!cidr.ok()) return cidr.status();

  PoolLayout l;
  l.cidr_ = *cidr;
  l.first_ = cidr->first();
  l.last_ = cidr->last();
  if (!spec.range_start().empty()) {
    auto a = ParseInside(spec.range_start(), *cidr, "pool.range_start");
    if (!a.ok()) return a.status();
    l.first_ = a->value();
  }
  if (!spec.range_end().empty()) {
    auto a = ParseInside(spec.range_end(), *cidr, "pool.range_end");
    if (!a.ok()) return a.status();
    l.last_ = a->value();
  }
  if (l.first_ > l.last_) {
    return absl::InvalidArgumentError(absl::StrCat("pool.range_end: ", IpAddress(l.family(), l.last_).ToString(),
                                                   " is below pool.range_start ",
                                                   IpAddress(l.family(), l.first_).ToString()));
  }
  if (!spec.gateway().empty()) {
    auto g = ParseInside(spec.gateway(), *cidr, "pool.gateway");
    if (!g.ok()) return g.status();
    l.gateway_ = *g;
  }
  for (int i = 0; i < spec.exclude_size(); ++i) {
    const std::string field = absl::StrCat("pool.exclude[", i, "]");
    auto p = Prefix::Parse(spec.exclude(i), field);
    if (!p.ok()) return p.status();
    if (p->family() != cidr->family() || !cidr->Contains(*p)) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": ", spec.exclude(i), " is outside the pool cidr ", cidr->ToString()));
    }
    l.excludes_.push_back(*p);
  }

  if (l.family() == Family::kV4 && cidr->length() < 31) {
    l.reserved_.push_back(cidr->first());  // network address
    l.reserved_.push_back(cidr->last());   // broadcast address
  }
  if (l.family() == Family::kV6 && cidr->length() < 127) {
    l.reserved_.push_back(cidr->first());  // subnet-router anycast (RFC 4291 2.6.1)
  }
  if (l.gateway_) l.reserved_.push_back(l.gateway_->value());
  std::sort(l.reserved_.begin(), l.reserved_.end());
  l.reserved_.erase(std::unique(l.reserved_.begin(), l.reserved_.end()), l.reserved_.end());

  l.size_ = l.Assignable().count();
  return l;
}

FreeSet PoolLayout::Assignable() const {
  FreeSet s;
  s.AddRange(first_, last_);
  for (const Prefix& p : excludes_) s.RemoveRange(p.first(), p.last());
  for (u128 v : reserved_) s.RemoveRange(v, v);
  return s;
}

bool PoolLayout::IsAssignable(u128 v) const { return WhyNotAssignable(v).empty(); }

std::string PoolLayout::WhyNotAssignable(u128 v) const {
  if (v < first_ || v > last_) {
    return absl::StrCat("outside the pool's range ", IpAddress(family(), first_).ToString(), "-",
                        IpAddress(family(), last_).ToString());
  }
  if (gateway_ && gateway_->value() == v) return "the pool's gateway";
  if (std::binary_search(reserved_.begin(), reserved_.end(), v)) {
    if (family() == Family::kV6) return "the subnet-router anycast address";
    return v == cidr_.first() ? "the network address" : "the broadcast address";
  }
  for (const Prefix& p : excludes_) {
    if (v >= p.first() && v <= p.last()) return absl::StrCat("excluded by ", p.ToString());
  }
  return "";
}

}  // namespace abode::domain

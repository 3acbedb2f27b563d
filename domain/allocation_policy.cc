#include "domain/allocation_policy.h"

#include "absl/strings/str_cat.h"
#include "domain/validation.h"

namespace abode::domain {
namespace {

std::string Q(absl::string_view s) { return absl::StrCat("\"", s, "\""); }

}  // namespace

std::optional<u128> ProposeAddress(const Pool& pool) {
  if (pool.spec.strategy() == v1::ALLOCATION_STRATEGY_SEQUENTIAL && pool.cursor) {
    return pool.free.NextFrom(*pool.cursor == pool.layout.range_last() ? pool.layout.range_first() : *pool.cursor + 1);
  }
  return pool.free.Lowest();
}

absl::Status CheckTtl(int64_t ttl_seconds, int64_t max_ttl_seconds, absl::string_view field) {
  if (ttl_seconds < 0 || ttl_seconds > max_ttl_seconds) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", ttl_seconds, " is outside 0..", max_ttl_seconds));
  }
  return absl::OkStatus();
}

absl::Status CheckAllocateRequest(const v1::AllocateRequest& req, int64_t max_ttl_seconds) {
  if (absl::Status s = ValidateOwner(req.owner(), "owner"); !s.ok()) return s;
  if (absl::Status s = ValidateNodeName(req.node(), "node"); !s.ok()) return s;
  if (absl::Status s = ValidateLabels(req.labels(), "labels"); !s.ok()) return s;
  return CheckTtl(req.ttl_seconds(), max_ttl_seconds, "ttl_seconds");
}

absl::StatusOr<std::optional<IpAddress>> RequestedAddress(const Pool& pool, absl::string_view address) {
  if (address.empty()) return std::optional<IpAddress>();
  auto a = IpAddress::Parse(address, "address");
  if (!a.ok()) return a.status();
  if (a->family() != pool.layout.family() || !pool.layout.cidr().Contains(*a)) {
    return absl::InvalidArgumentError(absl::StrCat("address: ", a->ToString(), " is outside pool ",
                                                   Q(pool.spec.name()), " (", pool.spec.cidr(), ")"));
  }
  if (std::string why = pool.layout.WhyNotAssignable(a->value()); !why.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("address: ", a->ToString(), " is ", why, " of pool ",
                                                   Q(pool.spec.name()), " and is never handed out"));
  }
  return std::optional<IpAddress>(*a);
}

v1::Allocation NewAllocation(const Pool& pool, const IpAddress& address, const v1::AllocateRequest& req,
                             const Stamp& stamp) {
  v1::Allocation a;
  a.set_pool(pool.spec.name());
  a.set_network(pool.spec.network());
  a.set_address(address.ToString());
  a.set_prefix_length(pool.layout.cidr().length());
  if (pool.layout.gateway()) a.set_gateway(pool.layout.gateway()->ToString());
  a.set_owner(req.owner());
  a.set_node(req.node());
  *a.mutable_labels() = req.labels();
  a.set_ttl_seconds(req.ttl_seconds());
  a.set_expire_time_unix_ms(req.ttl_seconds() > 0 ? stamp.time_ms + req.ttl_seconds() * 1000 : 0);
  a.set_create_time_unix_ms(stamp.time_ms);
  a.set_create_revision(stamp.revision);
  a.set_revision(stamp.revision);
  return a;
}

}  // namespace abode::domain

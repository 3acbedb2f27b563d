// The validated shape of a pool: which addresses of its CIDR may be handed out. Built from a PoolSpec by the
// gRPC layer (to refuse bad input early) and by the state machine (the authority).
#ifndef ABODE_DOMAIN_POOL_LAYOUT_H_
#define ABODE_DOMAIN_POOL_LAYOUT_H_

#include <optional>
#include <vector>

#include "abode/v1/pools.pb.h"
#include "absl/status/statusor.h"
#include "domain/address.h"
#include "domain/free_set.h"

namespace abode::domain {

class PoolLayout {
 public:
  // Validates the spec. Errors are INVALID_ARGUMENT naming the field (pool.cidr, pool.range_start, ...).
  static absl::StatusOr<PoolLayout> FromSpec(const v1::PoolSpec& spec);

  const Prefix& cidr() const { return cidr_; }
  Family family() const { return cidr_.family(); }
  // The range addresses are drawn from (the CIDR narrowed by range_start/range_end).
  u128 range_first() const { return first_; }
  u128 range_last() const { return last_; }
  const std::optional<IpAddress>& gateway() const { return gateway_; }

  // Every address that may be handed out: the range minus reserved and excluded addresses.
  FreeSet Assignable() const;
  // Number of addresses in Assignable(), computed without building it twice.
  u128 size() const { return size_; }
  bool IsAssignable(u128 v) const;
  // Why v is not assignable, for error messages ("the pool's gateway", "excluded by 10.0.0.0/30", ...).
  std::string WhyNotAssignable(u128 v) const;

 private:
  Prefix cidr_;
  u128 first_ = 0;
  u128 last_ = 0;
  std::optional<IpAddress> gateway_;
  std::vector<Prefix> excludes_;
  std::vector<u128> reserved_;  // network, broadcast, subnet-router anycast, gateway
  u128 size_ = 0;
};

}  // namespace abode::domain

#endif  // ABODE_DOMAIN_POOL_LAYOUT_H_

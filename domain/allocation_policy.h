// How an allocation gets its address, split as in ISC Kea: the policy only *proposes* an address of a pool;
// the command handlers (allocation_commands.h) check the request, ask the policy and return the changes,
// which the engine (storage::Allocations) commits to the store and the indexes. Pure: no storage, no threads.
#ifndef ABODE_DOMAIN_ALLOCATION_POLICY_H_
#define ABODE_DOMAIN_ALLOCATION_POLICY_H_

#include <cstdint>
#include <optional>

#include "abode/v1/allocator.pb.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "domain/address.h"
#include "domain/pools.h"

namespace abode::domain {

// The free address the pool's strategy picks next: the lowest free address (LOWEST), or the first free
// address after the last one handed out, wrapping (SEQUENTIAL). Nothing when the pool is full.
std::optional<u128> ProposeAddress(const Pool& pool);

// The checks of an Allocate request that need no pool: owner, node, labels and TTL (at most max_ttl_seconds).
absl::Status CheckAllocateRequest(const v1::AllocateRequest& req, int64_t max_ttl_seconds);
// INVALID_ARGUMENT naming `field` unless 0 <= ttl_seconds <= max_ttl_seconds.
absl::Status CheckTtl(int64_t ttl_seconds, int64_t max_ttl_seconds, absl::string_view field);
// The address a request asks for in `pool` (nothing if `address` is empty): refused when it is outside the
// pool or one the pool never hands out (network, broadcast, gateway, excluded).
absl::StatusOr<std::optional<IpAddress>> RequestedAddress(const Pool& pool, absl::string_view address);

// An allocation as Allocate answers it: the request's fields, the pool's, and the stamp.
v1::Allocation NewAllocation(const Pool& pool, const IpAddress& address, const v1::AllocateRequest& req,
                             const Stamp& stamp);

}  // namespace abode::domain

#endif  // ABODE_DOMAIN_ALLOCATION_POLICY_H_

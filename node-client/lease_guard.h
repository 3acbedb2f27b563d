// Interface between abode-node's reconciler and the kernel's enforcement of the node's lease. The real
// implementation is NftRuleProgrammer (nft_lease_guard.cc); the in-memory twin is FakeLeaseGuard.
//
// External and elastic addresses are "guarded": the kernel answers ARP and neighbour solicitations for a guarded
// address, and lets traffic to or from it pass, only while the node's lease runs. The lease is one kernel timer
// (an nftables set element timeout) shared by all the guarded addresses, which the agent renews; when the agent
// stops renewing (killed, hung), the lease ends and the node falls silent for every guarded address by itself.
#ifndef ABODE_NODE_CLIENT_LEASE_GUARD_H_
#define ABODE_NODE_CLIENT_LEASE_GUARD_H_

#include <chrono>
#include <set>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace abode::node {

// Thread safety: an instance is used by one thread at a time.
class LeaseGuard {
 public:
  virtual ~LeaseGuard() = default;

  // Makes the kernel guard exactly `guarded` (canonical IPv4 and IPv6 addresses). When that changes what the
  // kernel guards, every guarded address is leased for `lease_left` from now in the same atomic step (0: none
  // is leased, so all fall silent) and the result is true. When the kernel already guards exactly `guarded`
  // (also as left by an earlier process), nothing is sent, leases are left as they are, and the result is false.
  virtual absl::StatusOr<bool> Guard(const std::set<std::string>& guarded, std::chrono::milliseconds lease_left) = 0;

  // Leases every guarded address for `lease_left` from now, in one atomic step whose cost does not depend on
  // their number.
  // REQUIRES: Guard() succeeded before; lease_left > 0.
  virtual absl::Status Renew(std::chrono::milliseconds lease_left) = 0;
};

}  // namespace abode::node

#endif  // ABODE_NODE_CLIENT_LEASE_GUARD_H_

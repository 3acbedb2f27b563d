// Interfaces between abode-node's reconciler and the kernel's address state. Real implementations live in
// netlink_address_programmer.h and neighbour_announcer.h; in-memory twins in fake_address_programmer.h.
#ifndef ABODE_NODE_CLIENT_ADDRESS_PROGRAMMER_H_
#define ABODE_NODE_CLIENT_ADDRESS_PROGRAMMER_H_

#include <chrono>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kernel_model.h"

namespace abode::node {

// Places and removes the addresses abode-node owns. An implementation only ever lists and removes addresses it
// placed itself; addresses placed by anyone else are never touched.
// Thread safety: an instance is used by one thread at a time.
class AddressProgrammer {
 public:
  virtual ~AddressProgrammer() = default;

  // Every address abode-node owns on the node, in ascending order.
  virtual absl::StatusOr<std::vector<OwnedAddress>> ListOwned() = 0;

  // Places `address`, permanently. Already present and owned: success, nothing changes. Held by someone else
  // (on any interface): FailedPrecondition naming the address and the holder's interface. Missing interface:
  // NotFound naming it.
  virtual absl::Status Add(const OwnedAddress& address) = 0;
  // As Add(address), but the kernel removes the address by itself once `valid_for` has passed without a
  // Renew() (valid and preferred lifetime), also when abode-node is dead. REQUIRES: valid_for >= 1 s.
  virtual absl::Status Add(const OwnedAddress& address, std::chrono::seconds valid_for) = 0;
  // Sets the lifetime of owned `addresses` to `valid_for` from now, in as few kernel round trips as possible.
  // Addresses that are absent are skipped (an expired one is placed again by Add). REQUIRES: valid_for >= 1 s.
  virtual absl::Status Renew(const std::vector<OwnedAddress>& addresses, std::chrono::seconds valid_for) = 0;

  // Removes `address` if abode-node owns it. Absent: success. Held by someone else: FailedPrecondition, and the
  // address stays.
  virtual absl::Status Remove(const OwnedAddress& address) = 0;
};

// Tells the link's neighbours that an address moved here: a gratuitous ARP request for IPv4, an unsolicited
// neighbour advertisement with the override flag for IPv6.
class Announcer {
 public:
  virtual ~Announcer() = default;

  // REQUIRES: `address` is assigned to its interface and the interface is up.
  virtual absl::Status Announce(const OwnedAddress& address) = 0;
};

}  // namespace abode::node

#endif  // ABODE_NODE_CLIENT_ADDRESS_PROGRAMMER_H_

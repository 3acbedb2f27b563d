// AddressProgrammer on rtnetlink through libnl-route-3.
//
// Ownership: every address abode-node places carries the kernel's address protocol attribute (IFA_PROTO,
// Linux >= 6.1) set to kAbodeAddressProtocol, and only addresses carrying that value are listed or removed.
// The kernel stores the attribute with the address and reports it in every dump, for IPv4 and IPv6 alike, so the
// mark survives restarts of abode-node and needs no side file. The alternatives were weaker: an IPv4 label is
// limited to 15 characters, must start with the interface name and does not exist for IPv6; remembering the
// addresses in a local file goes stale when someone else changes the interface. libnl 3.7 does not know
// IFA_PROTO, so RTM_NEWADDR and the address dump are built and parsed here with libnl's nl_msg API.
//
// Every Add() must know whether anyone holds the address on any interface. Rather than dumping all addresses
// for each call (quadratic when placing many), the programmer keeps a table of the node's addresses: one dump,
// then the kernel's address notifications (RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR), read before each call.
// If notifications were lost (socket overrun) the table is dumped again.
#ifndef ABODE_NODE_CLIENT_NETLINK_ADDRESS_PROGRAMMER_H_
#define ABODE_NODE_CLIENT_NETLINK_ADDRESS_PROGRAMMER_H_

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "address_programmer.h"
#include "kernel_model.h"
#include "unique_fd.h"

struct nl_sock;
struct nl_cache;

namespace abode::node {

// The IFA_PROTO value that marks abode's addresses. The kernel reserves 0..3 (unspec, loopback, router
// advertisement, link-local); iproute2 prints other values as numbers.
inline constexpr uint8_t kAbodeAddressProtocol = 0xab;

struct NlSockDeleter {
  void operator()(nl_sock* sock) const;
};
struct NlCacheDeleter {
  void operator()(nl_cache* cache) const;
};
using NlSockPtr = std::unique_ptr<nl_sock, NlSockDeleter>;
using NlCachePtr = std::unique_ptr<nl_cache, NlCacheDeleter>;

class NetlinkAddressProgrammer final : public AddressProgrammer {
 public:
  // Opens a rtnetlink socket. All later calls act on the network namespace of the calling thread at the time of
  // Create(), whichever thread makes them.
  static absl::StatusOr<std::unique_ptr<NetlinkAddressProgrammer>> Create();

  absl::StatusOr<std::vector<OwnedAddress>> ListOwned() override;
  absl::Status Add(const OwnedAddress& address) override;
  absl::Status Add(const OwnedAddress& address, std::chrono::seconds valid_for) override;
  // One RTM_NEWADDR (replace) per address, sent in batches of many messages per system call on a socket of its
  // own, so that renewing 10,000 addresses costs a few dozen round trips.
  absl::Status Renew(const std::vector<OwnedAddress>& addresses, std::chrono::seconds valid_for) override;
  absl::Status Remove(const OwnedAddress& address) override;

  // Kernel round trips made so far (requests and dumps, not notifications): for tests and benchmarks.
  int64_t round_trips() const { return round_trips_; }

  // One address as the kernel reports it.
  struct KernelAddress {
    int ifindex = 0;
    IpAddress address;
    int prefix_len = 0;
    uint8_t protocol = 0;  // IFA_PROTO, 0 when absent
  };

 private:
  NetlinkAddressProgrammer(NlSockPtr sock, NlSockPtr events, NlCachePtr links, UniqueFd renewals);

  // valid_for 0: permanent.
  absl::Status Place(const OwnedAddress& address, std::chrono::seconds valid_for);

  absl::StatusOr<int> InterfaceIndex(const std::string& interface);
  std::string InterfaceName(int ifindex) const;
  // Brings addresses_ up to date: applies pending notifications, or dumps everything when out of sync.
  absl::Status Refresh();
  absl::Status Resync();

  NlSockPtr sock_;    // requests and dumps
  NlSockPtr events_;  // address notifications, non-blocking
  NlCachePtr links_;
  UniqueFd renewals_;  // raw rtnetlink socket for batched renewals
  uint32_t renewal_seq_ = 1;
  bool synced_ = false;
  // Every address of the node by address; one address may be held on several interfaces.
  std::multimap<IpAddress, KernelAddress> addresses_;
  int64_t round_trips_ = 0;
};

}  // namespace abode::node

#endif  // ABODE_NODE_CLIENT_NETLINK_ADDRESS_PROGRAMMER_H_

// Announcer on raw sockets: gratuitous ARP through an AF_PACKET socket, unsolicited neighbour advertisements
// through an ICMPv6 raw socket.
#ifndef ABODE_NODE_CLIENT_NEIGHBOUR_ANNOUNCER_H_
#define ABODE_NODE_CLIENT_NEIGHBOUR_ANNOUNCER_H_

#include <array>
#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "address_programmer.h"
#include "unique_fd.h"

namespace abode::node {

class NeighbourAnnouncer final : public Announcer {
 public:
  // Opens the sockets. Interfaces are looked up, and frames sent, in the network namespace of the calling thread
  // at the time of Create(), whichever thread later calls Announce().
  static absl::StatusOr<std::unique_ptr<NeighbourAnnouncer>> Create();

  absl::Status Announce(const OwnedAddress& address) override;

 private:
  NeighbourAnnouncer(UniqueFd packet, UniqueFd icmp6);

  struct Link {
    int ifindex = 0;
    std::array<uint8_t, 6> mac{};
  };
  absl::StatusOr<Link> LookUp(const std::string& interface) const;
  absl::Status SendGratuitousArp(const Link& link, const OwnedAddress& address, const uint8_t* ip) const;
  absl::Status SendNeighbourAdvertisement(const Link& link, const OwnedAddress& address, const uint8_t* ip) const;

  UniqueFd packet_;  // AF_PACKET, SOCK_DGRAM, sends only
  UniqueFd icmp6_;   // AF_INET6, SOCK_RAW, IPPROTO_ICMPV6, receives nothing
};

}  // namespace abode::node

#endif  // ABODE_NODE_CLIENT_NEIGHBOUR_ANNOUNCER_H_

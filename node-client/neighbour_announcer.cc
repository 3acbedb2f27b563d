#include "neighbour_announcer.h"

#include <net/if.h>
// After net/if.h: the kernel headers then leave its definitions alone.
#include <arpa/inet.h>
#include <linux/if_arp.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace abode::node {

namespace {

std::string Errno(int error) { return std::strerror(error); }

}  // namespace

absl::StatusOr<std::unique_ptr<NeighbourAnnouncer>> NeighbourAnnouncer::Create() {
  // Protocol 0: the packet socket is bound to nothing and so receives nothing.
  UniqueFd packet(socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!packet.valid()) {
    return absl::PermissionDeniedError(absl::StrCat("cannot open a packet socket: ", Errno(errno)));
  }
  UniqueFd icmp6(socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMPV6));
  if (!icmp6.valid()) {
    return absl::PermissionDeniedError(absl::StrCat("cannot open an ICMPv6 socket: ", Errno(errno)));
  }
  icmp6_filter filter;
  ICMP6_FILTER_SETBLOCKALL(&filter);
  const int hops = 255;  // RFC 4861: neighbour discovery messages carry hop limit 255
  if (setsockopt(icmp6.get(), IPPROTO_ICMPV6, ICMP6_FILTER, &filter, sizeof(filter)) < 0 ||
      setsockopt(icmp6.get(), IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &hops, sizeof(hops)) < 0) {
    return absl::InternalError(absl::StrCat("cannot configure the ICMPv6 socket: ", Errno(errno)));
  }
  return std::unique_ptr<NeighbourAnnouncer>(new NeighbourAnnouncer(std::move(packet), std::move(icmp6)));
}

NeighbourAnnouncer::NeighbourAnnouncer(UniqueFd packet, UniqueFd icmp6)
    : packet_(std::move(packet)), icmp6_(std::move(icmp6)) {}

absl::StatusOr<NeighbourAnnouncer::Link> NeighbourAnnouncer::LookUp(const std::string& interface) const {
  if (interface.size() >= IFNAMSIZ) {
    return absl::InvalidArgumentError(absl::StrCat("'", interface, "' is not an interface name"));
  }
  ifreq request = {};
  std::memcpy(request.ifr_name, interface.data(), interface.size());
  Link link;
  // The ioctls run on the packet socket so that they see the namespace the socket was opened in.
  if (ioctl(packet_.get(), SIOCGIFINDEX, &request) < 0) {
    return absl::NotFoundError(absl::StrCat("interface ", interface, " does not exist"));
  }
  link.ifindex = request.ifr_ifindex;
  if (ioctl(packet_.get(), SIOCGIFHWADDR, &request) < 0) {
    return absl::InternalError(absl::StrCat("cannot read the hardware address of ", interface, ": ", Errno(errno)));
  }
  if (request.ifr_hwaddr.sa_family != ARPHRD_ETHER) {
    return absl::FailedPreconditionError(absl::StrCat("interface ", interface, " is not an Ethernet interface"));
  }
  std::memcpy(link.mac.data(), request.ifr_hwaddr.sa_data, link.mac.size());
  return link;
}

absl::Status NeighbourAnnouncer::Announce(const OwnedAddress& address) {
  if (absl::Status s = ValidateOwnedAddress(address); !s.ok()) return s;
  absl::StatusOr<IpAddress> ip = IpAddress::Parse(address.address);
  if (!ip.ok()) return ip.status();
  absl::StatusOr<Link> link = LookUp(address.interface);
  if (!link.ok()) return link.status();
  return ip->family == IpFamily::kIpv4 ? SendGratuitousArp(*link, address, ip->bytes.data())
                                       : SendNeighbourAdvertisement(*link, address, ip->bytes.data());
}

absl::Status NeighbourAnnouncer::SendGratuitousArp(const Link& link, const OwnedAddress& address,
                                                   const uint8_t* ip) const {
  // An ARP request whose sender and target are both the address: every neighbour that caches the address
  // updates its entry to this link's hardware address, and nobody answers.
  struct [[gnu::packed]] ArpPacket {
    uint16_t hardware_type;
    uint16_t protocol_type;
    uint8_t hardware_length;
    uint8_t protocol_length;
    uint16_t operation;
    uint8_t sender_mac[6];
    uint8_t sender_ip[4];
    uint8_t target_mac[6];
    uint8_t target_ip[4];
  } arp = {};
  arp.hardware_type = htons(ARPHRD_ETHER);
  arp.protocol_type = htons(ETH_P_IP);
  arp.hardware_length = 6;
  arp.protocol_length = 4;
  arp.operation = htons(ARPOP_REQUEST);
  std::memcpy(arp.sender_mac, link.mac.data(), 6);
  std::memcpy(arp.sender_ip, ip, 4);
  std::memcpy(arp.target_ip, ip, 4);

  sockaddr_ll destination = {};
  destination.sll_family = AF_PACKET;
  destination.sll_protocol = htons(ETH_P_ARP);
  destination.sll_ifindex = link.ifindex;
  destination.sll_halen = 6;
  std::memset(destination.sll_addr, 0xff, 6);
  if (sendto(packet_.get(), &arp, sizeof(arp), 0, reinterpret_cast<const sockaddr*>(&destination),
             sizeof(destination)) != static_cast<ssize_t>(sizeof(arp))) {
    return absl::UnavailableError(
        absl::StrCat("cannot send a gratuitous ARP for ", address.ToString(), ": ", Errno(errno)));
  }
  return absl::OkStatus();
}

absl::Status NeighbourAnnouncer::SendNeighbourAdvertisement(const Link& link, const OwnedAddress& address,
                                                            const uint8_t* ip) const {
  // Unsolicited, override set, to all nodes, with the target link-layer address option (RFC 4861 7.2.6).
  struct [[gnu::packed]] Advertisement {
    nd_neighbor_advert header;
    uint8_t option_type;
    uint8_t option_length;  // in units of 8 bytes
    uint8_t mac[6];
  } advert = {};
  advert.header.nd_na_type = ND_NEIGHBOR_ADVERT;
  advert.header.nd_na_code = 0;
  advert.header.nd_na_flags_reserved = ND_NA_FLAG_OVERRIDE;
  std::memcpy(&advert.header.nd_na_target, ip, 16);
  advert.option_type = ND_OPT_TARGET_LINKADDR;
  advert.option_length = 1;
  std::memcpy(advert.mac, link.mac.data(), 6);

  sockaddr_in6 destination = {};
  destination.sin6_family = AF_INET6;
  inet_pton(AF_INET6, "ff02::1", &destination.sin6_addr);
  destination.sin6_scope_id = static_cast<uint32_t>(link.ifindex);

  // The advertisement leaves from the announced address itself, on the announced interface.
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(in6_pktinfo))] = {};
  iovec payload = {&advert, sizeof(advert)};
  msghdr message = {};
  message.msg_name = &destination;
  message.msg_namelen = sizeof(destination);
  message.msg_iov = &payload;
  message.msg_iovlen = 1;
  message.msg_control = control;
  message.msg_controllen = sizeof(control);
  cmsghdr* cmsg = CMSG_FIRSTHDR(&message);
  cmsg->cmsg_level = IPPROTO_IPV6;
  cmsg->cmsg_type = IPV6_PKTINFO;
  cmsg->cmsg_len = CMSG_LEN(sizeof(in6_pktinfo));
  in6_pktinfo info = {};
  std::memcpy(&info.ipi6_addr, ip, 16);
  info.ipi6_ifindex = static_cast<unsigned>(link.ifindex);
  std::memcpy(CMSG_DATA(cmsg), &info, sizeof(info));
  if (sendmsg(icmp6_.get(), &message, 0) != static_cast<ssize_t>(sizeof(advert))) {
    return absl::UnavailableError(
        absl::StrCat("cannot send a neighbour advertisement for ", address.ToString(), ": ", Errno(errno)));
  }
  return absl::OkStatus();
}

}  // namespace abode::node

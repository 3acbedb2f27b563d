// NeighbourAnnouncer against the real kernel: the announcement is captured on the wire in a peer namespace.
#include "neighbour_announcer.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <sys/socket.h>

#include <array>
#include <chrono>
#include <cstring>
#include <optional>

#include "absl/strings/str_cat.h"
#include "netlink_address_programmer.h"
#include "netns_testing.h"
#include "test-support/eventually.h"

namespace abode::node {
namespace {

using ::abode::node::testing::ScopedNetns;
using ::testing::HasSubstr;

// Ethernet frames as received on `interface` in the calling thread's namespace (link header included).
absl::StatusOr<UniqueFd> Capture(const std::string& interface, uint16_t ethertype) {
  UniqueFd fd(socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ethertype)));
  if (!fd.valid()) return absl::InternalError(absl::StrCat("packet socket: ", std::strerror(errno)));
  sockaddr_ll address = {};
  address.sll_family = AF_PACKET;
  address.sll_protocol = htons(ethertype);
  address.sll_ifindex = static_cast<int>(if_nametoindex(interface.c_str()));
  if (address.sll_ifindex == 0 || bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) < 0) {
    return absl::InternalError(absl::StrCat("bind to ", interface, ": ", std::strerror(errno)));
  }
  return fd;
}

// Reads frames until `match` accepts one or two seconds pass.
template <typename Match>
bool SawFrame(const UniqueFd& fd, Match match) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  std::array<uint8_t, 2048> frame;
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p = {fd.get(), POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    const ssize_t n = recv(fd.get(), frame.data(), frame.size(), 0);
    if (n > 0 && match(frame.data(), static_cast<size_t>(n))) return true;
  }
  return false;
}

class NeighbourAnnouncerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ABODE_SKIP_UNLESS_KERNEL_TESTS();
    for (auto [slot, role] : {std::pair{&node_, "annnode"}, {&peer_, "annpeer"}}) {
      absl::StatusOr<ScopedNetns> ns = ScopedNetns::Create(role);
      ASSERT_TRUE(ns.ok()) << ns.status();
      slot->emplace(std::move(*ns));
    }
    ABODE_ASSERT_OK(node_->Run(absl::StrCat("ip link add n0 address 02:ab:0d:e0:00:01 type veth peer name p0 netns ",
                                            peer_->name(), " && ip link set n0 up")));
    ABODE_ASSERT_OK(peer_->Run("ip link set p0 up"));
    ABODE_ASSERT_OK(node_->Inside([&] {
      absl::StatusOr<std::unique_ptr<NeighbourAnnouncer>> announcer = NeighbourAnnouncer::Create();
      ASSERT_TRUE(announcer.ok()) << announcer.status();
      announcer_ = std::move(*announcer);
      absl::StatusOr<std::unique_ptr<NetlinkAddressProgrammer>> addresses = NetlinkAddressProgrammer::Create();
      ASSERT_TRUE(addresses.ok()) << addresses.status();
      addresses_ = std::move(*addresses);
    }));
    ASSERT_NE(announcer_, nullptr);
    ASSERT_NE(addresses_, nullptr);
  }

  UniqueFd CaptureOnPeer(uint16_t ethertype) {
    UniqueFd fd;
    EXPECT_TRUE(peer_
                    ->Inside([&] {
                      absl::StatusOr<UniqueFd> capture = Capture("p0", ethertype);
                      ASSERT_TRUE(capture.ok()) << capture.status();
                      fd = std::move(*capture);
                    })
                    .ok());
    return fd;
  }

  static constexpr uint8_t kNodeMac[6] = {0x02, 0xab, 0x0d, 0xe0, 0x00, 0x01};
  std::optional<ScopedNetns> node_;
  std::optional<ScopedNetns> peer_;
  std::unique_ptr<NeighbourAnnouncer> announcer_;
  std::unique_ptr<NetlinkAddressProgrammer> addresses_;
};

TEST_F(NeighbourAnnouncerTest, GratuitousArpReachesTheLink) {
  const OwnedAddress address{"n0", "192.0.2.50", 32};
  ABODE_ASSERT_OK(addresses_->Add(address));
  UniqueFd capture = CaptureOnPeer(ETH_P_ARP);
  ASSERT_TRUE(capture.valid());
  ABODE_ASSERT_OK(announcer_->Announce(address));

  const uint8_t ip[4] = {192, 0, 2, 50};
  EXPECT_TRUE(SawFrame(capture, [&](const uint8_t* f, size_t n) {
    // Ethernet (14) + ARP (28).
    if (n < 42) return false;
    const bool broadcast = std::memcmp(f, "\xff\xff\xff\xff\xff\xff", 6) == 0;
    const uint8_t* arp = f + 14;
    const bool request = arp[6] == 0 && arp[7] == 1;
    return broadcast && request && std::memcmp(f + 6, kNodeMac, 6) == 0 && std::memcmp(arp + 8, kNodeMac, 6) == 0 &&
           std::memcmp(arp + 14, ip, 4) == 0 && std::memcmp(arp + 24, ip, 4) == 0;
  })) << "no gratuitous ARP for 192.0.2.50 seen on the peer";
}

TEST_F(NeighbourAnnouncerTest, UnsolicitedNeighbourAdvertisementReachesTheLink) {
  const OwnedAddress address{"n0", "2001:db8::50", 128};
  ABODE_ASSERT_OK(addresses_->Add(address));
  UniqueFd capture = CaptureOnPeer(ETH_P_IPV6);
  ASSERT_TRUE(capture.valid());
  ABODE_ASSERT_OK(announcer_->Announce(address));

  in6_addr target;
  inet_pton(AF_INET6, "2001:db8::50", &target);
  in6_addr all_nodes;
  inet_pton(AF_INET6, "ff02::1", &all_nodes);
  EXPECT_TRUE(SawFrame(capture, [&](const uint8_t* f, size_t n) {
    // Ethernet (14) + IPv6 (40) + NA (24) + target link-layer option (8).
    if (n < 86) return false;
    const uint8_t* ip6 = f + 14;
    const uint8_t* na = ip6 + 40;
    const bool icmp6 = ip6[6] == IPPROTO_ICMPV6;
    const bool hop_limit_255 = ip6[7] == 255;
    const bool to_all_nodes = std::memcmp(ip6 + 24, &all_nodes, 16) == 0;
    const bool advert = na[0] == 136 && (na[4] & 0x20) != 0 /* override */ && (na[4] & 0x40) == 0 /* solicited */;
    const bool about_target = std::memcmp(na + 8, &target, 16) == 0;
    const bool option = na[24] == 2 && na[25] == 1 && std::memcmp(na + 26, kNodeMac, 6) == 0;
    return icmp6 && hop_limit_255 && to_all_nodes && advert && about_target && option;
  })) << "no unsolicited neighbour advertisement for 2001:db8::50 seen on the peer";
}

TEST_F(NeighbourAnnouncerTest, PeerNeighbourCacheFollowsTheAnnouncement) {
  // The peer first learns another hardware address for the address, then hears the announcement.
  ABODE_ASSERT_OK(
      peer_->Run("ip addr add 192.0.2.1/24 dev p0 && "
                 "ip neigh replace 192.0.2.51 lladdr 02:00:00:00:00:99 dev p0 nud stale"));
  ABODE_ASSERT_OK(node_->Run("ip addr add 192.0.2.2/24 dev n0"));
  ABODE_ASSERT_OK(addresses_->Add({"n0", "192.0.2.51", 32}));
  ABODE_ASSERT_OK(announcer_->Announce({"n0", "192.0.2.51", 32}));
  EXPECT_TRUE(test_support::Eventually(
      [&] {
        return peer_->Exec("ip neigh show 192.0.2.51 dev p0").output.find("02:ab:0d:e0:00:01") != std::string::npos;
      },
      std::chrono::seconds(2), std::chrono::milliseconds(100)))
      << peer_->Exec("ip neigh show dev p0").output;
}

TEST_F(NeighbourAnnouncerTest, NamesAMissingInterface) {
  absl::Status status = announcer_->Announce({"absent0", "192.0.2.50", 32});
  EXPECT_TRUE(absl::IsNotFound(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr("absent0"));
}

}  // namespace
}  // namespace abode::node

// abode-node end to end: real abode-allocator and abode-node processes in network namespaces (see
// e2e_fixture.h for the layout). Needs root; skips without it unless CI is set.
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "e2e_fixture.h"
#include "test-support/eventually.h"

namespace abode::node::e2e {
namespace {

TEST_F(NodeE2eTest, MagicAddressReachesTheAgentOnTheSameNodeAndFollowsItsReplacement) {
  ExpectMagicAddressReachesTheLocalAgentAndFollowsItsReplacement(kIpv4);
}

TEST_F(NodeE2eTest, Ipv6MagicAddressReachesTheAgentOnTheSameNodeAndFollowsItsReplacement) {
  ExpectMagicAddressReachesTheLocalAgentAndFollowsItsReplacement(kIpv6);
}

TEST_F(NodeE2eTest, ElasticAddressReachesThePodAndIsItsSourceOutside) {
  ExpectElasticAddressReachesThePodAndIsItsSourceOutside(kIpv4);
}

TEST_F(NodeE2eTest, Ipv6ElasticAddressReachesThePodAndIsItsSourceOutside) {
  ExpectElasticAddressReachesThePodAndIsItsSourceOutside(kIpv6);
}

TEST_F(NodeE2eTest, RestartUnderTrafficRemovesAndReAddsNothing) {
  const ScopedNetns& db = AddPod(nodes_[0], 30, "pod/db", {{"app", "db"}});
  CreateElastic(elastic_.get(), kIpv4.external_pool, kIpv4.elastic, "pod/db");
  UniqueFd pod_socket = Udp(db, "0.0.0.0", 9000);
  ASSERT_TRUE(SendUntilReceived(*outside_, "203.0.113.101", 9000, pod_socket, "warm-up").has_value());

  // Watch node A's addresses and nf_tables ruleset for any change while abode-node restarts.
  KernelMonitors monitors;
  // IPv4 only: this scenario's addresses are IPv4, and IPv6 link-local DAD on the fresh links is kernel noise.
  monitors.Start(*nodes_[0].ns, dir_, "-4");
  const std::string addresses_before = nodes_[0].ns->Exec("ip -4 -br addr show dev up0; ip -4 -br addr show dev pbr0").output;

  std::atomic<bool> stop{false};
  std::atomic<int> sent{0};
  UniqueFd sender = Udp(*outside_, "0.0.0.0", 0);
  std::thread traffic([&] {
    while (!stop.load()) {
      if (SendUdp(sender, "203.0.113.101", 9000, "steady").ok()) sent.fetch_add(1);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  int received = 0;
  std::thread receiver([&] {
    while (true) {
      auto got = ReceiveUdp(pod_socket, std::chrono::milliseconds(500));
      if (!got.ok()) {
        if (stop.load()) return;
        continue;
      }
      received += got->payload == "steady";
    }
  });

  EXPECT_EQ(WEXITSTATUS(nodes_[0].agent->Signal(SIGTERM)), 0);
  nodes_[0].log += ".restarted";
  StartAgent(nodes_[0]);
  // Wait (bounded) for the new process to take its snapshot, then for two more of its reconciles (the
  // periodic resync runs every 2 s): the restarted agent has had its chance to change something.
  ASSERT_TRUE(test_support::Eventually([&] { return LogContains(nodes_[0].log, "stream open"); },
                                       std::chrono::seconds(20), std::chrono::milliseconds(50)))
      << nodes_[0].log;
  const long long reconciles = std::max(0LL, Reconciles(nodes_[0]));
  ASSERT_TRUE(test_support::Eventually([&] { return Reconciles(nodes_[0]) >= reconciles + 2; },
                                       std::chrono::seconds(20), std::chrono::milliseconds(100)))
      << "reconciles: " << reconciles << " then " << Reconciles(nodes_[0]) << "; see " << nodes_[0].log;
  stop.store(true);
  traffic.join();
  receiver.join();
  monitors.Stop();

  // The elastic address's lease is renewed (nft reports each renewal), perhaps its lifetime too (the kernel
  // reports each renewal); nothing else may change.
  EXPECT_THAT(monitors.AddressChanges(addresses_before), ::testing::IsEmpty()) << "addresses changed";
  EXPECT_THAT(monitors.RuleChanges(), ::testing::IsEmpty()) << monitors.RuleEvents();
  EXPECT_EQ(nodes_[0].ns->Exec("ip -4 -br addr show dev up0; ip -4 -br addr show dev pbr0").output, addresses_before);
  EXPECT_FALSE(LogContains(nodes_[0].log, "placed ")) << "the restarted process placed an address again";
  using ::testing::HasSubstr;
  using ::testing::Not;
  // Its metrics say the same: it follows the allocator, holds the elastic address, and changed nothing.
  const std::string metrics = ScrapeAgent(nodes_[0]);
  EXPECT_THAT(metrics, HasSubstr("\nabode_node_stream_up 1\n"));
  EXPECT_THAT(metrics, HasSubstr("\nabode_node_assignments{state=\"error\"} 0\n"));
  EXPECT_THAT(metrics, Not(HasSubstr("\nabode_node_assignments{state=\"ok\"} 0\n")));
  EXPECT_THAT(metrics, HasSubstr("\nabode_node_addresses_added_total 0\n"));
  EXPECT_THAT(metrics, HasSubstr("\nabode_node_addresses_removed_total 0\n"));
  std::printf("restart under traffic: %d datagrams sent, %d received\n", sent.load(), received);
  EXPECT_EQ(received, sent.load());
}

TEST_F(NodeE2eTest, ExternalAddressFailsOverToTheOtherNodeWithGratuitousArp) {
  // Both nodes ready before the claim is placed.
  test_support::Eventually(
      [&] {
        grpc::ClientContext ctx;
        ctx.set_deadline(Deadline());
        v1::ListNodesResponse list;
        int ready = 0;
        if (nodes_api_->ListNodes(&ctx, v1::ListNodesRequest(), &list).ok()) {
          for (const auto& n : list.nodes()) ready += n.ready();
        }
        return ready == 2;
      },
      std::chrono::seconds(20), std::chrono::milliseconds(50));
  v1::ExternalAddress external;
  ASSERT_NO_FATAL_FAILURE(CreateExternal("web", "public", "203.0.113.100", &external));
  const int first = external.node() == "node-a" ? 0 : 1;
  ASSERT_EQ(external.node(), nodes_[first].name);
  NodeHandle& serving = nodes_[first];
  NodeHandle& standby = nodes_[1 - first];
  UniqueFd serving_socket = Udp(*serving.ns, "0.0.0.0", 7000);
  UniqueFd standby_socket = Udp(*standby.ns, "0.0.0.0", 7000);
  ASSERT_TRUE(SendUntilReceived(*outside_, "203.0.113.100", 7000, serving_socket, "before").has_value())
      << serving.log;

  // Listen for ARP on the outside segment before the failover.
  UniqueFd arp;
  Ok(outside_->Inside([&] {
    arp = UniqueFd(::socket(AF_PACKET, SOCK_DGRAM, htons(ETH_P_ARP)));
    sockaddr_ll sll{};
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(ETH_P_ARP);
    sll.sll_ifindex = static_cast<int>(if_nametoindex("lan0"));
    ASSERT_EQ(::bind(arp.get(), reinterpret_cast<sockaddr*>(&sll), sizeof(sll)), 0);
    timeval tv{0, 200000};
    ::setsockopt(arp.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }));
  std::string standby_mac = standby.ns->Exec("cat /sys/class/net/up0/address").output;
  standby_mac = standby_mac.substr(0, 17);

  EXPECT_EQ(WEXITSTATUS(serving.agent->Signal(SIGTERM)), 0);
  Ok(serving.ns->Run("ip link set up0 down"));
  const auto stopped = Clock::now();
  auto after = SendUntilReceived(*outside_, "203.0.113.100", 7000, standby_socket, "after", std::chrono::seconds(30));
  const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - stopped);
  ASSERT_TRUE(after.has_value()) << "the standby never answered; see " << standby.log;
  std::printf("external address failover: outside reached the standby %lld ms after the serving agent stopped "
              "(node lease 1500 ms)\n", static_cast<long long>(elapsed.count()));

  // A gratuitous ARP request from the standby's uplink: sender and target address both the external address.
  bool seen = false;
  for (int i = 0; i < 100 && !seen; ++i) {
    uint8_t frame[128];
    const ssize_t n = ::recv(arp.get(), frame, sizeof(frame), 0);
    if (n < 28) {
      if (n < 0) break;  // nothing more queued
      continue;
    }
    char mac[18];
    std::snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", frame[8], frame[9], frame[10], frame[11],
                  frame[12], frame[13]);
    char spa[INET_ADDRSTRLEN], tpa[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, frame + 14, spa, sizeof(spa));
    inet_ntop(AF_INET, frame + 24, tpa, sizeof(tpa));
    seen = std::string(spa) == "203.0.113.100" && std::string(tpa) == "203.0.113.100" && standby_mac == mac;
  }
  EXPECT_TRUE(seen) << "no gratuitous ARP for 203.0.113.100 from " << standby_mac;
}

}  // namespace
}  // namespace abode::node::e2e

// abode-node end to end, what must hold when things go wrong: a dead agent's external address leaves with its
// lease; a flow to a magic address is never stranded, whatever the order in which its target appears; "drop"
// drops in the kernel; a restart that outlasts the lease changes nothing of the node's own. Real abode-allocator
// and abode-node processes in network namespaces (see e2e_fixture.h). Needs root; skips without it unless CI
// is set.
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>

#include <cstring>
#include <set>
#include <sstream>

#include "e2e_fixture.h"
#include "absl/strings/str_join.h"
#include "kernel_model.h"
#include "test-support/eventually.h"

namespace abode::node::e2e {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr std::chrono::milliseconds kLease(1500);  // the fixture's --node-lease-ms

// A TCP listener on the wildcard address of `family` in `ns`.
UniqueFd TcpListen(const ScopedNetns& ns, const Family& f, uint16_t port) {
  UniqueFd fd;
  EXPECT_TRUE(ns.Inside([&] {
                  socklen_t length = 0;
                  auto local = testing::SocketAddress(f.ipv6 ? "::" : "0.0.0.0", port, &length);
                  ASSERT_TRUE(local.ok());
                  fd = UniqueFd(::socket(local->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
                  int one = 1;
                  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
                  ASSERT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&*local), length), 0) << std::strerror(errno);
                  ASSERT_EQ(::listen(fd.get(), 16), 0);
                }).ok());
  return fd;
}

// Connects from `ns` (through its eth0) to address:port: OK once established, else the reason.
absl::Status TcpConnect(const ScopedNetns& ns, const std::string& address, uint16_t port,
                        std::chrono::milliseconds limit) {
  absl::Status result = absl::InternalError("not run");
  const absl::Status entered = ns.Inside([&] {
    socklen_t length = 0;
    auto remote = testing::SocketAddress(address, port, &length, "eth0");
    if (!remote.ok()) {
      result = remote.status();
      return;
    }
    UniqueFd fd(::socket(remote->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&*remote), length) != 0 && errno != EINPROGRESS) {
      result = absl::UnavailableError(absl::StrCat("connect: ", std::strerror(errno)));
      return;
    }
    pollfd p = {fd.get(), POLLOUT, 0};
    if (::poll(&p, 1, static_cast<int>(limit.count())) <= 0) {
      result = absl::DeadlineExceededError("connect: no answer");
      return;
    }
    int error = 0;
    socklen_t size = sizeof(error);
    ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &error, &size);
    result = error == 0 ? absl::OkStatus() : absl::UnavailableError(absl::StrCat("connect: ", std::strerror(error)));
  });
  return entered.ok() ? result : entered;
}

// Whether `listener` accepts a connection within `limit`.
bool Accepts(const UniqueFd& listener, std::chrono::milliseconds limit) {
  pollfd p = {listener.get(), POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(limit.count())) <= 0) return false;
  UniqueFd accepted(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  return accepted.valid();
}

// Sends from one socket (one source port, so one conntrack entry) every 20 ms until destroyed.
class SteadySender {
 public:
  SteadySender(UniqueFd socket, std::string address, uint16_t port)
      : socket_(std::move(socket)), address_(std::move(address)), port_(port), thread_([this] {
          while (!stop_.load()) {
            if (SendUdp(socket_, address_, port_, "steady").ok()) sent_.fetch_add(1);
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
          }
        }) {}
  ~SteadySender() {
    stop_.store(true);
    thread_.join();
  }
  int sent() const { return sent_.load(); }
  // Waits (bounded) until `n` more datagrams than now have left.
  bool SendMore(int n) {
    const int target = sent() + n;
    return test_support::Eventually([&] { return sent() >= target; }, std::chrono::seconds(10),
                                    std::chrono::milliseconds(10));
  }

 private:
  UniqueFd socket_;
  std::string address_;
  uint16_t port_;
  std::atomic<bool> stop_{false};
  std::atomic<int> sent_{0};
  std::thread thread_;
};

// Whether `receiver` gets a "steady" datagram within `limit`.
bool ReceivesSteady(const UniqueFd& receiver, std::chrono::milliseconds limit) {
  for (const auto deadline = Clock::now() + limit; Clock::now() < deadline;) {
    auto got = ReceiveUdp(receiver, std::chrono::milliseconds(50));
    if (got.ok() && got->payload == "steady") return true;
  }
  return false;
}

// Who answers for an address on the outside segment: each round, the outside host forgets its neighbours, sends a
// datagram to the address (which makes it resolve the address: ARP for IPv4, a neighbour solicitation for IPv6)
// and collects, for 300 ms, the hardware addresses of the ARP replies or neighbour advertisements for it.
class NeighbourProbe {
 public:
  NeighbourProbe(const ScopedNetns& outside, std::string address)
      : outside_(outside), address_(std::move(address)), ipv6_(address_.find(':') != std::string::npos) {
    EXPECT_TRUE(outside_.Inside([&] {
                  const uint16_t protocol = htons(ipv6_ ? ETH_P_IPV6 : ETH_P_ARP);
                  socket_ = UniqueFd(::socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, protocol));
                  sockaddr_ll sll{};
                  sll.sll_family = AF_PACKET;
                  sll.sll_protocol = protocol;
                  sll.sll_ifindex = static_cast<int>(if_nametoindex("lan0"));
                  ASSERT_EQ(::bind(socket_.get(), reinterpret_cast<sockaddr*>(&sll), sizeof(sll)), 0);
                  auto prober = BindUdp(ipv6_ ? "::" : "0.0.0.0", 0);
                  ASSERT_TRUE(prober.ok()) << prober.status();
                  prober_ = std::move(*prober);
                }).ok());
    EXPECT_EQ(::inet_pton(ipv6_ ? AF_INET6 : AF_INET, address_.c_str(), target_), 1);
  }

  std::set<std::string> AnsweringMacs() {
    while (::recv(socket_.get(), nullptr, 0, MSG_DONTWAIT) >= 0) {
    }
    outside_.Exec("ip neigh flush dev lan0");
    SendUdp(prober_, address_, 7000, "probe").IgnoreError();
    std::set<std::string> macs;
    for (const auto until = Clock::now() + std::chrono::milliseconds(300); Clock::now() < until;) {
      pollfd p = {socket_.get(), POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      uint8_t frame[256];
      sockaddr_ll from{};
      socklen_t from_length = sizeof(from);
      const ssize_t n =
          ::recvfrom(socket_.get(), frame, sizeof(frame), 0, reinterpret_cast<sockaddr*>(&from), &from_length);
      if (ipv6_) {
        // IPv6 header (40 bytes, next header ICMPv6), then a neighbour advertisement: type 136, target at 8.
        if (n < 64 || frame[6] != IPPROTO_ICMPV6 || frame[40] != 136) continue;
        if (std::memcmp(frame + 48, target_, 16) != 0) continue;
      } else {
        // An ARP reply whose sender protocol address is the address.
        if (n < 28 || frame[7] != 2 || std::memcmp(frame + 14, target_, 4) != 0) continue;
      }
      char mac[18];
      std::snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", from.sll_addr[0], from.sll_addr[1],
                    from.sll_addr[2], from.sll_addr[3], from.sll_addr[4], from.sll_addr[5]);
      macs.insert(mac);
    }
    return macs;
  }

 private:
  const ScopedNetns& outside_;
  std::string address_;
  bool ipv6_;
  uint8_t target_[16] = {};
  UniqueFd socket_;
  UniqueFd prober_;
};

class NodeGuaranteesTest : public NodeE2eTest {
 protected:
  void CreateMagic(const Family& f, v1::MagicPolicy policy = v1::MAGIC_POLICY_DROP) {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    v1::CreateMagicAddressRequest req;
    req.mutable_address()->set_name("dd");
    req.mutable_address()->set_address(f.magic);
    auto* udp = req.mutable_address()->add_ports();
    udp->set_protocol(v1::PROTOCOL_UDP);
    udp->set_port(8125);
    auto* tcp = req.mutable_address()->add_ports();
    tcp->set_protocol(v1::PROTOCOL_TCP);
    tcp->set_port(8126);
    req.mutable_address()->set_label_selector("app=dd-agent");
    req.mutable_address()->set_policy(policy);
    v1::MagicAddress created;
    const grpc::Status s = magic_->CreateMagicAddress(&ctx, req, &created);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  void Release(const std::string& owner) {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    v1::ReleaseRequest req;
    req.set_owner(owner);
    v1::ReleaseResponse released;
    const grpc::Status s = alloc_->Release(&ctx, req, &released);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  // The node's readiness as the allocator sees it.
  std::optional<bool> Ready(const std::string& node) {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    v1::GetNodeRequest req;
    req.set_name(node);
    v1::Node got;
    if (!nodes_api_->GetNode(&ctx, req, &got).ok()) return std::nullopt;
    return got.ready();
  }
  bool AwaitReady(const std::string& node, bool ready, std::chrono::seconds limit = std::chrono::seconds(20)) {
    return test_support::Eventually([&] { return Ready(node) == ready; }, limit);
  }

  // The statuses the allocator holds for `node`, by assignment id.
  std::map<std::string, v1::AssignmentStatus> Statuses(const std::string& node) {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    v1::GetNodeRequest req;
    req.set_name(node);
    v1::Node got;
    std::map<std::string, v1::AssignmentStatus> out;
    if (!nodes_api_->GetNode(&ctx, req, &got).ok()) return out;
    for (const auto& s : got.statuses()) out[s.id()] = s;
    return out;
  }

  // Packets counted by the magic drop rule of `family` on `node` (-1: no such rule).
  int64_t Dropped(const NodeHandle& node, const Family& f) {
    const std::string listing =
        node.ns->Exec(absl::StrCat("nft list chain ", f.ipv6 ? "ip6" : "ip", " abode drop_prerouting")).output;
    const size_t at = listing.find("counter packets ");
    if (at == std::string::npos) return -1;
    return std::stoll(listing.substr(at + 16));
  }

  // The magic scenario of one family: the three orders in which a target can appear after traffic started.
  void ExpectNoFlowToTheMagicAddressIsStranded(const Family& f) {
    const std::string any = AnyAddress(f.magic);
    const ScopedNetns& app_a = AddPod(nodes_[0], 20, "pod/app-a", {{"app", "statsd-client"}});
    const ScopedNetns& agent_1 = AddPod(nodes_[0], 10, "pod/agent-1", {{"app", "other"}});
    UniqueFd agent_1_udp = Udp(agent_1, any, 8125);
    UniqueFd agent_1_tcp = TcpListen(agent_1, f, 8126);

    // 1. The app sends before `magic create` (its datagrams go nowhere, but conntrack records the flow).
    SteadySender sender_a(Udp(app_a, any, 0), f.magic, 8125);
    ASSERT_TRUE(sender_a.SendMore(25));
    // The agent appears (labelled now: a new pod with the label), then the magic address.
    const ScopedNetns& agent_1b = AddPod(nodes_[0], 11, "pod/agent-1b", {{"app", "dd-agent"}});
    UniqueFd agent_1b_udp = Udp(agent_1b, any, 8125);
    UniqueFd agent_1b_tcp = TcpListen(agent_1b, f, 8126);
    CreateMagic(f);
    EXPECT_TRUE(ReceivesSteady(agent_1b_udp, std::chrono::seconds(10)))
        << "created after the app started: its one-socket flow never reached the agent; see " << nodes_[0].log;
    EXPECT_TRUE(TcpConnect(app_a, f.magic, 8126, std::chrono::seconds(5)).ok());
    EXPECT_TRUE(Accepts(agent_1b_tcp, std::chrono::seconds(5)));

    // 2. Release, then allocate the replacement (a DaemonSet's update order): in between, no target.
    Release("pod/agent-1b");
    const std::string drop_set = absl::StrCat("nft list set ", f.ipv6 ? "ip6" : "ip", " abode magic_drop");
    EXPECT_TRUE(test_support::Eventually(
        [&] { return nodes_[0].ns->Exec(drop_set).output.find("8125") != std::string::npos; },
        std::chrono::seconds(10)))
        << "the released port never became a drop; see " << nodes_[0].log;
    ASSERT_TRUE(sender_a.SendMore(25));  // the flow keeps going while nothing answers
    const ScopedNetns& agent_2 = AddPod(nodes_[0], 12, "pod/agent-2", {{"app", "dd-agent"}});
    UniqueFd agent_2_udp = Udp(agent_2, any, 8125);
    UniqueFd agent_2_tcp = TcpListen(agent_2, f, 8126);
    EXPECT_TRUE(ReceivesSteady(agent_2_udp, std::chrono::seconds(10)))
        << "released, then replaced: the one-socket flow never reached the replacement; see " << nodes_[0].log;
    EXPECT_TRUE(TcpConnect(app_a, f.magic, 8126, std::chrono::seconds(5)).ok());
    EXPECT_TRUE(Accepts(agent_2_tcp, std::chrono::seconds(5)));

    // 3. An app on a node whose agent does not exist yet.
    const ScopedNetns& app_b = AddPod(nodes_[1], 20, "pod/app-b", {{"app", "statsd-client"}});
    SteadySender sender_b(Udp(app_b, any, 0), f.magic, 8125);
    ASSERT_TRUE(sender_b.SendMore(25));
    const ScopedNetns& agent_b = AddPod(nodes_[1], 10, "pod/agent-b", {{"app", "dd-agent"}});
    UniqueFd agent_b_udp = Udp(agent_b, any, 8125);
    UniqueFd agent_b_tcp = TcpListen(agent_b, f, 8126);
    EXPECT_TRUE(ReceivesSteady(agent_b_udp, std::chrono::seconds(10)))
        << "the agent came after the app: the one-socket flow never reached it; see " << nodes_[1].log;
    EXPECT_TRUE(TcpConnect(app_b, f.magic, 8126, std::chrono::seconds(5)).ok());
    EXPECT_TRUE(Accepts(agent_b_tcp, std::chrono::seconds(5)));
    EXPECT_FALSE(Accepts(agent_1_tcp, std::chrono::milliseconds(0)));  // the unlabelled pod never got any
  }

  // Packets counted by the rule of the lease guard table `family` (ip, ip6, arp) chain `chain` whose listing line
  // contains `match` (-1: no such rule).
  int64_t GuardDrops(const NodeHandle& node, const std::string& family, const std::string& chain,
                     const std::string& match) {
    std::istringstream lines(node.ns->Exec(absl::StrCat("nft list chain ", family, " abode_lease ", chain)).output);
    std::string line;
    while (std::getline(lines, line)) {
      const size_t at = line.find("counter packets ");
      if (line.find(match) != std::string::npos && at != std::string::npos) return std::stoll(line.substr(at + 16));
    }
    return -1;
  }

  // kill -9 of the agent serving an external address, its uplink up: within the lease (and a small margin) the
  // dead node stops answering ARP (IPv4) or neighbour solicitations (IPv6) for the address, and only the node
  // that took the address over answers. The address itself stays on the dead node (its lifetime is a long
  // backstop): the kernel falls silent for it by the guard's lease alone, with no process running.
  void ExpectAKilledAgentsExternalAddressFallsSilentWithItsLease(const Family& f, const std::string& address) {
    ASSERT_TRUE(AwaitReady("node-a", true) && AwaitReady("node-b", true));
    v1::ExternalAddress external;
    ASSERT_NO_FATAL_FAILURE(CreateExternal("web", f.external_pool, address, &external));
    NodeHandle& serving = nodes_[external.node() == "node-a" ? 0 : 1];
    NodeHandle& standby = nodes_[external.node() == "node-a" ? 1 : 0];
    UniqueFd serving_socket = Udp(*serving.ns, AnyAddress(address), 7000);
    ASSERT_TRUE(SendUntilReceived(*outside_, address, 7000, serving_socket, "before").has_value()) << serving.log;
    const std::string serving_mac = serving.ns->Exec("cat /sys/class/net/up0/address").output.substr(0, 17);
    const std::string standby_mac = standby.ns->Exec("cat /sys/class/net/up0/address").output.substr(0, 17);
    NeighbourProbe probe(*outside_, address);
    ASSERT_EQ(probe.AnsweringMacs(), std::set<std::string>{serving_mac});

    serving.agent->Signal(SIGKILL);
    const auto killed = Clock::now();
    // The lease element's timeout ends with the lease, checked at every lookup; the margin covers the probe's
    // round (300 ms) and scheduling.
    const auto bound = kLease + std::chrono::milliseconds(500);
    std::optional<std::chrono::milliseconds> silent;  // the dead node no longer answers
    std::optional<std::chrono::milliseconds> settled;  // only the standby answers
    std::set<std::string> last;
    while (!settled && Clock::now() - killed < bound + std::chrono::seconds(10)) {
      last = probe.AnsweringMacs();
      const auto since = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - killed);
      if (!silent && last.count(serving_mac) == 0) silent = since;
      if (last.count(serving_mac) > 0) silent.reset();
      if (last == std::set<std::string>{standby_mac}) settled = since;
    }
    ASSERT_TRUE(settled.has_value()) << "after kill -9, " << absl::StrJoin(last, ", ") << " answer for " << address
                                     << " (the standby is " << standby_mac << "); see " << standby.log;
    std::printf("%s external address: the dead node silent %lld ms, only the standby answers %lld ms after kill -9 "
                "(node lease %lld ms)\n",
                f.ipv6 ? "IPv6" : "IPv4", static_cast<long long>(silent->count()),
                static_cast<long long>(settled->count()), static_cast<long long>(kLease.count()));
    EXPECT_LE(*silent, bound);
    // Silent by the guard, not by the address leaving: it is still there, and the guard counts what it dropped.
    EXPECT_THAT(serving.ns->Exec("ip -br addr show dev up0").output, HasSubstr(address + "/"));
    if (f.ipv6) {
      EXPECT_GT(GuardDrops(serving, "ip6", "prerouting", "nd-neighbor-solicit"), 0);
    } else {
      EXPECT_GT(GuardDrops(serving, "arp", "input", "arp daddr ip"), 0);
    }
    // Nor does it take traffic for the address, even sent straight to its hardware address.
    const std::string family = f.ipv6 ? "ip6" : "ip";
    const std::string daddr = f.ipv6 ? "ip6 daddr" : "ip daddr";
    const int64_t dropped = GuardDrops(serving, family, "prerouting", daddr);
    Drain(serving_socket);
    Ok(outside_->Run(absl::StrCat("ip neigh replace ", address, " lladdr ", serving_mac, " dev lan0 nud permanent")));
    UniqueFd sender = Udp(*outside_, AnyAddress(address), 0);
    for (int i = 0; i < 5; ++i) EXPECT_TRUE(SendUdp(sender, address, 7000, "to-the-dead-node").ok());
    EXPECT_TRUE(test_support::Eventually(
        [&] { return GuardDrops(serving, family, "prerouting", daddr) >= dropped + 5; }, std::chrono::seconds(5)))
        << "dropped " << GuardDrops(serving, family, "prerouting", daddr) << ", before " << dropped;
    for (const std::string& payload : Drain(serving_socket)) EXPECT_NE(payload, "to-the-dead-node");
    Ok(outside_->Run(absl::StrCat("ip neigh del ", address, " dev lan0")));

    // It stays so, also when the killed agent starts again: it does not place the address again.
    serving.log += ".restarted";
    StartAgent(serving);
    ASSERT_TRUE(AwaitReady(serving.name, true));
    for (int round = 0; round < 6; ++round) {
      EXPECT_EQ(probe.AnsweringMacs(), std::set<std::string>{standby_mac}) << "round " << round;
    }
    EXPECT_FALSE(LogContains(serving.log, "placed " + address));
  }

  // Policy drop: no agent anywhere; a process on the node listening on the mapped ports gets nothing, and the
  // kernel counts what it dropped.
  void ExpectDropDropsInTheKernel(const Family& f) {
    const std::string any = AnyAddress(f.magic);
    const ScopedNetns& app = AddPod(nodes_[0], 20, "pod/app", {{"app", "statsd-client"}});
    UniqueFd host_udp = Udp(*nodes_[0].ns, any, 8125);
    UniqueFd host_tcp = TcpListen(*nodes_[0].ns, f, 8126);
    CreateMagic(f);
    int64_t dropped = -1;
    test_support::Eventually([&] { return (dropped = Dropped(nodes_[0], f)) >= 0; }, std::chrono::seconds(10));
    ASSERT_GE(dropped, 0) << "no drop rule on node A; see " << nodes_[0].log;
    {
      SteadySender sender(Udp(app, any, 0), f.magic, 8125);
      // Until the kernel counted 20 of them (TCP attempts count too).
      EXPECT_FALSE(TcpConnect(app, f.magic, 8126, std::chrono::milliseconds(500)).ok());
      test_support::Eventually([&] { return Dropped(nodes_[0], f) >= dropped + 20; }, std::chrono::seconds(10));
    }
    const int64_t now_dropped = Dropped(nodes_[0], f);
    std::printf("%s policy drop: %lld packets dropped\n", f.ipv6 ? "IPv6" : "IPv4",
                static_cast<long long>(now_dropped - dropped));
    EXPECT_GE(now_dropped, dropped + 20);
    EXPECT_THAT(Drain(host_udp), IsEmpty()) << "a host listener received the pod's datagrams";
    EXPECT_FALSE(Accepts(host_tcp, std::chrono::milliseconds(0))) << "a host listener accepted the pod's connection";
  }
};

TEST_F(NodeGuaranteesTest, AKilledAgentsExternalAddressFallsSilentWithItsLease) {
  ExpectAKilledAgentsExternalAddressFallsSilentWithItsLease(kIpv4, "203.0.113.100");
}

TEST_F(NodeGuaranteesTest, AKilledAgentsIpv6ExternalAddressFallsSilentWithItsLease) {
  ExpectAKilledAgentsExternalAddressFallsSilentWithItsLease(kIpv6, "2001:db8:113::100");
}

TEST_F(NodeGuaranteesTest, AKilledAgentsElasticAddressCarriesNoTrafficAfterItsLease) {
  ASSERT_TRUE(AwaitReady("node-a", true) && AwaitReady("node-b", true));
  const ScopedNetns& db = AddPod(nodes_[0], 30, "pod/db", {{"app", "db"}});
  CreateElastic(elastic_.get(), kIpv4.external_pool, kIpv4.elastic, "pod/db");
  UniqueFd pod_socket = Udp(db, "0.0.0.0", 9000);
  UniqueFd outside_socket = Udp(*outside_, kIpv4.outside, 9001);
  ASSERT_TRUE(SendUntilReceived(*outside_, kIpv4.elastic, 9000, pod_socket, "inbound").has_value()) << nodes_[0].log;
  ASSERT_TRUE(SendUntilReceived(db, kIpv4.outside, 9001, outside_socket, "outbound").has_value()) << nodes_[0].log;
  const std::string node_mac = nodes_[0].ns->Exec("cat /sys/class/net/up0/address").output.substr(0, 17);

  nodes_[0].agent->Signal(SIGKILL);
  const auto killed = Clock::now();
  // The node's lease element (one for all its guarded addresses) ends within the lease.
  ASSERT_TRUE(test_support::Eventually(
      [&] {
        return nodes_[0].ns->Exec("nft list set ip abode_lease alive").output.find("expires") == std::string::npos;
      },
      kLease + std::chrono::seconds(5)));
  std::printf("elastic address: lease element gone %lld ms after kill -9 (node lease %lld ms)\n",
              static_cast<long long>(
                  std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - killed).count()),
              static_cast<long long>(kLease.count()));
  // New flows, sent straight to the dead node: nothing reaches the pod; the pod's traffic does not leave with
  // the elastic address; the guard counts both. The address and its mapping are still in place.
  Drain(pod_socket);
  Drain(outside_socket);
  const int64_t inbound = GuardDrops(nodes_[0], "ip", "prerouting", "ip daddr");
  const int64_t outbound = GuardDrops(nodes_[0], "ip", "postrouting", "ip saddr");
  Ok(outside_->Run(absl::StrCat("ip neigh replace ", kIpv4.elastic, " lladdr ", node_mac, " dev lan0 nud permanent")));
  UniqueFd late_outside = Udp(*outside_, "0.0.0.0", 0);
  UniqueFd late_pod = Udp(db, "0.0.0.0", 0);
  for (int i = 0; i < 5; ++i) {
    EXPECT_TRUE(SendUdp(late_outside, kIpv4.elastic, 9000, "after the lease").ok());
    EXPECT_TRUE(SendUdp(late_pod, kIpv4.outside, 9001, "after the lease").ok());
  }
  EXPECT_TRUE(test_support::Eventually(
      [&] {
        return GuardDrops(nodes_[0], "ip", "prerouting", "ip daddr") >= inbound + 5 &&
               GuardDrops(nodes_[0], "ip", "postrouting", "ip saddr") >= outbound + 5;
      },
      std::chrono::seconds(5)))
      << nodes_[0].ns->Exec("nft list table ip abode_lease").output;
  for (const std::string& payload : Drain(pod_socket)) EXPECT_NE(payload, "after the lease");
  for (const std::string& payload : Drain(outside_socket)) EXPECT_NE(payload, "after the lease");
  EXPECT_THAT(nodes_[0].ns->Exec("ip -br addr show dev up0").output, HasSubstr(std::string(kIpv4.elastic) + "/"));
  EXPECT_THAT(nodes_[0].ns->Exec("nft list map ip abode elastic_dnat").output, HasSubstr(kIpv4.elastic));
}

TEST_F(NodeGuaranteesTest, AHealthyAgentKeepsAnsweringAcrossManyLeasesWithOneRenewalBatchPerInterval) {
  ASSERT_TRUE(AwaitReady("node-a", true) && AwaitReady("node-b", true));
  v1::ExternalAddress external;
  ASSERT_NO_FATAL_FAILURE(CreateExternal("web", "public", "203.0.113.100", &external));
  NodeHandle& serving = nodes_[external.node() == "node-a" ? 0 : 1];
  const std::string serving_mac = serving.ns->Exec("cat /sys/class/net/up0/address").output.substr(0, 17);
  NeighbourProbe probe(*outside_, "203.0.113.100");
  ASSERT_TRUE(test_support::Eventually([&] { return probe.AnsweringMacs() == std::set<std::string>{serving_mac}; },
                                       std::chrono::seconds(10)))
      << serving.log;
  const long long renewals = Metric(serving, "abode_node_lease_renewals_total");
  const long long lifetimes = Metric(serving, "abode_node_address_lifetime_renewals_total");
  ASSERT_GE(renewals, 1) << "no lease renewal counted; see " << serving.log;
  ASSERT_GE(lifetimes, 0) << "no address lifetime renewals exported; see " << serving.log;
  const auto start = Clock::now();
  // Eight leases' worth of renewals (one every half lease), probing who answers all along.
  int rounds = 0;
  std::set<std::string> last;
  const bool renewed = test_support::Eventually(
      [&] {
        ++rounds;
        last = probe.AnsweringMacs();
        EXPECT_EQ(last, std::set<std::string>{serving_mac}) << "round " << rounds;
        return Metric(serving, "abode_node_lease_renewals_total") >= renewals + 16;
      },
      std::chrono::seconds(60), std::chrono::milliseconds(1));
  ASSERT_TRUE(renewed) << "renewals stopped at " << Metric(serving, "abode_node_lease_renewals_total");
  const double leases = std::chrono::duration<double>(Clock::now() - start) / kLease;
  const long long batches = Metric(serving, "abode_node_lease_renewals_total") - renewals;
  std::printf("healthy agent: %d ARP rounds over %.1f leases, %lld lease renewal batches, %lld address lifetime "
              "renewals\n",
              rounds, leases, batches, Metric(serving, "abode_node_address_lifetime_renewals_total") - lifetimes);
  // About two batches per lease (each when half of the lease is used), never one per heartbeat (three per lease).
  EXPECT_LE(batches, static_cast<long long>(2 * leases) + 2);
  // The backstop lifetime (10 minutes) was not renewed at all meanwhile.
  EXPECT_EQ(Metric(serving, "abode_node_address_lifetime_renewals_total"), lifetimes);
}

TEST_F(NodeGuaranteesTest, AnAgentThatCannotRenewItsLeaseWithdrawsExternalAndElasticAddressesAndKeepsMagic) {
  ASSERT_TRUE(AwaitReady("node-a", true) && AwaitReady("node-b", true));
  AddPod(nodes_[0], 10, "pod/agent", {{"app", "dd-agent"}});
  AddPod(nodes_[0], 30, "pod/db", {{"app", "db"}});
  CreateMagic(kIpv4);
  CreateElastic(elastic_.get(), kIpv4.external_pool, kIpv4.elastic, "pod/db");
  auto holds = [&](const std::string& address, const char* interface) {
    return nodes_[0].ns->Exec(absl::StrCat("ip -br addr show dev ", interface)).output.find(address + "/") !=
           std::string::npos;
  };
  ASSERT_TRUE(test_support::Eventually([&] { return holds(kIpv4.elastic, "up0") && holds(kIpv4.magic, "pbr0"); },
                                       std::chrono::seconds(10)))
      << nodes_[0].log;

  // The allocator goes away: the agent lives on but hears no acknowledgement.
  allocator_->Kill();
  const auto lost = Clock::now();
  const bool withdrawn = test_support::Eventually(
      [&] {
        return !holds(kIpv4.elastic, "up0") &&
               nodes_[0].ns->Exec("nft list map ip abode elastic_dnat").output.find(kIpv4.elastic) == std::string::npos;
      },
      std::chrono::seconds(10));
  ASSERT_TRUE(withdrawn) << "the elastic address or its mapping outlived the lease; see " << nodes_[0].log;
  std::printf("elastic address and mapping withdrawn %lld ms after the allocator went away (lease %lld ms)\n",
              static_cast<long long>(
                  std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - lost).count()),
              static_cast<long long>(kLease.count()));
  EXPECT_TRUE(LogContains(nodes_[0].log, "the node's lease ran out"));
  // The node's own stay, also across further resyncs (every 2 s).
  const long long before = Reconciles(nodes_[0]);
  test_support::Eventually([&] { return Reconciles(nodes_[0]) >= before + 2; }, std::chrono::seconds(10),
                           std::chrono::milliseconds(50));
  EXPECT_GE(Reconciles(nodes_[0]), before + 2);
  EXPECT_TRUE(holds(kIpv4.magic, "pbr0"));
  EXPECT_THAT(nodes_[0].ns->Exec("nft list map ip abode magic_dnat").output, HasSubstr(kIpv4.magic));
  EXPECT_FALSE(holds(kIpv4.elastic, "up0"));
}

TEST_F(NodeGuaranteesTest, NoFlowToAMagicAddressIsStrandedWhateverTheOrder) {
  ExpectNoFlowToTheMagicAddressIsStranded(kIpv4);
}

TEST_F(NodeGuaranteesTest, NoFlowToAnIpv6MagicAddressIsStrandedWhateverTheOrder) {
  ExpectNoFlowToTheMagicAddressIsStranded(kIpv6);
}

TEST_F(NodeGuaranteesTest, PolicyDropDropsInTheKernelAndCounts) { ExpectDropDropsInTheKernel(kIpv4); }

TEST_F(NodeGuaranteesTest, Ipv6PolicyDropDropsInTheKernelAndCounts) { ExpectDropDropsInTheKernel(kIpv6); }

TEST_F(NodeGuaranteesTest, ARestartLongerThanTheLeaseChangesNothingOfTheNodesOwn) {
  const ScopedNetns& agent = AddPod(nodes_[0], 10, "pod/agent", {{"app", "dd-agent"}});
  const ScopedNetns& app = AddPod(nodes_[0], 20, "pod/app", {{"app", "statsd-client"}});
  CreateMagic(kIpv4);
  UniqueFd agent_socket = Udp(agent, "0.0.0.0", 8125);
  ASSERT_TRUE(SendUntilReceived(app, kIpv4.magic, 8125, agent_socket, "before").has_value()) << nodes_[0].log;
  const std::string listed = nodes_[0].ns->Exec("ip -4 -br addr show dev pbr0").output;
  KernelMonitors monitors;
  monitors.Start(*nodes_[0].ns, dir_, "-4");

  nodes_[0].agent->Signal(SIGKILL);
  ASSERT_TRUE(AwaitReady("node-a", false)) << "the allocator never expired node-a's lease";
  nodes_[0].log += ".restarted";
  StartAgent(nodes_[0]);
  ASSERT_TRUE(AwaitReady("node-a", true));
  // The restarted agent reconciled and reported (its status reaches the allocator after its reconcile).
  ASSERT_TRUE(test_support::Eventually(
      [&] { return LogContains(nodes_[0].log, "stream open") && Statuses("node-a").count("magic/dd") > 0; },
      std::chrono::seconds(20), std::chrono::milliseconds(50)))
      << nodes_[0].log;
  ASSERT_TRUE(SendUntilReceived(app, kIpv4.magic, 8125, agent_socket, "after").has_value()) << nodes_[0].log;
  monitors.Stop();
  EXPECT_THAT(monitors.AddressChanges(listed), IsEmpty()) << "the magic address was removed or placed again";
  EXPECT_EQ(monitors.RuleEvents(), "") << "nf_tables changed";
  EXPECT_FALSE(LogContains(nodes_[0].log, "placed ")) << nodes_[0].log;
  EXPECT_FALSE(LogContains(nodes_[0].log, "conntrack entries of")) << nodes_[0].log;
}

TEST_F(NodeGuaranteesTest, MissingHostSettingsAreErrorsNamingThemAndManageSysctlsSetsThem) {
  Ok(nodes_[0].ns->Run("sysctl -qw net.ipv4.ip_forward=0 net.bridge.bridge-nf-call-iptables=0"));
  AddPod(nodes_[0], 10, "pod/agent", {{"app", "dd-agent"}});
  AddPod(nodes_[0], 30, "pod/db", {{"app", "db"}});
  CreateMagic(kIpv4);
  CreateElastic(elastic_.get(), kIpv4.external_pool, kIpv4.elastic, "pod/db");
  auto errors_name = [&](const std::string& id, const std::vector<std::string>& sysctls) {
    auto statuses = Statuses("node-a");
    auto it = statuses.find(id);
    if (it == statuses.end() || it->second.state() != v1::ASSIGNMENT_STATE_ERROR) return false;
    for (const std::string& sysctl : sysctls) {
      if (it->second.message().find(sysctl + "=1") == std::string::npos) return false;
    }
    return true;
  };
  const bool reported = test_support::Eventually(
      [&] {
        return errors_name("magic/dd", {"net.ipv4.ip_forward", "net.bridge.bridge-nf-call-iptables"}) &&
               errors_name("elastic/db", {"net.ipv4.ip_forward"});
      },
      std::chrono::seconds(20), std::chrono::milliseconds(50));
  EXPECT_TRUE(reported) << "magic/dd: " << Statuses("node-a")["magic/dd"].message()
                        << "; elastic/db: " << Statuses("node-a")["elastic/db"].message();
  EXPECT_THAT(ScrapeAgent(nodes_[0]),
              HasSubstr("abode_node_host_requirement_unmet{sysctl=\"net.ipv4.ip_forward\"} 1"));
  EXPECT_TRUE(LogContains(nodes_[0].log, "host requirement not met: set net.ipv4.ip_forward=1"));

  // With --manage-sysctls the agent sets them, and the assignments are OK.
  nodes_[0].agent->Signal(SIGTERM);
  nodes_[0].log += ".managing";
  StartAgent(nodes_[0], {"--manage-sysctls"});
  const bool ok = test_support::Eventually(
      [&] {
        auto statuses = Statuses("node-a");
        return statuses["magic/dd"].state() == v1::ASSIGNMENT_STATE_OK &&
               statuses["elastic/db"].state() == v1::ASSIGNMENT_STATE_OK;
      },
      std::chrono::seconds(20), std::chrono::milliseconds(50));
  EXPECT_TRUE(ok) << nodes_[0].log;
  EXPECT_EQ(nodes_[0].ns->Exec("sysctl -n net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables").output, "1\n1\n");
}

}  // namespace
}  // namespace abode::node::e2e

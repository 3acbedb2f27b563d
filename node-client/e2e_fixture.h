// The end-to-end fixture for abode-node: a real abode-allocator and two real abode-node processes, each node in
// its own network namespace with an uplink to an "outside" namespace (one L2 segment) and a pod bridge with pods
// behind it.
//
//   test process (private netns): bridge ctl  10.213.<k>.1  <- abode-allocator listens here
//        | veth ctl0                                   | veth ctl0
//   node-a: up0 203.0.113.10/24, pbr0 10.1.1.1/24     node-b: up0 203.0.113.11/24, pbr0 10.1.2.1/24
//           up0 2001:db8:113::10/64                            up0 2001:db8:113::11/64
//           pbr0 fd00:1:0:1::1/64                             pbr0 fd00:1:0:2::1/64
//        | pods 10.1.1.x, fd00:1:0:1::x, fe80::x       | pods 10.1.2.x, fd00:1:0:2::x, fe80::x
//   outside: bridge lan0 203.0.113.1/24, 2001:db8:113::1/64 with both nodes' uplinks
//
// Every pod is dual-stack (an allocation in "pods" and one in "pods6" under the same owner), so each scenario
// that matters for both families runs once per `Family`. IPv6 addresses are added with `nodad`.
//
// The test process moves itself into a private network namespace first, so nothing it builds is visible in the
// machine's own namespace. Needs root; skips without it unless CI is set.
#ifndef ABODE_NODE_CLIENT_E2E_FIXTURE_H_
#define ABODE_NODE_CLIENT_E2E_FIXTURE_H_
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "abode/v1/allocator.grpc.pb.h"
#include "abode/v1/nodes.grpc.pb.h"
#include "abode/v1/pools.grpc.pb.h"
#include "absl/strings/str_cat.h"
#include "integration/allocator_process.h"
#include "netns_testing.h"
#include "test-support/eventually.h"

namespace abode::node::e2e {

using Clock = std::chrono::steady_clock;
using testing::BindUdp;
using testing::ReceiveUdp;
using testing::RunCommand;
using testing::ScopedNetns;
using testing::SendUdp;

// A child process, killed (SIGKILL) and reaped when the handle goes away.
class ChildProcess {
 public:
  ChildProcess() = default;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess() { Signal(SIGKILL); }

  absl::Status Start(std::vector<std::string> argv, const std::string& log_path) {
    const pid_t pid = integration::SpawnProcess(argv, log_path, log_path);
    if (pid < 0) return absl::InternalError("fork failed");
    pid_ = pid;
    return absl::OkStatus();
  }
  // Sends `signal` and reaps the process. Returns its wait status.
  int Signal(int signal) {
    if (pid_ <= 0) return -1;
    ::kill(pid_, signal);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }

 private:
  pid_t pid_ = -1;
};

// Moves the whole test process into a private network namespace (once, before any thread exists), so the
// control bridge and the allocator's listener never appear in the machine's own namespace.
inline absl::Status EnterPrivateNetns() {
  static absl::Status status = [] {
    if (::unshare(CLONE_NEWNET) != 0) return absl::InternalError(absl::StrCat("unshare: ", std::strerror(errno)));
    const auto r = RunCommand("ip link set lo up");
    if (r.exit_code != 0) return absl::InternalError(r.output);
    return absl::OkStatus();
  }();
  return status;
}

// The addresses one IP family uses in these scenarios.
struct Family {
  bool ipv6;
  const char* pod_pool;       // workload pool holding every pod's address of this family
  const char* external_pool;  // external pool of the outside segment
  const char* magic;          // a link-local magic address
  const char* elastic;        // an address of `external_pool`
  const char* outside;        // the outside namespace's address on the uplinks' segment

  // Pod `host` behind node `node` (0 or 1).
  std::string Pod(int node, int host) const {
    return ipv6 ? absl::StrCat("fd00:1:0:", node + 1, "::", host) : absl::StrCat("10.1.", node + 1, ".", host);
  }
  // The source address of that pod's datagrams to the magic address: for a link-local destination IPv6 source
  // selection picks the pod's link-local address (RFC 6724 rule 2), which the test sets to fe80::<host>.
  std::string MagicSource(int node, int host) const { return ipv6 ? absl::StrCat("fe80::", host) : Pod(node, host); }
};
constexpr Family kIpv4{false, "pods", "public", "169.254.210.210", "203.0.113.101", "203.0.113.1"};
constexpr Family kIpv6{true, "pods6", "public6", "fe80::a9fe:d2d2", "2001:db8:113::101", "2001:db8:113::1"};

// The wildcard address of `address`'s family.
inline std::string AnyAddress(const std::string& address) {
  return address.find(':') == std::string::npos ? "0.0.0.0" : "::";
}

// Creates elastic address "db" at `address` of `pool`, associated with `owner`.
inline void CreateElastic(v1::ElasticAddresses::Stub* stub, const std::string& pool, const std::string& address,
                   const std::string& owner) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::CreateElasticAddressRequest req;
  req.mutable_address()->set_name("db");
  req.mutable_address()->set_pool(pool);
  req.mutable_address()->set_address(address);
  v1::ElasticAddress created;
  grpc::Status s = stub->CreateElasticAddress(&ctx, req, &created);
  ASSERT_TRUE(s.ok()) << s.error_message();
  grpc::ClientContext ctx2;
  ctx2.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::AssociateElasticAddressRequest assoc;
  assoc.set_name("db");
  assoc.mutable_association()->set_owner(owner);
  s = stub->AssociateElasticAddress(&ctx2, assoc, &created);
  ASSERT_TRUE(s.ok()) << s.error_message();
}

struct NodeHandle {
  std::string name;
  std::optional<ScopedNetns> ns;
  int index = 0;
  std::unique_ptr<ChildProcess> agent;
  std::string log;
};

class NodeE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ABODE_SKIP_UNLESS_KERNEL_TESTS();
    ASSERT_TRUE(EnterPrivateNetns().ok());
    static int cluster = 0;
    const int k = ++cluster;
    ctl_prefix_ = absl::StrCat("10.213.", k, ".");
    ctl_bridge_ = absl::StrCat("ctl", k);
    dir_ = absl::StrCat("/tmp/abode-node-e2e-", ::getpid(), "-", k);
    std::filesystem::create_directories(dir_);
    Sh(absl::StrCat("ip link add ", ctl_bridge_, " type bridge && ip addr add ", ctl_prefix_, "1/24 dev ",
                    ctl_bridge_, " && ip link set ", ctl_bridge_, " up"));

    auto outside = ScopedNetns::Create("outside");
    ASSERT_TRUE(outside.ok()) << outside.status();
    outside_.emplace(std::move(*outside));
    Ok(outside_->Run("ip link set lo up && ip link add lan0 type bridge && ip addr add 203.0.113.1/24 dev lan0 && "
                     "ip addr add 2001:db8:113::1/64 dev lan0 nodad && ip link set lan0 up"));
    for (int i = 0; i < 2; ++i) {
      NodeHandle& node = nodes_[i];
      node.name = i == 0 ? "node-a" : "node-b";
      node.index = i;
      node.log = absl::StrCat(dir_, "/", node.name, ".log");
      auto ns = ScopedNetns::Create(i == 0 ? "na" : "nb");
      ASSERT_TRUE(ns.ok()) << ns.status();
      node.ns.emplace(std::move(*ns));
      const std::string& n = node.ns->name();
      const std::string port = absl::StrCat("port", i);
      const std::string ctl = absl::StrCat(ctl_bridge_, "n", i);
      Sh(absl::StrCat("ip link add ", ctl, " type veth peer name ctl0 netns ", n, " && ip link set ", ctl,
                      " master ", ctl_bridge_, " up"));
      ASSERT_TRUE(outside_->Run(absl::StrCat("ip link add ", port, " type veth peer name up0 netns ", n, " && ip link set ",
                                    port, " master lan0 up")).ok());
      Ok(node.ns->Run(absl::StrCat(
          "ip link set lo up && sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 && ip addr add ",
          ctl_prefix_, i + 2, "/24 dev ctl0 && ip link set ctl0 up && ip addr add 203.0.113.1", i,
          "/24 dev up0 && ip addr add 2001:db8:113::1", i, "/64 dev up0 nodad && ip link set up0 up && ",
          // The pod bridge's link-local address is usable at once, as on a node whose bridge is long up: while
          // it is tentative the node cannot solicit its pods' neighbours (no source), for a second or two.
          "sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 && ",
          "ip link add pbr0 type bridge && ip addr add ", kIpv4.Pod(i, 1), "/24 dev pbr0 && ip addr add ",
          kIpv6.Pod(i, 1), "/64 dev pbr0 nodad && ip link set pbr0 up")));
    }

    allocator_ = std::make_unique<integration::AllocatorProcess>(
        ABODE_ALLOCATOR_BIN, dir_ + "/data", std::vector<std::string>{"--node-lease-ms", "1500", "--log-level", "warn"},
        ctl_prefix_ + "1");
    allocator_log_ = allocator_->log_path();
    const absl::Status started = allocator_->Start();
    ASSERT_TRUE(started.ok()) << started;
    endpoint_ = allocator_->address();
    auto channel = grpc::CreateChannel(endpoint_, grpc::InsecureChannelCredentials());
    pools_ = v1::Pools::NewStub(channel);
    alloc_ = v1::Allocator::NewStub(channel);
    nodes_api_ = v1::Nodes::NewStub(channel);
    magic_ = v1::MagicAddresses::NewStub(channel);
    elastic_ = v1::ElasticAddresses::NewStub(channel);
    external_ = v1::ExternalAddresses::NewStub(channel);
    CreatePool("pods", "10.1.0.0/16", v1::POOL_PURPOSE_WORKLOAD);
    CreatePool("public", "203.0.113.0/24", v1::POOL_PURPOSE_EXTERNAL);
    CreatePool("pods6", "fd00:1::/48", v1::POOL_PURPOSE_WORKLOAD);
    CreatePool("public6", "2001:db8:113::/64", v1::POOL_PURPOSE_EXTERNAL);
    for (NodeHandle& node : nodes_) StartAgent(node);
  }

  void TearDown() override {
    for (NodeHandle& node : nodes_) node.agent.reset();
    if (allocator_ != nullptr) allocator_->Kill();
    pods_.clear();
    for (NodeHandle& node : nodes_) node.ns.reset();
    outside_.reset();
    if (!ctl_bridge_.empty()) RunCommand("ip link del " + ctl_bridge_);
    if (!HasFailure() && !dir_.empty()) std::filesystem::remove_all(dir_);
    if (HasFailure()) std::fprintf(stderr, "logs kept in %s\n", dir_.c_str());
  }

  void Sh(const std::string& command) {
    const auto r = RunCommand(command);
    ASSERT_EQ(r.exit_code, 0) << command << ": " << r.output;
  }
  void Ok(const absl::Status& status) { ASSERT_TRUE(status.ok()) << status; }

  static std::chrono::system_clock::time_point Deadline() {
    return std::chrono::system_clock::now() + std::chrono::seconds(10);
  }
  void CreatePool(const std::string& name, const std::string& cidr, v1::PoolPurpose purpose) {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    v1::CreatePoolRequest req;
    req.mutable_pool()->set_name(name);
    req.mutable_pool()->set_cidr(cidr);
    req.mutable_pool()->set_purpose(purpose);
    v1::Pool pool;
    const grpc::Status s = pools_->CreatePool(&ctx, req, &pool);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  // Creates external address `name` at `address` of `pool`; its placement comes back in `out`.
  void CreateExternal(const std::string& name, const std::string& pool, const std::string& address,
                      v1::ExternalAddress* out) {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    v1::CreateExternalAddressRequest req;
    req.mutable_address()->set_name(name);
    req.mutable_address()->set_pool(pool);
    req.mutable_address()->set_address(address);
    const grpc::Status s = external_->CreateExternalAddress(&ctx, req, out);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  void StartAgent(NodeHandle& node, const std::vector<std::string>& extra = {}) {
    node.agent = std::make_unique<ChildProcess>();
    std::vector<std::string> argv = {"/usr/sbin/ip", "netns", "exec", node.ns->name(), ABODE_NODE_BIN, "--node",
                                     node.name, "--allocator", endpoint_, "--uplink-interface", "up0",
                                     "--magic-interface", "pbr0", "--resync-interval", "2", "--metrics-listen",
                                     "127.0.0.1:9465", "--log-level", "debug"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    ASSERT_TRUE(node.agent->Start(argv, node.log).ok());
  }

  // The agent's /metrics, fetched inside its node's namespace (the body; empty if nothing answers).
  std::string ScrapeAgent(const NodeHandle& node) {
    const std::string reply =
        node.ns->Exec(R"(bash -c 'exec 3<>/dev/tcp/127.0.0.1/9465 && printf "GET /metrics HTTP/1.0\r\n\r\n" >&3 && cat <&3')")
            .output;
    const size_t body = reply.find("\r\n\r\n");
    return body == std::string::npos ? "" : reply.substr(body + 4);
  }

  // The value of the agent's unlabelled metric `name` (-1 when its metrics do not answer or lack it).
  long long Metric(const NodeHandle& node, const std::string& name) {
    const std::string line = "\n" + name + " ";
    const std::string metrics = ScrapeAgent(node);
    const size_t at = metrics.find(line);
    return at == std::string::npos ? -1 : std::stoll(metrics.substr(at + line.size()));
  }
  long long Reconciles(const NodeHandle& node) { return Metric(node, "abode_node_reconciles_total"); }

  // A dual-stack pod namespace behind `node`'s bridge: kIpv4.Pod() and kIpv6.Pod() (each allocated under `owner`
  // with `labels` in its family's pool), and link-local fe80::<host>.
  const ScopedNetns& AddPod(NodeHandle& node, int host, const std::string& owner,
                            std::map<std::string, std::string> labels) {
    auto ns = ScopedNetns::Create("pod");
    EXPECT_TRUE(ns.ok()) << ns.status();
    pods_.push_back(std::make_unique<ScopedNetns>(std::move(*ns)));
    const ScopedNetns& pod = *pods_.back();
    const std::string veth = absl::StrCat("p", host);
    Ok(node.ns->Run(absl::StrCat("ip link add ", veth, " type veth peer name eth0 netns ", pod.name(),
                                 " && ip link set ", veth, " master pbr0 up")));
    Ok(pod.Run(absl::StrCat("ip link set lo up && ip link set eth0 addrgenmode none && ip addr add ",
                            kIpv4.Pod(node.index, host), "/24 dev eth0 && ip addr add ", kIpv6.Pod(node.index, host),
                            "/64 dev eth0 nodad && ip addr add ", kIpv6.MagicSource(node.index, host),
                            "/64 dev eth0 nodad && ip link set eth0 up && ip route add default via ",
                            kIpv4.Pod(node.index, 1), " && ip -6 route add default via ", kIpv6.Pod(node.index, 1))));
    for (const Family* family : {&kIpv4, &kIpv6}) {
      grpc::ClientContext ctx;
      ctx.set_deadline(Deadline());
      v1::AllocateRequest req;
      req.set_pool(family->pod_pool);
      req.set_owner(owner);
      req.set_address(family->Pod(node.index, host));
      req.set_node(node.name);
      for (const auto& [k, v] : labels) (*req.mutable_labels())[k] = v;
      v1::Allocation allocation;
      const grpc::Status s = alloc_->Allocate(&ctx, req, &allocation);
      EXPECT_TRUE(s.ok()) << family->pod_pool << ": " << s.error_message();
    }
    return pod;
  }

  // A UDP socket bound in `ns`.
  static UniqueFd Udp(const ScopedNetns& ns, const std::string& address, uint16_t port) {
    UniqueFd fd;
    EXPECT_TRUE(ns.Inside([&] {
                    auto bound = BindUdp(address, port);
                    EXPECT_TRUE(bound.ok()) << bound.status();
                    if (bound.ok()) fd = std::move(*bound);
                  }).ok());
    return fd;
  }

  // Sends `payload` from a fresh socket in `from` (a new source port: no conntrack entry of an earlier flow
  // applies) until `receiver` gets it. Bounded: returns the datagram or nothing after `limit`.
  std::optional<testing::Datagram> SendUntilReceived(const ScopedNetns& from, const std::string& address,
                                                     uint16_t port, const UniqueFd& receiver,
                                                     const std::string& payload,
                                                     std::chrono::milliseconds limit = std::chrono::seconds(20)) {
    const auto deadline = Clock::now() + limit;
    while (Clock::now() < deadline) {
      UniqueFd sender = Udp(from, AnyAddress(address), 0);
      EXPECT_TRUE(SendUdp(sender, address, port, payload).ok());
      while (true) {
        auto got = ReceiveUdp(receiver, std::chrono::milliseconds(50));
        if (!got.ok()) break;
        if (got->payload == payload) return *got;
      }
    }
    return std::nullopt;
  }

  // Payloads received by `receiver` within a short bounded wait.
  static std::vector<std::string> Drain(const UniqueFd& receiver) {
    std::vector<std::string> payloads;
    while (true) {
      auto got = ReceiveUdp(receiver, std::chrono::milliseconds(200));
      if (!got.ok()) return payloads;
      payloads.push_back(got->payload);
    }
  }

  // Scenario shared by both families: the magic address reaches the agent on the sending pod's own node, and an
  // established flow follows the agent's replacement within 1 s of the release's acknowledgement.
  void ExpectMagicAddressReachesTheLocalAgentAndFollowsItsReplacement(const Family& f) {
    const std::string any = AnyAddress(f.magic);
    const ScopedNetns& app_a = AddPod(nodes_[0], 20, "pod/app-a", {{"app", "web"}});
    const ScopedNetns& agent_a = AddPod(nodes_[0], 10, "pod/agent-a", {{"app", "dd-agent"}});
    const ScopedNetns& app_b = AddPod(nodes_[1], 20, "pod/app-b", {{"app", "web"}});
    const ScopedNetns& agent_b = AddPod(nodes_[1], 10, "pod/agent-b", {{"app", "dd-agent"}});
    // App A holds a stale neighbour entry for the magic address, with a hardware address nobody has (as a pod
    // that looked it up before it was placed, or cached another holder). The node's announcement mends it.
    Ok(app_a.Run(absl::StrCat("ip neigh replace ", f.magic, " lladdr 02:00:00:00:00:99 dev eth0 nud stale")));
    const std::string bridge_mac = nodes_[0].ns->Exec("cat /sys/class/net/pbr0/address").output.substr(0, 17);
    {
      grpc::ClientContext ctx;
      ctx.set_deadline(Deadline());
      v1::CreateMagicAddressRequest req;
      req.mutable_address()->set_name("dd");
      req.mutable_address()->set_address(f.magic);
      auto* port = req.mutable_address()->add_ports();
      port->set_protocol(v1::PROTOCOL_UDP);
      port->set_port(8125);
      req.mutable_address()->set_label_selector("app=dd-agent");
      v1::MagicAddress created;
      const grpc::Status s = magic_->CreateMagicAddress(&ctx, req, &created);
      ASSERT_TRUE(s.ok()) << s.error_message();
    }
    // Before app A sends anything: only the announcement can have taught it the bridge's hardware address.
    std::string entry;
    const bool mended = test_support::Eventually(
        [&] {
          entry = app_a.Exec(absl::StrCat("ip neigh show ", f.magic, " dev eth0")).output;
          return entry.find(bridge_mac) != std::string::npos;
        },
        std::chrono::seconds(10), std::chrono::milliseconds(50));
    EXPECT_TRUE(mended) << "app A's entry for " << f.magic << " still reads \"" << entry << "\", not node A's bridge "
                        << bridge_mac << "; see " << nodes_[0].log;
    UniqueFd agent_a_socket = Udp(agent_a, any, 8125);
    UniqueFd agent_b_socket = Udp(agent_b, any, 8125);

    auto got_a = SendUntilReceived(app_a, f.magic, 8125, agent_a_socket, "from-app-a");
    ASSERT_TRUE(got_a.has_value()) << "node A's agent never got app A's datagram; see " << nodes_[0].log;
    EXPECT_EQ(got_a->source_address, f.MagicSource(0, 20));
    auto got_b = SendUntilReceived(app_b, f.magic, 8125, agent_b_socket, "from-app-b");
    ASSERT_TRUE(got_b.has_value()) << "node B's agent never got app B's datagram; see " << nodes_[1].log;
    // Neither agent saw the other node's app.
    for (const std::string& p : Drain(agent_b_socket)) EXPECT_NE(p, "from-app-a");
    for (const std::string& p : Drain(agent_a_socket)) EXPECT_NE(p, "from-app-b");

    // A statsd client that keeps sending from one socket (one source port): its flow has a conntrack entry.
    UniqueFd steady_sender = Udp(app_a, any, 0);
    std::atomic<bool> stop{false};
    std::thread steady([&] {
      while (!stop.load()) {
        SendUdp(steady_sender, f.magic, 8125, "steady").IgnoreError();
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    });
    auto receive_steady = [](const UniqueFd& receiver, std::chrono::seconds limit) {
      for (const auto deadline = Clock::now() + limit; Clock::now() < deadline;) {
        auto got = ReceiveUdp(receiver, std::chrono::milliseconds(50));
        if (got.ok() && got->payload == "steady") return true;
      }
      return false;
    };
    const bool old_agent_got_steady = receive_steady(agent_a_socket, std::chrono::seconds(10));

    // Replace node A's agent: the new pod exists first, then the old allocation is released.
    const ScopedNetns& agent_a2 = AddPod(nodes_[0], 11, "pod/agent-a2", {{"app", "dd-agent"}});
    UniqueFd agent_a2_socket = Udp(agent_a2, any, 8125);
    {
      grpc::ClientContext ctx;
      ctx.set_deadline(Deadline());
      v1::ReleaseRequest req;
      req.set_owner("pod/agent-a");
      v1::ReleaseResponse released;
      const grpc::Status s = alloc_->Release(&ctx, req, &released);
      ASSERT_TRUE(s.ok()) << s.error_message();
    }
    const auto acknowledged = Clock::now();
    // The established flow moves to the new agent (its conntrack entry was deleted with the old mapping).
    const bool new_agent_got_steady = receive_steady(agent_a2_socket, std::chrono::seconds(20));
    const auto steady_elapsed = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - acknowledged);
    stop.store(true);
    steady.join();
    ASSERT_TRUE(old_agent_got_steady) << "the old agent never got the one-socket client's traffic";
    ASSERT_TRUE(new_agent_got_steady) << "the one-socket client stayed on the old agent; see " << nodes_[0].log;
    std::printf("%s one-socket UDP flow reached the replaced agent %.1f ms after the release was acknowledged\n",
                f.ipv6 ? "IPv6" : "IPv4", steady_elapsed.count() / 1000.0);
    EXPECT_LE(steady_elapsed, std::chrono::milliseconds(1000));

    // A new flow (fresh socket) reaches the new agent too.
    auto got_a2 = SendUntilReceived(app_a, f.magic, 8125, agent_a2_socket, "to-new-agent",
                                    std::chrono::seconds(10));
    ASSERT_TRUE(got_a2.has_value()) << "the new agent never got traffic from a new flow; see " << nodes_[0].log;
  }

  // Scenario shared by both families: the elastic address is DNATed to the pod and is its source outside.
  void ExpectElasticAddressReachesThePodAndIsItsSourceOutside(const Family& f) {
    const ScopedNetns& db = AddPod(nodes_[0], 30, "pod/db", {{"app", "db"}});
    CreateElastic(elastic_.get(), f.external_pool, f.elastic, "pod/db");
    UniqueFd pod_socket = Udp(db, AnyAddress(f.elastic), 9000);
    auto inbound = SendUntilReceived(*outside_, f.elastic, 9000, pod_socket, "inbound");
    ASSERT_TRUE(inbound.has_value()) << "outside never reached the pod; see " << nodes_[0].log;
    EXPECT_EQ(inbound->source_address, f.outside);

    UniqueFd outside_socket = Udp(*outside_, f.outside, 9001);
    auto outbound = SendUntilReceived(db, f.outside, 9001, outside_socket, "outbound");
    ASSERT_TRUE(outbound.has_value()) << "the pod never reached outside; see " << nodes_[0].log;
    EXPECT_EQ(outbound->source_address, f.elastic);
  }

  std::string ctl_prefix_, ctl_bridge_, dir_, allocator_log_, endpoint_;
  std::optional<ScopedNetns> outside_;
  NodeHandle nodes_[2];
  std::vector<std::unique_ptr<ScopedNetns>> pods_;
  std::unique_ptr<integration::AllocatorProcess> allocator_;
  std::unique_ptr<v1::Pools::Stub> pools_;
  std::unique_ptr<v1::Allocator::Stub> alloc_;
  std::unique_ptr<v1::Nodes::Stub> nodes_api_;
  std::unique_ptr<v1::MagicAddresses::Stub> magic_;
  std::unique_ptr<v1::ElasticAddresses::Stub> elastic_;
  std::unique_ptr<v1::ExternalAddresses::Stub> external_;
};


inline bool LogContains(const std::string& path, const std::string& text) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.find(text) != std::string::npos) return true;
  }
  return false;
}

inline std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}


// `ip monitor address` and `nft monitor` in one namespace. Start() returns once both are subscribed (a probe
// change in the namespace showed in each), and the events are those after that.
class KernelMonitors {
 public:
  // `family`: "-4", "-6" or "-0" (both), as `ip` takes it.
  void Start(const ScopedNetns& ns, const std::string& dir, const std::string& family = "-0") {
    address_log_ = dir + "/" + ns.name() + "-ip-monitor.log";
    rule_log_ = dir + "/" + ns.name() + "-nft-monitor.log";
    ASSERT_TRUE(ip_.Start({"/usr/sbin/ip", family, "-n", ns.name(), "monitor", "address"}, address_log_).ok());
    ASSERT_TRUE(nft_.Start({"/usr/sbin/ip", "netns", "exec", ns.name(), "/usr/sbin/nft", "monitor"}, rule_log_).ok());
    bool subscribed = false;
    for (const auto deadline = Clock::now() + std::chrono::seconds(10); !subscribed && Clock::now() < deadline;) {
      ns.Exec("ip addr add 127.0.0.2/8 dev lo; ip addr del 127.0.0.2/8 dev lo; "
              "nft add table ip abode_probe; nft delete table ip abode_probe");
      for (int i = 0; i < 20 && !subscribed; ++i) {
        subscribed = ReadAll(address_log_).find("Deleted") != std::string::npos &&
                     ReadAll(rule_log_).find("delete table ip abode_probe") != std::string::npos;
        if (!subscribed) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
    ASSERT_TRUE(subscribed) << "the monitors never showed the probe changes";
    address_offset_ = ReadAll(address_log_).size();
    rule_offset_ = ReadAll(rule_log_).size();
  }
  void Stop() {
    ip_.Signal(SIGKILL);
    nft_.Signal(SIGKILL);
  }
  std::string AddressEvents() const { return ReadAll(address_log_).substr(address_offset_); }
  std::string RuleEvents() const { return ReadAll(rule_log_).substr(rule_offset_); }
  // nf_tables events other than lease renewals (the lease guard's `alive` sets flushed and their one element
  // added again).
  std::vector<std::string> RuleChanges() const {
    std::vector<std::string> changes;
    std::istringstream lines(RuleEvents());
    std::string line;
    while (std::getline(lines, line)) {
      if (line.empty() || line.starts_with("# new generation")) continue;
      if (line.find(" abode_lease alive") != std::string::npos &&
          (line.starts_with("add element ") || line.starts_with("delete element ") || line.starts_with("flush set "))) {
        continue;
      }
      changes.push_back(line);
    }
    return changes;
  }
  // Address events other than lifetime renewals of addresses that `listed` (`ip -br addr` output) lists: a
  // removal, or an address that was not there.
  std::vector<std::string> AddressChanges(const std::string& listed) const {
    std::string before = " " + listed + " ";
    std::replace(before.begin(), before.end(), '\n', ' ');
    std::vector<std::string> changes;
    std::istringstream lines(AddressEvents());
    std::string line;
    while (std::getline(lines, line)) {
      if (line.empty() || line[0] == ' ' || line[0] == '\t') continue;  // an event's second line (lifetimes)
      const size_t inet = line.find("inet");
      const size_t start = inet == std::string::npos ? inet : line.find(' ', inet);
      const size_t end = start == std::string::npos ? start : line.find(' ', start + 1);
      const std::string address = end == std::string::npos ? "" : line.substr(start + 1, end - start - 1);
      if (line.starts_with("Deleted") || address.empty() || before.find(" " + address + " ") == std::string::npos) {
        changes.push_back(line);
      }
    }
    return changes;
  }

 private:
  ChildProcess ip_, nft_;
  std::string address_log_, rule_log_;
  size_t address_offset_ = 0, rule_offset_ = 0;
};

}  // namespace abode::node::e2e

#endif  // ABODE_NODE_CLIENT_E2E_FIXTURE_H_

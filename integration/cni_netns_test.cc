// The abode IPAM plugin inside real main plugins (Debian's bridge, and the reference plugins v1.10.0 when
// scripts/test-tools.sh has built them), exec'd as a runtime does, with a real allocator, two abode-node
// processes as two simulated nodes, and a network namespace per node and per container. Root only.
#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "abode/v1/allocator.grpc.pb.h"
#include "abode/v1/pools.grpc.pb.h"
#include "absl/strings/str_cat.h"
#include "integration/cni_harness.h"

namespace abode::integration {
namespace {

using nlohmann::json;

constexpr char kDebianPlugins[] = "/usr/lib/cni";

bool AllowedHere() { return ::geteuid() == 0 || std::getenv("CI") != nullptr; }

// Where scripts/test-tools.sh puts the reference plugins.
std::string ReferencePluginsDir() {
  const char* cache = std::getenv("ABODE_TOOLS_CACHE");
  return std::string(cache != nullptr ? cache : "/var/cache/abode-test-tools") + "/cni-plugins-v1.10.0";
}

struct Attachment {
  std::string container;
  int node = 0;
  std::unique_ptr<Netns> netns;
  json result;
};

class CniNetnsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!AllowedHere()) return;
    ASSERT_TRUE(EnterPrivateNetworkNamespace().ok());
    dir_ = new std::string(std::filesystem::temp_directory_path() / ("abode-cni-netns-" + std::to_string(::getpid())));
    std::filesystem::create_directories(*dir_);
    cluster_ = new CniCluster({ABODE_ALLOCATOR_BIN, ABODE_NODE_BIN, *dir_, 2});
    const absl::Status started = cluster_->Start();
    ASSERT_TRUE(started.ok()) << started;
    // CNI_PATH for the main plugins: the IPAM plugins they may call by type.
    for (const std::string& set : {std::string("debian"), std::string("reference")}) {
      const std::string bin = *dir_ + "/" + set + "-bin";
      std::filesystem::create_directories(bin);
      std::filesystem::create_symlink(ABODE_CNI_BIN, bin + "/abode");
      std::filesystem::create_symlink(std::string(kDebianPlugins) + "/host-local", bin + "/host-local");
    }
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
    if (dir_ != nullptr) {
      std::filesystem::remove_all(*dir_);
      delete dir_;
      dir_ = nullptr;
    }
  }
  void SetUp() override {
    if (!AllowedHere()) GTEST_SKIP() << "CNI namespace tests need root; run as root or set CI to force them";
    ASSERT_NE(cluster_, nullptr);
    if (!std::filesystem::exists(std::string(kDebianPlugins) + "/bridge")) {
      ASSERT_EQ(std::getenv("CI"), nullptr) << "Debian's containernetworking-plugins are missing";
      GTEST_SKIP() << "install containernetworking-plugins (scripts/install-deps.sh)";
    }
    auto channel = grpc::CreateChannel(cluster_->endpoint(), grpc::InsecureChannelCredentials());
    allocator_ = v1::Allocator::NewStub(channel);
    pools_ = v1::Pools::NewStub(channel);
  }

  // A bridge network on node `node`'s bridge `bridge` with `ipam`.
  static std::string BridgeConfig(const std::string& version, const std::string& bridge, const json& ipam) {
    return json{{"cniVersion", version}, {"name", "abodenet"}, {"type", "bridge"}, {"bridge", bridge},
                {"isGateway", true},      {"ipam", ipam}}
        .dump();
  }

  PluginExit Call(const std::string& plugin, const std::string& command, const Attachment& a, const std::string& config,
                  const std::string& set = "debian") {
    PluginRun run;
    run.plugin = plugin;
    run.netns_path = cluster_->node_netns(a.node).path();
    run.env = {{"CNI_COMMAND", command},
               {"CNI_CONTAINERID", a.container},
               {"CNI_NETNS", a.netns != nullptr ? a.netns->path() : "/nonexistent"},
               {"CNI_IFNAME", "eth0"},
               {"CNI_PATH", *dir_ + "/" + set + "-bin"},
               {"CNI_ARGS", absl::StrCat("IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=", a.container,
                                         ";K8S_POD_UID=uid-", a.container)}};
    run.stdin_text = config;
    return ExecPlugin(run);
  }

  // Creates the container's namespace and ADDs it through `plugin`; the result is kept.
  Attachment Add(const std::string& plugin, const std::string& container, int node, const std::string& config,
                 const std::string& set = "debian") {
    Attachment a;
    a.container = container;
    a.node = node;
    auto ns = Netns::Create(container);
    EXPECT_TRUE(ns.ok()) << ns.status();
    if (!ns.ok()) return a;
    a.netns = std::move(*ns);
    PluginExit e = Call(plugin, "ADD", a, config, set);
    EXPECT_EQ(e.exit_code, 0) << container << ": " << e.stdout_text;
    a.result = json::parse(e.stdout_text, nullptr, false);
    return a;
  }

  std::vector<v1::Allocation> Allocations(const std::string& pool) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::ListAllocationsRequest req;
    req.set_pool(pool);
    req.set_page_size(5000);
    v1::ListAllocationsResponse resp;
    const grpc::Status s = allocator_->ListAllocations(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return {resp.allocations().begin(), resp.allocations().end()};
  }

  static std::string Bridge() { return std::string(kDebianPlugins) + "/bridge"; }
  static std::string IpOf(const json& result, size_t i = 0) {
    const std::string a = result["ips"][i]["address"].get<std::string>();
    return a.substr(0, a.find('/'));
  }

  static std::string* dir_;
  static CniCluster* cluster_;
  std::unique_ptr<v1::Allocator::Stub> allocator_;
  std::unique_ptr<v1::Pools::Stub> pools_;
};

std::string* CniNetnsTest::dir_ = nullptr;
CniCluster* CniNetnsTest::cluster_ = nullptr;

TEST_F(CniNetnsTest, FiftyContainersOnTwoNodesGetUniqueAddressesPingTheirGatewayAndDelReleases) {
  const json ipam = {{"type", "abode"}, {"range", "10.71.0.0/24"}, {"gateway", "10.71.0.1"},
                     {"socket_path", ""}, {"routes", {{{"dst", "0.0.0.0/0"}}}}};
  std::vector<Attachment> attachments;
  std::set<std::string> addresses;
  for (int i = 0; i < 50; ++i) {
    json node_ipam = ipam;
    node_ipam["socket_path"] = cluster_->socket(i % 2);
    const std::string config = BridgeConfig("1.0.0", "cnibr0", node_ipam);
    attachments.push_back(Add(Bridge(), absl::StrCat("fifty", i), i % 2, config));
    ASSERT_TRUE(attachments.back().result.contains("ips")) << attachments.back().result.dump();
    addresses.insert(IpOf(attachments.back().result));
  }
  EXPECT_EQ(addresses.size(), 50u);
  EXPECT_EQ(addresses.count("10.71.0.1"), 0u);
  for (const Attachment& a : attachments) {
    auto [code, out] = a.netns->Exec("ping -c1 -W2 10.71.0.1");
    EXPECT_EQ(code, 0) << a.container << ": " << out;
  }
  std::vector<v1::Allocation> held = Allocations("10.71.0.0-24");
  ASSERT_EQ(held.size(), 50u);
  std::map<std::string, int> per_node;
  for (const v1::Allocation& a : held) {
    ++per_node[a.node()];
    EXPECT_EQ(a.labels().at("k8s-pod-namespace"), "default");
    EXPECT_EQ(a.labels().at("k8s-pod-uid"), "uid-" + a.labels().at("k8s-pod-name"));
  }
  EXPECT_EQ(per_node["node-a"], 25);
  EXPECT_EQ(per_node["node-b"], 25);
  for (Attachment& a : attachments) {
    json node_ipam = ipam;
    node_ipam["socket_path"] = cluster_->socket(a.node);
    PluginExit e = Call(Bridge(), "DEL", a, BridgeConfig("1.0.0", "cnibr0", node_ipam));
    EXPECT_EQ(e.exit_code, 0) << e.stdout_text;
    // DEL is idempotent.
    EXPECT_EQ(Call(Bridge(), "DEL", a, BridgeConfig("1.0.0", "cnibr0", node_ipam)).exit_code, 0);
  }
  EXPECT_TRUE(Allocations("10.71.0.0-24").empty());
}

TEST_F(CniNetnsTest, CheckPassesAndFailsWhenTheAllocationIsGone) {
  const json ipam = {{"type", "abode"}, {"range", "10.72.0.0/24"}, {"socket_path", cluster_->socket(0)}};
  const std::string config = BridgeConfig("1.0.0", "cnibr1", ipam);
  Attachment a = Add(Bridge(), "check1", 0, config);
  ASSERT_TRUE(a.result.contains("ips"));
  json with_prev = json::parse(config);
  with_prev["prevResult"] = a.result;
  PluginExit pass = Call(Bridge(), "CHECK", a, with_prev.dump());
  EXPECT_EQ(pass.exit_code, 0) << pass.stdout_text;
  // Released behind the runtime's back: CHECK must fail with abode's code.
  grpc::ClientContext ctx;
  v1::ReleaseRequest release;
  release.set_owner("cni/check1/eth0");
  v1::ReleaseResponse released;
  ASSERT_TRUE(allocator_->Release(&ctx, release, &released).ok());
  PluginExit fail = Call(Bridge(), "CHECK", a, with_prev.dump());
  EXPECT_NE(fail.exit_code, 0);
  const json error = json::parse(fail.stdout_text, nullptr, false);
  ASSERT_FALSE(error.is_discarded()) << fail.stdout_text;
  EXPECT_EQ(error["code"], 102) << fail.stdout_text;
  EXPECT_EQ(Call(Bridge(), "DEL", a, config).exit_code, 0);
}

TEST_F(CniNetnsTest, DualStackThroughIpRangesAndIpv6BeyondTheFirstSlash65) {
  const json ipam = {{"type", "abode"},
                     {"socket_path", cluster_->socket(1)},
                     {"ipRanges",
                      {{{"range", "10.73.0.0/24"}, {"gateway", "10.73.0.1"}},
                       // Only the upper half of the /64: every address lies beyond its first /65.
                       {{"range", "fd00:73::/64"}, {"range_start", "fd00:73::8000:0:0:0"}, {"gateway", "fd00:73::1"}}}}};
  const std::string config = BridgeConfig("1.0.0", "cnibr2", ipam);
  Attachment a = Add(Bridge(), "dual1", 1, config);
  ASSERT_EQ(a.result["ips"].size(), 2u) << a.result.dump();
  EXPECT_EQ(IpOf(a.result, 0).rfind("10.73.0.", 0), 0u);
  const std::string v6 = IpOf(a.result, 1);
  EXPECT_EQ(v6, "fd00:73:0:0:8000::") << a.result.dump();
  Attachment b = Add(Bridge(), "dual2", 1, config);
  EXPECT_EQ(IpOf(b.result, 1), "fd00:73::8000:0:0:1");
  // The bridge carries both gateways; each container reaches them.
  auto [code4, out4] = a.netns->Exec("ping -c1 -W2 10.73.0.1");
  EXPECT_EQ(code4, 0) << out4;
  auto [code6, out6] = b.netns->Exec("ping -6 -c1 -W3 " + v6);
  EXPECT_EQ(code6, 0) << out6;
  for (Attachment* x : {&a, &b}) EXPECT_EQ(Call(Bridge(), "DEL", *x, config).exit_code, 0);
}

TEST_F(CniNetnsTest, SixteenConcurrentAddsOnEachNodeNeverCollide) {
  std::vector<Attachment> attachments(32);
  std::vector<std::thread> threads;
  for (int i = 0; i < 32; ++i) {
    const int node = i % 2;
    auto ns = Netns::Create(absl::StrCat("conc", i));
    ASSERT_TRUE(ns.ok());
    attachments[i].container = absl::StrCat("conc", i);
    attachments[i].node = node;
    attachments[i].netns = std::move(*ns);
  }
  std::vector<PluginExit> exits(32);
  for (int i = 0; i < 32; ++i) {
    threads.emplace_back([&, i] {
      const json ipam = {{"type", "abode"}, {"range", "10.74.0.0/24"}, {"socket_path", cluster_->socket(i % 2)}};
      exits[i] = Call(Bridge(), "ADD", attachments[i], BridgeConfig("1.0.0", "cnibr3", ipam));
    });
  }
  for (auto& t : threads) t.join();
  std::set<std::string> addresses;
  for (const PluginExit& e : exits) {
    ASSERT_EQ(e.exit_code, 0) << e.stdout_text;
    addresses.insert(IpOf(json::parse(e.stdout_text)));
  }
  EXPECT_EQ(addresses.size(), 32u);
  EXPECT_EQ(Allocations("10.74.0.0-24").size(), 32u);
}

TEST_F(CniNetnsTest, GcReleasesOnlyUnlistedAttachmentsOfItsNodeAndNothingWithoutAList) {
  const json ipam = {{"type", "abode"}, {"range", "10.75.0.0/24"}};
  std::vector<Attachment> attachments;
  for (int i = 0; i < 4; ++i) {
    json node_ipam = ipam;
    node_ipam["socket_path"] = cluster_->socket(i < 3 ? 0 : 1);
    attachments.push_back(Add(Bridge(), absl::StrCat("gc", i), i < 3 ? 0 : 1, BridgeConfig("1.0.0", "cnibr4", node_ipam)));
  }
  ASSERT_EQ(Allocations("10.75.0.0-24").size(), 4u);
  auto gc = [&](const json& extra) {
    json config = {{"cniVersion", "1.1.0"}, {"name", "abodenet"}, {"type", "bridge"}, {"ipam", ipam}};
    config["ipam"]["socket_path"] = cluster_->socket(0);
    for (const auto& [k, v] : extra.items()) config[k] = v;
    PluginRun run;
    run.plugin = ABODE_CNI_BIN;
    run.env = {{"CNI_COMMAND", "GC"}, {"CNI_PATH", *dir_ + "/debian-bin"}};
    run.stdin_text = config.dump();
    return ExecPlugin(run);
  };
  PluginExit no_list = gc(json::object());
  EXPECT_EQ(no_list.exit_code, 0) << no_list.stdout_text;
  EXPECT_EQ(Allocations("10.75.0.0-24").size(), 4u);
  // The older key, listing gc1: gc0 and gc2 go; gc3 lives on the other node and stays.
  PluginExit listed = gc({{"cni.dev/attachments", {{{"containerID", "gc1"}, {"ifname", "eth0"}}}}});
  EXPECT_EQ(listed.exit_code, 0) << listed.stdout_text;
  std::set<std::string> owners;
  for (const v1::Allocation& a : Allocations("10.75.0.0-24")) owners.insert(a.owner());
  EXPECT_EQ(owners, (std::set<std::string>{"cni/gc1/eth0", "cni/gc3/eth0"}));
}

TEST_F(CniNetnsTest, AllocatorDownAnswersTryAgainLaterAndTheNextAddSucceeds) {
  const json ipam = {{"type", "abode"}, {"range", "10.76.0.0/24"}, {"socket_path", cluster_->socket(0)},
                     {"timeout_ms", 1500}};
  const std::string config = BridgeConfig("1.0.0", "cnibr5", ipam);
  Attachment first = Add(Bridge(), "down0", 0, config);  // the pool exists before the outage
  ASSERT_TRUE(first.result.contains("ips"));
  cluster_->StopAllocator();
  Attachment a;
  a.container = "down1";
  auto ns = Netns::Create("down1");
  ASSERT_TRUE(ns.ok());
  a.netns = std::move(*ns);
  PluginExit down = Call(Bridge(), "ADD", a, config);
  EXPECT_NE(down.exit_code, 0);
  const json error = json::parse(down.stdout_text, nullptr, false);
  ASSERT_FALSE(error.is_discarded()) << down.stdout_text;
  EXPECT_EQ(error["code"], 11) << down.stdout_text;
  EXPECT_LT(down.seconds, 5.0);
  (void)Call(Bridge(), "DEL", a, config);  // what a runtime does after a failed ADD
  ASSERT_TRUE(cluster_->StartAllocator().ok());
  PluginExit up = Call(Bridge(), "ADD", a, config);
  EXPECT_EQ(up.exit_code, 0) << up.stdout_text;
  EXPECT_EQ(Allocations("10.76.0.0-24").size(), 2u);
}

TEST_F(CniNetnsTest, AbodeNodeRestartAnswersTryAgainLaterThenTheRetryGetsTheSameAddress) {
  const json ipam = {{"type", "abode"}, {"range", "10.80.0.0/24"}, {"socket_path", cluster_->socket(0)}};
  const std::string config = BridgeConfig("1.0.0", "cnibr7", ipam);
  Attachment a = Add(Bridge(), "restart1", 0, config);
  ASSERT_TRUE(a.result.contains("ips"));
  cluster_->StopNode(0);
  // The socket file is still there, nobody listens: code 11 at once.
  PluginRun run;
  run.plugin = ABODE_CNI_BIN;
  run.env = {{"CNI_COMMAND", "ADD"}, {"CNI_CONTAINERID", "restart1"}, {"CNI_NETNS", a.netns->path()},
             {"CNI_IFNAME", "eth0"}};
  run.stdin_text = config;
  PluginExit down = ExecPlugin(run);
  EXPECT_NE(down.exit_code, 0);
  EXPECT_EQ(json::parse(down.stdout_text, nullptr, false)["code"], 11) << down.stdout_text;
  ASSERT_TRUE(cluster_->StartNode(0).ok());
  // The retried ADD (idempotent per owner) gets the address the first ADD got.
  PluginExit again = ExecPlugin(run);
  ASSERT_EQ(again.exit_code, 0) << again.stdout_text;
  EXPECT_EQ(IpOf(json::parse(again.stdout_text)), IpOf(a.result));
  EXPECT_EQ(Allocations("10.80.0.0-24").size(), 1u);
  EXPECT_EQ(Call(Bridge(), "DEL", a, config).exit_code, 0);
}

TEST_F(CniNetnsTest, OverlappingRangesShareANetworkUnlessOverlapIsDisabled) {
  auto add = [&](const std::string& container, const json& ipam) {
    PluginRun run;
    run.plugin = ABODE_CNI_BIN;
    run.env = {{"CNI_COMMAND", "ADD"}, {"CNI_CONTAINERID", container}, {"CNI_NETNS", "/proc/self/ns/net"},
               {"CNI_IFNAME", "net1"}};
    run.stdin_text = json{{"cniVersion", "1.0.0"}, {"name", "overlap"}, {"ipam", ipam}}.dump();
    return ExecPlugin(run);
  };
  const json narrow = {{"type", "abode"}, {"range", "10.81.0.0/24"}, {"network_name", "ovl"},
                       {"socket_path", cluster_->socket(0)}};
  PluginExit first = add("ovl1", narrow);
  ASSERT_EQ(first.exit_code, 0) << first.stdout_text;
  // A different range that overlaps it, in the same network: addresses must stay unique, so it is refused.
  json wide = narrow;
  wide["range"] = "10.81.0.0/16";
  PluginExit refused = add("ovl2", wide);
  EXPECT_NE(refused.exit_code, 0);
  const json error = json::parse(refused.stdout_text, nullptr, false);
  EXPECT_EQ(error["code"], 7) << refused.stdout_text;
  EXPECT_NE(error["msg"].get<std::string>().find("overlaps pool \"ovl-10.81.0.0-24\""), std::string::npos)
      << refused.stdout_text;
  // With overlapping ranges disabled the wide range is a network of its own and may hand out the same address.
  wide["enable_overlapping_ranges"] = false;
  PluginExit own = add("ovl3", wide);
  ASSERT_EQ(own.exit_code, 0) << own.stdout_text;
  EXPECT_EQ(IpOf(json::parse(own.stdout_text)), IpOf(json::parse(first.stdout_text)));
}

TEST_F(CniNetnsTest, DebianMacvlanWithAbodeAddressesTwoContainersThatReachEachOther) {
  // The master link lives in node b's namespace; macvlan's bridge mode lets its children talk to each other.
  auto [code, out] = cluster_->node_netns(1).Exec("ip link add mvm0 type veth peer name mvm0p 2>/dev/null; "
                                                  "ip link set mvm0 up && ip link set mvm0p up");
  ASSERT_EQ(code, 0) << out;
  const json ipam = {{"type", "abode"}, {"range", "10.79.0.0/24"}, {"socket_path", cluster_->socket(1)}};
  const std::string config = json{{"cniVersion", "0.4.0"}, {"name", "abodemv"}, {"type", "macvlan"},
                                  {"master", "mvm0"},        {"mode", "bridge"},   {"ipam", ipam}}
                                 .dump();
  const std::string macvlan = std::string(kDebianPlugins) + "/macvlan";
  Attachment a = Add(macvlan, "mv1", 1, config);
  Attachment b = Add(macvlan, "mv2", 1, config);
  ASSERT_TRUE(a.result.contains("ips") && b.result.contains("ips")) << a.result.dump() << b.result.dump();
  EXPECT_EQ(a.result["ips"][0]["version"], "4");  // the 0.4.0 result format
  EXPECT_NE(IpOf(a.result), IpOf(b.result));
  auto [ping_code, ping_out] = a.netns->Exec("ping -c1 -W2 " + IpOf(b.result));
  EXPECT_EQ(ping_code, 0) << ping_out;
  json with_prev = json::parse(config);
  with_prev["prevResult"] = a.result;
  EXPECT_EQ(Call(macvlan, "CHECK", a, with_prev.dump()).exit_code, 0);
  for (Attachment* x : {&a, &b}) EXPECT_EQ(Call(macvlan, "DEL", *x, config).exit_code, 0);
  EXPECT_TRUE(Allocations("10.79.0.0-24").empty());
}

TEST_F(CniNetnsTest, ReferencePluginsSpeakOneOneAndPassStatusThrough) {
  const std::string bin = ReferencePluginsDir();
  if (!std::filesystem::exists(bin + "/bridge")) {
    ASSERT_EQ(std::getenv("CI"), nullptr) << "reference plugins missing in " << bin << ": run scripts/test-tools.sh";
    GTEST_SKIP() << "reference plugins v1.10.0 not built; run scripts/test-tools.sh";
  }
  const std::string bridge = *dir_ + "/reference-bin/bridge";
  std::filesystem::copy_file(bin + "/bridge", bridge, std::filesystem::copy_options::skip_existing);
  const json ipam = {{"type", "abode"}, {"range", "10.78.0.0/24"}, {"socket_path", cluster_->socket(1)}};
  const std::string config = BridgeConfig("1.1.0", "cnibr6", ipam);
  Attachment a = Add(bridge, "ref1", 1, config, "reference");
  ASSERT_TRUE(a.result.contains("ips")) << a.result.dump();
  EXPECT_EQ(a.result["cniVersion"], "1.1.0");
  auto [code, out] = a.netns->Exec("ping -c1 -W2 10.78.0.1");
  EXPECT_EQ(code, 0) << out;
  Attachment status_probe;
  status_probe.node = 1;
  EXPECT_EQ(Call(bridge, "STATUS", status_probe, config, "reference").exit_code, 0);
  // The reference bridge does not pass GC on to its IPAM plugin (v1.10.0), so the runtime's GC reaches abode
  // directly: an empty list of valid attachments leaves nothing of this network on this node.
  json gc = json::parse(config);
  gc["cni.dev/valid-attachments"] = json::array();
  PluginRun run;
  run.plugin = ABODE_CNI_BIN;
  run.env = {{"CNI_COMMAND", "GC"}, {"CNI_PATH", *dir_ + "/reference-bin"}};
  run.stdin_text = gc.dump();
  PluginExit collected = ExecPlugin(run);
  EXPECT_EQ(collected.exit_code, 0) << collected.stdout_text;
  EXPECT_TRUE(Allocations("10.78.0.0-24").empty());
}

}  // namespace
}  // namespace abode::integration

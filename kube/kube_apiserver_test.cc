// abode-kube's controllers against a REAL kube-apiserver and etcd (scripts/kube-test-env.sh) and a real
// allocator on port 0. No kubelet runs: pods are API objects only, and their allocations are made through
// abode's API with the labels the CNI plugin gives them.
#include <stdlib.h>

#include <chrono>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>

#include <grpcpp/create_channel.h>

#include "absl/strings/str_cat.h"
#include "allocator-service/server.h"
#include "cni/cni_invocation.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kube/curl_transport.h"
#include "kube/leader_election.h"
#include "kube/sync.h"
#include "replication/clock.h"
#include "test-support/eventually.h"
#include "test-support/temp_dir.h"

namespace abode::kube {
namespace {

using test_support::Eventually;
using test_support::TempDir;
using namespace std::chrono_literals;

std::string Script() { return std::string(ABODE_SOURCE_DIR) + "/scripts/kube-test-env.sh"; }

class KubeApiServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const int rc = std::system((Script() + " start " + env_dir_.path() + " > " + env_dir_.File("start.log") + " 2>&1").c_str());
    if (WEXITSTATUS(rc) == 77 && std::getenv("CI") == nullptr) GTEST_SKIP() << "kube-apiserver/etcd not built";
    ASSERT_EQ(WEXITSTATUS(rc), 0) << "kube-test-env.sh failed; see " << env_dir_.File("start.log");
    started_ = true;
    auto config = KubeconfigConfig(env_dir_.File("kubeconfig"));
    ASSERT_TRUE(config.ok()) << config.status();
    config_ = *config;
    transport_ = std::make_unique<CurlTransport>(config_.tls);
    tokens_ = std::make_unique<TokenSource>(config_, clock_);
    kube_ = std::make_unique<KubeClient>(*transport_, *tokens_);

    allocator::ServerOptions o;
    o.listen = "127.0.0.1:0";
    o.raft.data_dir = data_dir_.path() + "/data";
    o.raft.clock = &clock_;
    o.node_lease_ms = 600'000;  // the registered test node stays ready without heartbeats
    auto s = allocator::AllocatorServer::Start(o);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
    auto ch = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()), grpc::InsecureChannelCredentials());
    alloc_ = v1::Allocator::NewStub(ch);
    nodes_ = v1::Nodes::NewStub(ch);
    ext_ = v1::ExternalAddresses::NewStub(ch);
    pools_ = v1::Pools::NewStub(ch);
    eip_ = v1::ElasticAddresses::NewStub(ch);
    magic_ = v1::MagicAddresses::NewStub(ch);
    Pool("pods", "10.1.0.0/16", v1::POOL_PURPOSE_WORKLOAD);
    Pool("ext", "203.0.113.0/28", v1::POOL_PURPOSE_EXTERNAL);
  }
  void TearDown() override {
    if (sync_) sync_->Stop();
    sync_.reset();
    server_.reset();
    if (started_) (void)!std::system((Script() + " stop " + env_dir_.path() + " > /dev/null 2>&1").c_str());
  }
  void StartSync(SyncOptions options = {}) {
    options.pod_gc_interval_ms = 200;
    sync_ = std::make_unique<Sync>(*kube_, AbodeApi{alloc_.get(), nodes_.get(), ext_.get(), pools_.get(), eip_.get()}, clock_,
                                   options, [] { return true; });
    sync_->Start();
    ASSERT_TRUE(Eventually([&] { return sync_->synced(); }, 30s));
  }
  void Pool(const std::string& name, const std::string& cidr, v1::PoolPurpose purpose) {
    grpc::ClientContext ctx;
    v1::CreatePoolRequest req;
    req.mutable_pool()->set_name(name);
    req.mutable_pool()->set_cidr(cidr);
    req.mutable_pool()->set_purpose(purpose);
    v1::Pool out;
    grpc::Status s = pools_->CreatePool(&ctx, req, &out);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  // A pod object (never run: no kubelet) and its allocation as the CNI plugin makes it. Returns the UID.
  std::string PodWithAllocation(const std::string& ns, const std::string& name, const std::string& app,
                                const std::string& owner, json extra_labels = json::object()) {
    json labels = extra_labels;
    labels["app"] = app;
    json pod = {{"apiVersion", "v1"},
                {"kind", "Pod"},
                {"metadata", {{"name", name}, {"namespace", ns}, {"labels", labels}, {"annotations", {{kPoolAnnotation, "ext"}}}}},
                {"spec", {{"nodeName", "n1"}, {"containers", {{{"name", "c"}, {"image", "agent"}}}}}}};
    auto created = kube_->Create(ResourcePath("v1", "pods", ns), pod);
    EXPECT_TRUE(created.ok()) << created.status();
    const std::string uid = (*created)["metadata"]["uid"];
    grpc::ClientContext ctx;
    v1::AllocateRequest req;
    req.set_pool("pods");
    req.set_owner(owner);
    req.set_node("n1");
    (*req.mutable_labels())[cni::kLabelPodNamespace] = ns;
    (*req.mutable_labels())[cni::kLabelPodName] = name;
    (*req.mutable_labels())[cni::kLabelPodUid] = uid;
    (*req.mutable_labels())[cni::kLabelNetwork] = "abode";
    v1::Allocation out;
    EXPECT_TRUE(alloc_->Allocate(&ctx, req, &out).ok());
    return uid;
  }
  void Namespace(const std::string& ns) {
    ASSERT_TRUE(kube_->Create(ResourcePath("v1", "namespaces"),
                              {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", ns}}}})
                    .ok());
  }
  // Owners of the allocations `selector` picks, as abode answers.
  std::set<std::string> Selected(const std::string& selector) {
    grpc::ClientContext ctx;
    v1::ListAllocationsRequest req;
    req.set_label_selector(selector);
    v1::ListAllocationsResponse out;
    std::set<std::string> owners;
    if (!alloc_->ListAllocations(&ctx, req, &out).ok()) return owners;
    for (const auto& a : out.allocations()) owners.insert(a.owner());
    return owners;
  }
  std::map<std::string, std::string> Externals() {
    grpc::ClientContext ctx;
    v1::ListExternalAddressesRequest req;
    v1::ListExternalAddressesResponse out;
    std::map<std::string, std::string> got;
    if (!ext_->ListExternalAddresses(&ctx, req, &out).ok()) return got;
    for (const auto& x : out.addresses()) got[x.spec().name()] = x.address();
    return got;
  }

  // Registers node `name` as its node client would: a WatchAssignments stream on `ctx`, closed by CloseStream.
  using NodeStream = grpc::ClientReaderWriter<v1::WatchAssignmentsRequest, v1::WatchAssignmentsResponse>;
  std::unique_ptr<NodeStream> OpenNodeStream(grpc::ClientContext& ctx, const std::string& name) {
    auto stream = nodes_->WatchAssignments(&ctx);
    v1::WatchAssignmentsRequest start;
    start.mutable_start()->set_node(name);
    start.mutable_start()->mutable_registration()->set_name(name);
    EXPECT_TRUE(stream->Write(start));
    return stream;
  }
  static void CloseStream(grpc::ClientContext& ctx, NodeStream& stream) {
    ctx.TryCancel();
    v1::WatchAssignmentsResponse drain;
    while (stream.Read(&drain)) {
    }
    (void)stream.Finish();
  }
  grpc::Status GetNode(const std::string& name, v1::Node* out) {
    grpc::ClientContext ctx;
    v1::GetNodeRequest req;
    req.set_name(name);
    return nodes_->GetNode(&ctx, req, out);
  }

  TempDir env_dir_;
  TempDir data_dir_;
  bool started_ = false;
  replication::SystemClock clock_;
  ClusterConfig config_;
  std::unique_ptr<CurlTransport> transport_;
  std::unique_ptr<TokenSource> tokens_;
  std::unique_ptr<KubeClient> kube_;
  std::unique_ptr<allocator::AllocatorServer> server_;
  std::unique_ptr<v1::Allocator::Stub> alloc_;
  std::unique_ptr<v1::Nodes::Stub> nodes_;
  std::unique_ptr<v1::ExternalAddresses::Stub> ext_;
  std::unique_ptr<v1::Pools::Stub> pools_;
  std::unique_ptr<v1::ElasticAddresses::Stub> eip_;
  std::unique_ptr<v1::MagicAddresses::Stub> magic_;
  std::unique_ptr<Sync> sync_;
};

TEST_F(KubeApiServerTest, PodLabelsReachAllocationsAndFollowChangesAcrossAnApiServerRestart) {
  Namespace("mon");
  PodWithAllocation("mon", "dd-agent-a", "dd-agent", "cid-a/eth0");
  PodWithAllocation("default", "web-0", "web", "cid-w/eth0");
  StartSync();
  const std::string selector = "app=dd-agent,k8s-pod-namespace=mon";
  ASSERT_TRUE(Eventually([&] { return Selected(selector) == std::set<std::string>{"cid-a/eth0"}; }, 10s));
  // The CNI plugin's labels stay.
  EXPECT_EQ(Selected("k8s-pod-uid=" + kube_->Get(ResourcePath("v1", "pods", "mon", "dd-agent-a"))
                                          .value()["metadata"]["uid"]
                                          .get<std::string>()),
            std::set<std::string>{"cid-a/eth0"});
  EXPECT_EQ(Selected("cni-network=abode,app=dd-agent"), std::set<std::string>{"cid-a/eth0"});

  // A label change moves the selection.
  ASSERT_TRUE(kube_->MergePatch(ResourcePath("v1", "pods", "mon", "dd-agent-a"),
                                {{"metadata", {{"labels", {{"app", "retired"}}}}}})
                  .ok());
  ASSERT_TRUE(Eventually([&] { return Selected(selector).empty(); }, 10s));

  // The API server restarts during the watch; changes made after it still arrive.
  const int rc = std::system((Script() + " restart-apiserver " + env_dir_.path() + " > /dev/null 2>&1").c_str());
  ASSERT_EQ(WEXITSTATUS(rc), 0);
  ASSERT_TRUE(kube_->MergePatch(ResourcePath("v1", "pods", "default", "web-0"),
                                {{"metadata", {{"labels", {{"app", "dd-agent"}}}}}})
                  .ok());
  ASSERT_TRUE(Eventually([&] { return Selected("app=dd-agent") == std::set<std::string>{"cid-w/eth0"}; }, 30s));
}

// The pod allocation index: pods known from the one list cost no lookup, a resync of unchanged pods writes
// nothing, and a new sandbox's allocation (its address in the pod's status, as the kubelet reports it) is
// found by one lookup on the pod's node and labelled.
TEST_F(KubeApiServerTest, PodLabelsAreWrittenOnlyWhenTheyDifferAndANewSandboxIsFoundByItsAddress) {
  const std::string uid = PodWithAllocation("default", "a", "one", "cid-a/eth0");
  StartSync();
  ASSERT_TRUE(Eventually([&] { return Selected("app=one") == std::set<std::string>{"cid-a/eth0"}; }, 10s));
  EXPECT_EQ(sync_->counters().allocation_lookups.load(), 0u) << "the pod's allocation came with the list";
  EXPECT_GE(sync_->counters().allocation_lists.load(), 1u);
  const uint64_t written = sync_->counters().labels_updated.load();
  EXPECT_EQ(written, 1u);

  const uint64_t reconciled = sync_->counters().reconciles.load();
  sync_->EnqueueAll();
  ASSERT_TRUE(Eventually(
      [&] { return sync_->counters().reconciles.load() >= reconciled + 2 && sync_->queue_length() == 0; }, 10s));
  EXPECT_EQ(sync_->counters().labels_updated.load(), written) << "labels already right: no write";

  // The pod's sandbox is re-created: the CNI plugin allocates for the new container, the kubelet reports
  // the new address.
  std::string address;
  {
    grpc::ClientContext ctx;
    v1::AllocateRequest req;
    req.set_pool("pods");
    req.set_owner("cid-a2/eth0");
    req.set_node("n1");
    (*req.mutable_labels())[cni::kLabelPodNamespace] = "default";
    (*req.mutable_labels())[cni::kLabelPodName] = "a";
    (*req.mutable_labels())[cni::kLabelPodUid] = uid;
    v1::Allocation out;
    ASSERT_TRUE(alloc_->Allocate(&ctx, req, &out).ok());
    address = out.address();
  }
  ASSERT_TRUE(kube_->MergePatch(ResourcePath("v1", "pods", "default", "a", "status"),
                                {{"status", {{"podIP", address}, {"podIPs", {{{"ip", address}}}}}}})
                  .ok());
  ASSERT_TRUE(Eventually([&] { return Selected("app=one") == std::set<std::string>{"cid-a/eth0", "cid-a2/eth0"}; },
                         10s));
  EXPECT_EQ(sync_->counters().allocation_lookups.load(), 1u);
}

// The dd-agent case end to end: a DaemonSet-like pod per node, a magic address selecting them by label, and
// the Kubernetes Node's labels on the abode node.
TEST_F(KubeApiServerTest, MagicAddressReachesTheLabelledAgentOnItsNodeAndNodeLabelsArrive) {
  grpc::ClientContext stream_ctx;
  auto stream = OpenNodeStream(stream_ctx, "n1");
  auto node = [&](v1::Node* out) { return GetNode("n1", out).ok(); };
  v1::Node n;
  ASSERT_TRUE(Eventually([&] { return node(&n) && n.ready(); }, 10s));
  ASSERT_TRUE(kube_->Create(ResourcePath("v1", "nodes"), {{"apiVersion", "v1"},
                                                          {"kind", "Node"},
                                                          {"metadata", {{"name", "n1"}, {"labels", {{"zone", "a"}}}}}})
                  .ok());
  Namespace("mon");
  PodWithAllocation("mon", "dd-agent-x1", "dd-agent", "cid-x1/eth0");
  PodWithAllocation("default", "web-1", "web", "cid-web/eth0");
  {
    grpc::ClientContext ctx;
    v1::CreateMagicAddressRequest req;
    req.mutable_address()->set_name("dd-agent");
    req.mutable_address()->set_address("169.254.210.210");
    req.mutable_address()->set_label_selector("app=dd-agent,k8s-pod-namespace=mon");
    auto* port = req.mutable_address()->add_ports();
    port->set_protocol(v1::PROTOCOL_UDP);
    port->set_port(8125);
    v1::MagicAddress out;
    grpc::Status s = magic_->CreateMagicAddress(&ctx, req, &out);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  StartSync();
  auto target = [&]() -> std::string {
    v1::Node got;
    if (!node(&got)) return "?";
    for (const auto& a : got.assignments()) {
      if (a.id() == "magic/dd-agent") return a.magic().target_owner();
    }
    return "-";
  };
  ASSERT_TRUE(Eventually([&] { return target() == "cid-x1/eth0"; }, 10s)) << target();
  ASSERT_TRUE(Eventually([&] { return node(&n) && n.set_labels().count("zone") && n.set_labels().at("zone") == "a"; },
                         10s));

  // The agent is relabelled away and the web pod becomes the agent: the target moves.
  ASSERT_TRUE(kube_->MergePatch(ResourcePath("v1", "pods", "mon", "dd-agent-x1"),
                                {{"metadata", {{"labels", {{"app", "old-agent"}}}}}})
                  .ok());
  ASSERT_TRUE(Eventually([&] { return target() == ""; }, 10s)) << target();
  ASSERT_TRUE(kube_->MergePatch(ResourcePath("v1", "pods", "default", "web-1"),
                                {{"metadata", {{"labels", {{"app", "dd-agent"}}}}}})
                  .ok());
  ASSERT_TRUE(Eventually([&] { return Selected("app=dd-agent") == std::set<std::string>{"cid-web/eth0"}; }, 10s));
  EXPECT_EQ(target(), "") << "the selector names namespace mon: web-1 in default is no match";
  // A Node label change follows.
  ASSERT_TRUE(kube_->MergePatch(ResourcePath("v1", "nodes", "", "n1"), {{"metadata", {{"labels", {{"zone", "b"}}}}}})
                  .ok());
  ASSERT_TRUE(Eventually([&] { return node(&n) && n.set_labels().at("zone") == "b"; }, 10s));
  CloseStream(stream_ctx, *stream);
}

TEST_F(KubeApiServerTest, LoadBalancerServiceGetsAnAddressAndStatusExternalIpsAreClaimedDeletionReleases) {
  StartSync();
  json svc = {{"apiVersion", "v1"},
              {"kind", "Service"},
              {"metadata", {{"name", "web"}, {"namespace", "default"}, {"annotations", {{kPoolAnnotation, "ext"}}}}},
              {"spec",
               {{"type", "LoadBalancer"},
                {"ports", {{{"port", 80}, {"protocol", "TCP"}}}},
                {"externalIPs", {"203.0.113.9", "198.51.100.7"}}}}};
  ASSERT_TRUE(kube_->Create(ResourcePath("v1", "services", "default"), svc).ok());
  std::string ingress;
  ASSERT_TRUE(Eventually(
      [&] {
        auto got = kube_->Get(ResourcePath("v1", "services", "default", "web"));
        if (!got.ok()) return false;
        auto ing = (*got)["status"]["loadBalancer"]["ingress"];
        if (!ing.is_array() || ing.empty()) return false;
        ingress = ing[0].value("ip", "");
        return true;
      },
      10s));
  const std::string prefix = ServiceAddressPrefix("default", "web");
  auto externals = Externals();
  EXPECT_EQ(externals[prefix + "lb"], ingress);
  EXPECT_THAT(ingress, ::testing::StartsWith("203.0.113."));
  EXPECT_EQ(externals[prefix + "ip0"], "203.0.113.9");
  EXPECT_EQ(externals.count(prefix + "ip1"), 0u) << "198.51.100.7 is outside every external pool";
  // The refusal is an Event on the Service.
  ASSERT_TRUE(Eventually(
      [&] {
        auto events = kube_->List(ResourcePath("v1", "events", "default"));
        if (!events.ok()) return false;
        for (const auto& e : events->items) {
          if (e.value("reason", "") == "ExternalIPRefused" && e["involvedObject"].value("name", "") == "web") return true;
        }
        return false;
      },
      10s));

  ASSERT_TRUE(kube_->Delete(ResourcePath("v1", "services", "default", "web")).ok());
  ASSERT_TRUE(Eventually([&] { return Externals().empty(); }, 10s));
}

TEST_F(KubeApiServerTest, ADeletedPodsAllocationIsReleasedAfterTheGraceAndALivePodsNever) {
  PodWithAllocation("default", "gone", "x", "cid-gone/eth0");
  PodWithAllocation("default", "stays", "x", "cid-stays/eth0");
  SyncOptions o;
  o.pod_gc_grace_ms = 1'000;
  StartSync(o);
  ASSERT_TRUE(kube_->Delete(ResourcePath("v1", "pods", "default", "gone") + "?gracePeriodSeconds=0").ok());
  ASSERT_TRUE(Eventually([&] { return Selected("k8s-pod-name=gone").empty(); }, 15s));
  // A pod created after the cache listed, with its allocation: kept through collections spanning more than
  // the grace period (one every 200 ms).
  PodWithAllocation("default", "new", "x", "cid-new/eth0");
  const uint64_t before = sync_->counters().reconciles.load();
  ASSERT_TRUE(Eventually([&] { return sync_->counters().reconciles.load() >= before + 10; }, 20s));
  const uint64_t released = sync_->counters().allocations_released.load();
  EXPECT_EQ(Selected("k8s-pod-name=stays"), std::set<std::string>{"cid-stays/eth0"});
  EXPECT_EQ(Selected("k8s-pod-name=new"), std::set<std::string>{"cid-new/eth0"});
  EXPECT_EQ(released, 1u);
}

TEST_F(KubeApiServerTest, ALabelledPodGetsAnElasticAddressThatFollowsItsRecreationAndGoesWithIt) {
  SyncOptions o;
  o.pod_gc_grace_ms = 1'000;
  StartSync(o);
  const json elastic_label = {{kElasticLabel, "true"}};
  PodWithAllocation("default", "db-0", "db", "cid-1/eth0", elastic_label);
  const std::string name = PodElasticName("default", "db-0");
  auto elastic = [&](v1::ElasticAddress* out) {
    grpc::ClientContext ctx;
    v1::GetElasticAddressRequest req;
    req.set_name(name);
    return eip_->GetElasticAddress(&ctx, req, out).ok();
  };
  v1::ElasticAddress e;
  ASSERT_TRUE(Eventually([&] { return elastic(&e) && e.workload_owner() == "cid-1/eth0"; }, 10s));
  EXPECT_THAT(e.address(), ::testing::StartsWith("203.0.113."));
  auto annotated = [&](const std::string& address) {
    auto pod = kube_->Get(ResourcePath("v1", "pods", "default", "db-0"));
    if (!pod.ok()) return false;
    return Annotation(*pod, kElasticAddressAnnotation) == address && Annotation(*pod, kExternalDnsTarget) == address;
  };
  ASSERT_TRUE(Eventually([&] { return annotated(e.address()); }, 10s));

  // The StatefulSet re-creates the pod under its name: the old attachment goes (CNI DEL), a new one comes.
  ASSERT_TRUE(kube_->Delete(ResourcePath("v1", "pods", "default", "db-0") + "?gracePeriodSeconds=0").ok());
  {
    grpc::ClientContext ctx;
    v1::ReleaseRequest rel;
    rel.set_owner("cid-1/eth0");
    v1::ReleaseResponse out;
    ASSERT_TRUE(alloc_->Release(&ctx, rel, &out).ok());
  }
  PodWithAllocation("default", "db-0", "db", "cid-2/eth0", elastic_label);
  const std::string address = e.address();
  ASSERT_TRUE(Eventually([&] { return elastic(&e) && e.workload_owner() == "cid-2/eth0"; }, 10s));
  EXPECT_EQ(e.address(), address) << "the same elastic address follows the re-created pod";
  ASSERT_TRUE(Eventually([&] { return annotated(address); }, 10s));

  // Gone for good: the elastic address goes after the grace period.
  ASSERT_TRUE(kube_->Delete(ResourcePath("v1", "pods", "default", "db-0") + "?gracePeriodSeconds=0").ok());
  ASSERT_TRUE(Eventually([&] { return !elastic(&e); }, 15s));
}

// A Kubernetes Node deleted: the leader deletes the abode node (its allocations released); a follower never
// does, and a Node abode never knew is no failure.
TEST_F(KubeApiServerTest, ADeletedKubernetesNodeIsDeletedInAbodeByTheLeaderOnly) {
  {
    grpc::ClientContext stream_ctx;
    auto stream = OpenNodeStream(stream_ctx, "n1");
    v1::WatchAssignmentsResponse first;
    ASSERT_TRUE(stream->Read(&first));
    CloseStream(stream_ctx, *stream);
  }
  auto node = [&](v1::Node* out) { return GetNode("n1", out); };
  v1::Node n;
  ASSERT_TRUE(Eventually([&] { return node(&n).ok(); }, 10s));
  ASSERT_TRUE(kube_->Create(ResourcePath("v1", "nodes"), {{"apiVersion", "v1"},
                                                          {"kind", "Node"},
                                                          {"metadata", {{"name", "n1"}, {"labels", {{"zone", "a"}}}}}})
                  .ok());
  PodWithAllocation("default", "on-n1", "x", "cid-n1/eth0");
  AbodeApi abode{alloc_.get(), nodes_.get(), ext_.get(), pools_.get(), eip_.get()};
  SyncOptions so;
  Sync follower(*kube_, abode, clock_, so, [] { return false; });
  follower.Start();
  StartSync();
  ASSERT_TRUE(Eventually([&] { return node(&n).ok() && n.set_labels().count("zone"); }, 10s));
  ASSERT_EQ(Selected("k8s-pod-name=on-n1"), std::set<std::string>{"cid-n1/eth0"});
  std::string address;
  {
    grpc::ClientContext ctx;
    v1::ListAllocationsRequest req;
    req.set_label_selector("k8s-pod-name=on-n1");
    v1::ListAllocationsResponse out;
    ASSERT_TRUE(alloc_->ListAllocations(&ctx, req, &out).ok());
    ASSERT_EQ(out.allocations_size(), 1);
    address = out.allocations(0).address();
  }

  ASSERT_TRUE(kube_->Delete(ResourcePath("v1", "nodes", "", "n1")).ok());
  ASSERT_TRUE(Eventually([&] { return node(&n).error_code() == grpc::StatusCode::NOT_FOUND; }, 10s));
  EXPECT_TRUE(Selected("k8s-pod-name=on-n1").empty()) << "the node's allocations are released with it";
  EXPECT_EQ(sync_->counters().nodes_deleted.load(), 1u);
  // The history names the reason.
  {
    grpc::ClientContext ctx;
    v1::GetHistoryRequest req;
    req.set_address(address);
    v1::GetHistoryResponse out;
    grpc::Status s = alloc_->GetHistory(&ctx, req, &out);
    ASSERT_TRUE(s.ok()) << s.error_message();
    ASSERT_GT(out.entries_size(), 0);
    EXPECT_EQ(out.entries(0).owner(), "cid-n1/eth0");
    EXPECT_EQ(out.entries(0).end_reason(), absl::StrCat("node n1 decommissioned: ", kNodeDeletedReason));
  }
  // Again (a resync, a second deletion event), and for a Node abode never registered: NOT_FOUND is done.
  EXPECT_TRUE(sync_->Reconcile("node/n1").ok());
  EXPECT_TRUE(sync_->Reconcile("node/never-registered").ok());
  EXPECT_EQ(sync_->counters().nodes_deleted.load(), 1u);
  follower.Stop();
  EXPECT_EQ(follower.counters().reconciles.load(), 0u);
  EXPECT_EQ(follower.counters().nodes_deleted.load(), 0u);
}

TEST_F(KubeApiServerTest, OnlyTheLeaderWritesAndTheOtherTakesOverWhenItStops) {
  PodWithAllocation("default", "p", "one", "cid-p/eth0");
  auto options = [](const std::string& id) { return LeaseOptions{"default", "abode-kube", id, 2'000, 1'500, 200}; };
  LeaderElector a(*kube_, clock_, options("a"));
  LeaderElector b(*kube_, clock_, options("b"));
  SyncOptions so;
  so.pod_gc_interval_ms = 200;
  AbodeApi abode{alloc_.get(), nodes_.get(), ext_.get(), pools_.get(), eip_.get()};
  auto sync_a = std::make_unique<Sync>(*kube_, abode, clock_, so, [&] { return a.is_leader(); });
  auto sync_b = std::make_unique<Sync>(*kube_, abode, clock_, so, [&] { return b.is_leader(); });
  StopSignal stop_a, stop_b;
  std::thread run_a([&] { a.Run(stop_a, nullptr); });
  ASSERT_TRUE(Eventually([&] { return a.is_leader(); }, 10s));
  std::thread run_b([&] { b.Run(stop_b, nullptr); });
  sync_a->Start();
  sync_b->Start();
  ASSERT_TRUE(Eventually([&] { return Selected("app=one") == std::set<std::string>{"cid-p/eth0"}; }, 10s));
  EXPECT_FALSE(b.is_leader());
  EXPECT_EQ(sync_b->counters().reconciles.load(), 0u) << "a follower never reconciles";

  // a stops (releasing the Lease on its way out): b takes over and carries on.
  sync_a->Stop();
  stop_a.Stop();
  run_a.join();
  ASSERT_TRUE(Eventually([&] { return b.is_leader(); }, 10s));
  ASSERT_TRUE(kube_->MergePatch(ResourcePath("v1", "pods", "default", "p"), {{"metadata", {{"labels", {{"app", "two"}}}}}})
                  .ok());
  ASSERT_TRUE(Eventually([&] { return Selected("app=two") == std::set<std::string>{"cid-p/eth0"}; }, 10s));
  auto lease = kube_->Get(ResourcePath("coordination.k8s.io/v1", "leases", "default", "abode-kube"));
  ASSERT_TRUE(lease.ok());
  EXPECT_EQ((*lease)["spec"]["holderIdentity"], "b");
  sync_b->Stop();
  stop_b.Stop();
  run_b.join();
}

}  // namespace
}  // namespace abode::kube

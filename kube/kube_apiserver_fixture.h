// The fixture of abode-kube's tests against a REAL kube-apiserver and etcd (scripts/kube-test-env.sh) and a
// real allocator on port 0. No kubelet runs: pods are API objects only, and their allocations are made
// through abode's API with the labels the CNI plugin gives them.
#ifndef ABODE_KUBE_KUBE_APISERVER_FIXTURE_H_
#define ABODE_KUBE_KUBE_APISERVER_FIXTURE_H_

#include <stdlib.h>

#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <string>

#include <grpcpp/create_channel.h>

#include "abode/v1/cluster.grpc.pb.h"
#include "allocator-service/server.h"
#include "allocator-service/test_server.h"
#include "cni/cni_invocation.h"
#include "gtest/gtest.h"
#include "kube/curl_transport.h"
#include "kube/sync.h"
#include "replication/clock.h"
#include "test-support/eventually.h"
#include "test-support/temp_dir.h"

namespace abode::kube {

using test_support::Eventually;
using test_support::TempDir;
using namespace std::chrono_literals;

inline std::string Script() { return std::string(ABODE_SOURCE_DIR) + "/scripts/kube-test-env.sh"; }

class KubeApiServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const int rc = std::system((Script() + " start " + env_dir_.path() + " > " + env_dir_.File("start.log") + " 2>&1").c_str());
    if (WEXITSTATUS(rc) == 77 && std::getenv("CI") == nullptr) GTEST_SKIP() << "kube-apiserver/etcd not built";
    ASSERT_EQ(WEXITSTATUS(rc), 0) << "kube-test-env.sh failed:\n"
                                  << ReadFile(env_dir_.File("start.log")).value_or("(no start.log)");
    started_ = true;
    auto config = KubeconfigConfig(env_dir_.File("kubeconfig"));
    ASSERT_TRUE(config.ok()) << config.status();
    config_ = *config;
    transport_ = std::make_unique<CurlTransport>(config_.tls);
    tokens_ = std::make_unique<TokenSource>(config_, clock_);
    kube_ = std::make_unique<KubeClient>(*transport_, *tokens_);

    allocator::ServerOptions o = allocator::LocalTestServerOptions(data_dir_.path() + "/data", &clock_);
    o.node_lease_ms = 600'000;  // the registered test node stays ready without heartbeats
    o.history_retention_ms = 0;  // no PruneHistory commands: every command in the log is abode-kube's
    absl::Status started = allocator::StartLocalTestServer(o, &server_);
    ASSERT_TRUE(started.ok()) << started;
    auto ch = allocator::LocalChannelTo(*server_);
    alloc_ = v1::Allocator::NewStub(ch);
    nodes_ = v1::Nodes::NewStub(ch);
    ext_ = v1::ExternalAddresses::NewStub(ch);
    pools_ = v1::Pools::NewStub(ch);
    eip_ = v1::ElasticAddresses::NewStub(ch);
    magic_ = v1::MagicAddresses::NewStub(ch);
    cluster_ = v1::Cluster::NewStub(ch);
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
    grpc::Status s = allocator::CreateTestPool(*pools_, name, cidr, purpose);
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

  // The allocator's applied log index and state revision: every command abode-kube's writes made moves the
  // first (idempotent ones too), every change the second.
  std::pair<uint64_t, uint64_t> AppliedAndRevision() {
    grpc::ClientContext ctx;
    v1::ClusterStatusRequest req;
    v1::ClusterStatus out;
    grpc::Status s = cluster_->Status(&ctx, req, &out);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return {out.applied_index(), out.revision()};
  }
  // A Service of type LoadBalancer from pool "ext" (or none, when `pool` is empty), with `external_ips`.
  void LoadBalancer(const std::string& name, const std::string& pool = "ext", json external_ips = json::array()) {
    json annotations = json::object();
    if (!pool.empty()) annotations[kPoolAnnotation] = pool;
    json svc = {{"apiVersion", "v1"},
                {"kind", "Service"},
                {"metadata", {{"name", name}, {"namespace", "default"}, {"annotations", annotations}}},
                {"spec",
                 {{"type", "LoadBalancer"},
                  {"ports", {{{"port", 80}, {"protocol", "TCP"}}}},
                  {"externalIPs", std::move(external_ips)}}}};
    auto created = kube_->Create(ResourcePath("v1", "services", "default"), svc);
    ASSERT_TRUE(created.ok()) << created.status();
  }
  // The first status.loadBalancer.ingress ip of Service default/`name`, "" while none.
  std::string Ingress(const std::string& name) {
    auto got = kube_->Get(ResourcePath("v1", "services", "default", name));
    if (!got.ok()) return "";
    const json ing = (*got)["status"]["loadBalancer"].value("ingress", json::array());
    return ing.empty() ? "" : ing[0].value("ip", "");
  }
  // The condition `type` of an object (an empty object when absent).
  static json Condition(const json& object, const std::string& type) {
    for (const auto& c : object.value("status", json::object()).value("conditions", json::array())) {
      if (c.value("type", std::string()) == type) return c;
    }
    return json::object();
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
  std::unique_ptr<v1::Cluster::Stub> cluster_;
  std::unique_ptr<Sync> sync_;
};

}  // namespace abode::kube

#endif  // ABODE_KUBE_KUBE_APISERVER_FIXTURE_H_

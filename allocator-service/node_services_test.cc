// Nodes and address services over real gRPC: a server on port 0 with a FakeClock, and simulated node
// clients on WatchAssignments streams.
#include <stdlib.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

#include <grpcpp/create_channel.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "abode/v1/allocator.grpc.pb.h"
#include "abode/v1/nodes.grpc.pb.h"
#include "abode/v1/pools.grpc.pb.h"
#include "allocator-service/server.h"
#include "allocator-service/test_server.h"
#include "replication/clock.h"
#include "test-support/eventually.h"

namespace abode::allocator {
namespace {

using ::testing::HasSubstr;
using Stream = grpc::ClientReaderWriter<v1::WatchAssignmentsRequest, v1::WatchAssignmentsResponse>;

// A simulated node client: keeps the desired state it was sent, by assignment id.
class NodeClient {
 public:
  NodeClient(v1::Nodes::Stub& stub, const std::string& name, std::map<std::string, std::string> labels = {},
             uint64_t resume = 0, bool observe_only = false)
      : name_(name) {
    stream_ = stub.WatchAssignments(&ctx_);
    v1::WatchAssignmentsRequest start;
    start.mutable_start()->set_node(name);
    start.mutable_start()->set_resume_revision(resume);
    if (!observe_only) {
      start.mutable_start()->mutable_registration()->set_name(name);
      for (auto& [k, v] : labels) (*start.mutable_start()->mutable_registration()->mutable_labels())[k] = v;
    }
    stream_->Write(start);
    reader_ = std::thread([this] {
      v1::WatchAssignmentsResponse r;
      while (stream_->Read(&r)) {
        std::lock_guard<std::mutex> lock(mu_);
        if (r.snapshot()) state_.clear();
        for (const auto& a : r.assignments()) state_[a.id()] = a;
        for (const auto& id : r.removed()) state_.erase(id);
        messages_.push_back(r);
        cv_.notify_all();
      }
    });
  }
  ~NodeClient() { Close(); }
  void Close() {
    if (closed_) return;
    closed_ = true;
    stream_->WritesDone();
    ctx_.TryCancel();
    reader_.join();
  }
  void Heartbeat() {
    v1::WatchAssignmentsRequest r;
    r.mutable_heartbeat();
    stream_->Write(r);
  }
  void Heartbeat(uint64_t sequence) {
    v1::WatchAssignmentsRequest r;
    r.mutable_heartbeat()->set_sequence(sequence);
    stream_->Write(r);
  }
  // Waits (up to 10 s) for a message acknowledging heartbeat `sequence`.
  bool WaitAcknowledged(uint64_t sequence) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(10), [&] {
      for (const auto& m : messages_) {
        if (m.heartbeat_acknowledged() == sequence) return true;
      }
      return false;
    });
  }
  void Report(const std::string& id, uint64_t revision, v1::AssignmentState state, const std::string& message) {
    v1::WatchAssignmentsRequest r;
    auto* s = r.mutable_status()->add_statuses();
    s->set_id(id);
    s->set_revision(revision);
    s->set_state(state);
    s->set_message(message);
    stream_->Write(r);
  }
  // Waits (up to 10 s of real time) until `pred` holds for the state.
  bool WaitFor(const std::function<bool(const std::map<std::string, v1::Assignment>&)>& pred) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(10), [&] { return pred(state_); });
  }
  bool WaitMessages(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(10), [&] { return messages_.size() >= n; });
  }
  std::map<std::string, v1::Assignment> state() {
    std::lock_guard<std::mutex> lock(mu_);
    return state_;
  }
  std::vector<v1::WatchAssignmentsResponse> messages() {
    std::lock_guard<std::mutex> lock(mu_);
    return messages_;
  }

 private:
  std::string name_;
  grpc::ClientContext ctx_;
  std::unique_ptr<Stream> stream_;
  std::thread reader_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, v1::Assignment> state_;
  std::vector<v1::WatchAssignmentsResponse> messages_;
  bool closed_ = false;
};

bool Has(const std::map<std::string, v1::Assignment>& s, const std::string& id) { return s.count(id) > 0; }

class NodeServicesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/abode-nodes-test-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    ServerOptions o = LocalTestServerOptions(dir_ + "/data", &clock_);
    o.node_lease_ms = 3000;
    o.node_sweep_interval_ms = 3'600'000;  // tests sweep explicitly
    o.reclaim_not_ready_after_ms = reclaim_ms_;
    absl::Status started = StartLocalTestServer(o, &server_);
    ASSERT_TRUE(started.ok()) << started;
    auto ch = LocalChannelTo(*server_);
    pools_ = v1::Pools::NewStub(ch);
    alloc_ = v1::Allocator::NewStub(ch);
    nodes_ = v1::Nodes::NewStub(ch);
    ext_ = v1::ExternalAddresses::NewStub(ch);
    eip_ = v1::ElasticAddresses::NewStub(ch);
    magic_ = v1::MagicAddresses::NewStub(ch);
  }
  void TearDown() override {
    server_.reset();
    std::filesystem::remove_all(dir_);
  }
  int64_t reclaim_ms_ = 0;  // set before SetUp to enable reclaim

  void Pool(const std::string& name, const std::string& cidr, v1::PoolPurpose purpose) {
    ASSERT_TRUE(CreateTestPool(*pools_, name, cidr, purpose).ok());
  }
  grpc::Status Workload(const std::string& owner, const std::string& node, const std::string& app) {
    grpc::ClientContext ctx;
    v1::AllocateRequest req;
    req.set_pool("pods");
    req.set_owner(owner);
    req.set_node(node);
    (*req.mutable_labels())["app"] = app;
    v1::Allocation out;
    return alloc_->Allocate(&ctx, req, &out);
  }
  void Release(const std::string& owner) {
    grpc::ClientContext ctx;
    v1::ReleaseRequest req;
    req.set_owner(owner);
    v1::ReleaseResponse out;
    ASSERT_TRUE(alloc_->Release(&ctx, req, &out).ok());
  }
  grpc::Status External(const std::string& name, const std::string& selector, v1::ExternalAddress* out,
                        const std::string& address = "") {
    grpc::ClientContext ctx;
    v1::CreateExternalAddressRequest req;
    req.mutable_address()->set_name(name);
    req.mutable_address()->set_pool("ext");
    req.mutable_address()->set_node_selector(selector);
    req.mutable_address()->set_address(address);
    return ext_->CreateExternalAddress(&ctx, req, out);
  }
  grpc::Status Magic(const std::string& name, const std::string& address, v1::MagicAddress* out) {
    grpc::ClientContext ctx;
    v1::CreateMagicAddressRequest req;
    req.mutable_address()->set_name(name);
    req.mutable_address()->set_address(address);
    req.mutable_address()->set_label_selector("app=agent");
    auto* p = req.mutable_address()->add_ports();
    p->set_protocol(v1::PROTOCOL_UDP);
    p->set_port(8125);
    return magic_->CreateMagicAddress(&ctx, req, out);
  }
  // Registration is a command: wait until the node is ready in the replicated state.
  void WaitReady(const std::string& name, bool ready) {
    EXPECT_TRUE(NodeEventually(name, [&](const v1::Node& n) { return n.ready() == ready; }))
        << name << " never became " << (ready ? "ready" : "not ready");
  }

  void WaitHeartbeat(const std::string& name, int64_t at) {
    EXPECT_TRUE(NodeEventually(name, [&](const v1::Node& n) { return n.last_heartbeat_unix_ms() == at; }))
        << name << ": heartbeat at " << at << " never arrived";
  }

  // Polls GetNode until the node exists and satisfies `pred` (true), or 10 s passed (false); `last` gets the
  // last answer.
  template <typename Pred>
  bool NodeEventually(const std::string& name, Pred pred, v1::Node* last = nullptr) {
    v1::Node n;
    const bool ok = test_support::Eventually(
        [&] {
          grpc::ClientContext ctx;
          v1::GetNodeRequest req;
          req.set_name(name);
          n.Clear();
          return nodes_->GetNode(&ctx, req, &n).ok() && pred(n);
        },
        std::chrono::seconds(10), std::chrono::milliseconds(5));
    if (last != nullptr) *last = n;
    return ok;
  }

  std::string dir_;
  replication::FakeClock clock_{1'700'000'000'000};
  std::unique_ptr<AllocatorServer> server_;
  std::unique_ptr<v1::Pools::Stub> pools_;
  std::unique_ptr<v1::Allocator::Stub> alloc_;
  std::unique_ptr<v1::Nodes::Stub> nodes_;
  std::unique_ptr<v1::ExternalAddresses::Stub> ext_;
  std::unique_ptr<v1::ElasticAddresses::Stub> eip_;
  std::unique_ptr<v1::MagicAddresses::Stub> magic_;
};

TEST_F(NodeServicesTest, ExternalPlacementFailoverOnLeaseExpiryAndNoFlapBack) {
  Pool("ext", "203.0.113.0/24", v1::POOL_PURPOSE_EXTERNAL);
  NodeClient n1(*nodes_, "n1", {{"edge", "yes"}});
  NodeClient n2(*nodes_, "n2", {{"edge", "yes"}});
  WaitReady("n1", true);
  WaitReady("n2", true);
  v1::ExternalAddress a, b;
  ASSERT_TRUE(External("a", "edge=yes", &a).ok());
  ASSERT_TRUE(External("b", "edge=yes", &b).ok());
  EXPECT_NE(a.node(), b.node()) << "placed evenly";
  ASSERT_TRUE(n1.WaitFor([](auto& s) { return s.size() == 1; }));
  ASSERT_TRUE(n2.WaitFor([](auto& s) { return s.size() == 1; }));
  const v1::Assignment on_n1 = n1.state().begin()->second;
  EXPECT_EQ(on_n1.external().prefix_length(), 24);

  // n1 stops heartbeating; n2 goes on. The lease runs out on the injected clock.
  clock_.Advance(2000);
  n2.Heartbeat();
  clock_.Advance(1500);
  n2.Heartbeat();
  WaitHeartbeat("n2", clock_.NowUnixMs());  // heartbeats travel asynchronously
  server_->node_registry().Sweep();
  ASSERT_TRUE(n2.WaitFor([](auto& s) { return s.size() == 2; })) << "claim moved to n2";
  ASSERT_TRUE(n1.WaitFor([](auto& s) { return s.empty(); }));
  WaitReady("n1", false);

  // n1 recovers: ready again, but it does not take its claim back.
  n1.Heartbeat();
  WaitReady("n1", true);
  server_->node_registry().Sweep();
  v1::ExternalAddress c;
  ASSERT_TRUE(External("c", "edge=yes", &c).ok());
  EXPECT_EQ(c.node(), "n1") << "new claims go to the least-loaded node";
  ASSERT_TRUE(n1.WaitFor([](auto& s) { return s.size() == 1 && Has(s, "external/c"); }));
  EXPECT_EQ(n2.state().size(), 2u);
}

TEST_F(NodeServicesTest, DeleteNodeRefusesAConnectedNodeAndDecommissionsOneThatIsNot) {
  Pool("pods", "10.1.0.0/24", v1::POOL_PURPOSE_WORKLOAD);
  Pool("ext", "198.51.100.0/24", v1::POOL_PURPOSE_EXTERNAL);
  auto n1 = std::make_unique<NodeClient>(*nodes_, "n1", std::map<std::string, std::string>{{"edge", "yes"}});
  NodeClient n2(*nodes_, "n2", {{"edge", "yes"}});
  WaitReady("n1", true);
  WaitReady("n2", true);
  v1::ExternalAddress a;
  ASSERT_TRUE(External("a", "edge=yes", &a).ok());
  ASSERT_EQ(a.node(), "n1") << "the least-loaded node, then the lowest name";
  ASSERT_TRUE(Workload("pod-1", "n1", "web").ok());
  ASSERT_TRUE(Workload("pod-2", "n1", "web").ok());
  ASSERT_TRUE(Workload("pod-3", "n2", "web").ok());

  auto del = [&](const std::string& node, const std::string& reason, bool force, v1::DeleteNodeResponse* out) {
    grpc::ClientContext ctx;
    v1::DeleteNodeRequest req;
    req.set_node(node);
    req.set_reason(reason);
    req.set_force(force);
    return nodes_->DeleteNode(&ctx, req, out);
  };
  v1::DeleteNodeResponse deleted;
  grpc::Status s = del("n1", "rack retired", false, &deleted);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("connected"));

  n1->Close();
  ASSERT_TRUE(NodeEventually("n1", [](const v1::Node& n) { return !n.connected(); }));
  s = del("n1", "rack retired", false, &deleted);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(deleted.released_size(), 2);
  EXPECT_EQ(deleted.released(0).owner(), "pod-1");
  EXPECT_EQ(deleted.released(1).owner(), "pod-2");
  ASSERT_EQ(deleted.moved_external_addresses_size(), 1);
  EXPECT_EQ(deleted.moved_external_addresses(0), "a");
  ASSERT_TRUE(n2.WaitFor([](auto& st) { return Has(st, "external/a"); })) << "the external address moved to n2";

  grpc::ClientContext hctx;
  v1::GetHistoryRequest hreq;
  hreq.set_address(deleted.released(0).address());
  hreq.set_pool("pods");
  v1::GetHistoryResponse history;
  ASSERT_TRUE(alloc_->GetHistory(&hctx, hreq, &history).ok());
  ASSERT_EQ(history.entries_size(), 1);
  EXPECT_EQ(history.entries(0).end_reason(), "node n1 decommissioned: rack retired");

  grpc::ClientContext gctx;
  v1::GetNodeRequest get;
  get.set_name("n1");
  v1::Node gone;
  EXPECT_EQ(nodes_->GetNode(&gctx, get, &gone).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(del("n1", "", false, &deleted).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(del("", "", true, &deleted).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  // Force deletes a connected node.
  s = del("n2", "", true, &deleted);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(deleted.released_size(), 1);
  EXPECT_EQ(deleted.released(0).owner(), "pod-3");
}

TEST_F(NodeServicesTest, BadInputNamesTheField) {
  Pool("ext", "203.0.113.0/24", v1::POOL_PURPOSE_EXTERNAL);
  v1::ExternalAddress x;
  auto outside = External("x", "", &x, "198.51.100.7");
  EXPECT_EQ(outside.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(outside.error_message().find("address.address"), std::string::npos) << outside.error_message();
  v1::MagicAddress m;
  auto not_ll = Magic("m", "10.0.0.1", &m);
  EXPECT_EQ(not_ll.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  auto collides = Magic("m", "169.254.0.1", &m);
  EXPECT_EQ(collides.error_code(), grpc::StatusCode::OK);
  Pool("ll", "169.254.9.0/24", v1::POOL_PURPOSE_WORKLOAD);
  auto in_pool = Magic("m2", "169.254.9.9", &m);
  EXPECT_EQ(in_pool.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  grpc::ClientContext ctx;
  v1::AssociateElasticAddressRequest req;
  req.set_name("missing");
  req.mutable_association()->set_owner("x");
  v1::ElasticAddress e;
  EXPECT_EQ(eip_->AssociateElasticAddress(&ctx, req, &e).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(NodeServicesTest, ElasticAssociationFollowsARecreatedWorkload) {
  Pool("ext", "203.0.113.0/24", v1::POOL_PURPOSE_EXTERNAL);
  Pool("pods", "10.1.0.0/16", v1::POOL_PURPOSE_WORKLOAD);
  NodeClient n1(*nodes_, "n1");
  NodeClient n2(*nodes_, "n2");
  ASSERT_TRUE(Workload("web-0", "n1", "web").ok());
  {
    grpc::ClientContext ctx;
    v1::CreateElasticAddressRequest req;
    req.mutable_address()->set_name("eip");
    req.mutable_address()->set_pool("ext");
    v1::ElasticAddress e;
    ASSERT_TRUE(eip_->CreateElasticAddress(&ctx, req, &e).ok());
  }
  grpc::ClientContext ctx;
  v1::AssociateElasticAddressRequest req;
  req.set_name("eip");
  req.mutable_association()->set_label_selector("app=web");
  v1::ElasticAddress e;
  ASSERT_TRUE(eip_->AssociateElasticAddress(&ctx, req, &e).ok());
  EXPECT_EQ(e.node(), "n1");
  ASSERT_TRUE(n1.WaitFor([](auto& s) {
    return Has(s, "elastic/eip") && s.at("elastic/eip").elastic().workload_address() == "10.1.0.1";
  }));
  Release("web-0");
  ASSERT_TRUE(n1.WaitFor([](auto& s) { return s.empty(); }));
  ASSERT_TRUE(Workload("web-0b", "n2", "web").ok());
  ASSERT_TRUE(n2.WaitFor([](auto& s) {
    return Has(s, "elastic/eip") && s.at("elastic/eip").elastic().workload_owner() == "web-0b";
  }));
}

TEST_F(NodeServicesTest, MagicTargetIsLocalAndStable) {
  Pool("pods", "10.1.0.0/16", v1::POOL_PURPOSE_WORKLOAD);
  NodeClient n1(*nodes_, "n1");
  NodeClient n2(*nodes_, "n2");
  WaitReady("n1", true);
  WaitReady("n2", true);
  ASSERT_TRUE(Workload("agent-1", "n1", "agent").ok());
  ASSERT_TRUE(Workload("agent-2", "n2", "agent").ok());
  v1::MagicAddress m;
  ASSERT_TRUE(Magic("dd", "169.254.210.210", &m).ok());
  auto target = [](const std::string& owner) {
    return [owner](auto& s) { return Has(s, "magic/dd") && s.at("magic/dd").magic().target_owner() == owner; };
  };
  ASSERT_TRUE(n1.WaitFor(target("agent-1")));
  ASSERT_TRUE(n2.WaitFor(target("agent-2")));
  const size_t before = n1.messages().size();
  ASSERT_TRUE(Workload("agent-1b", "n1", "agent").ok());  // a second, younger local match
  ASSERT_TRUE(Workload("web", "n1", "web").ok());
  Release("agent-2");
  ASSERT_TRUE(n2.WaitFor(target("")));  // drop: no local agent
  server_->watch_hub().Flush();
  EXPECT_EQ(n1.messages().size(), before) << "n1's target must not be reshuffled";
  Release("agent-1");
  ASSERT_TRUE(n1.WaitFor(target("agent-1b")));
}

TEST_F(NodeServicesTest, UpdateLabelsMovesTheMagicTargetOverGrpc) {
  Pool("pods", "10.1.0.0/16", v1::POOL_PURPOSE_WORKLOAD);
  NodeClient n1(*nodes_, "n1");
  WaitReady("n1", true);
  ASSERT_TRUE(Workload("pod-1", "n1", "web").ok());
  v1::MagicAddress m;
  ASSERT_TRUE(Magic("dd", "169.254.210.210", &m).ok());  // selects app=agent
  auto target = [](const std::string& owner) {
    return [owner](auto& s) { return Has(s, "magic/dd") && s.at("magic/dd").magic().target_owner() == owner; };
  };
  ASSERT_TRUE(n1.WaitFor(target("")));
  auto update = [&](const std::string& owner, const std::string& app, v1::UpdateLabelsResponse* out) {
    grpc::ClientContext ctx;
    v1::UpdateLabelsRequest req;
    req.set_owner(owner);
    (*req.mutable_labels())["app"] = app;
    return alloc_->UpdateLabels(&ctx, req, out);
  };
  v1::UpdateLabelsResponse resp;
  grpc::Status s = update("pod-1", "agent", &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(resp.allocations_size(), 1);
  EXPECT_EQ(resp.allocations(0).labels().at("app"), "agent");
  ASSERT_TRUE(n1.WaitFor(target("pod-1")));
  ASSERT_TRUE(update("pod-1", "web", &resp).ok());
  ASSERT_TRUE(n1.WaitFor(target("")));

  s = update("nobody", "web", &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(s.error_message().find("owner"), std::string::npos) << s.error_message();
  s = update("pod-1", "bad value!", &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("labels"), std::string::npos) << s.error_message();
}

TEST_F(NodeServicesTest, SetNodeLabelsOverGrpcSteerPlacementAndListNodes) {
  Pool("ext", "203.0.113.0/24", v1::POOL_PURPOSE_EXTERNAL);
  NodeClient n1(*nodes_, "n1", {{"edge", "no"}});
  WaitReady("n1", true);
  v1::ExternalAddress x;
  ASSERT_TRUE(External("x", "edge=yes", &x).ok());
  EXPECT_EQ(x.node(), "");
  auto set = [&](const std::string& name, const std::string& edge, v1::Node* out) {
    grpc::ClientContext ctx;
    v1::SetNodeLabelsRequest req;
    req.set_name(name);
    (*req.mutable_labels())["edge"] = edge;
    return nodes_->SetNodeLabels(&ctx, req, out);
  };
  v1::Node node;
  grpc::Status s = set("n1", "yes", &node);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(node.set_labels().at("edge"), "yes");
  ASSERT_TRUE(n1.WaitFor([](auto& st) { return Has(st, "external/x"); }));
  // ListNodes selects by the labels selectors see: the set one wins.
  grpc::ClientContext ctx;
  v1::ListNodesRequest list;
  list.set_label_selector("edge=yes");
  v1::ListNodesResponse nodes;
  ASSERT_TRUE(nodes_->ListNodes(&ctx, list, &nodes).ok());
  ASSERT_EQ(nodes.nodes_size(), 1);
  EXPECT_EQ(nodes.nodes(0).spec().name(), "n1");

  s = set("n9", "yes", &node);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  s = set("", "yes", &node);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("name"), std::string::npos) << s.error_message();
  s = set("n1", "no way", &node);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("labels"), std::string::npos) << s.error_message();
}

TEST_F(NodeServicesTest, StreamSnapshotDeltaResumeAndStatus) {
  Pool("ext", "203.0.113.0/24", v1::POOL_PURPOSE_EXTERNAL);
  uint64_t last = 0;
  {
    NodeClient n1(*nodes_, "n1");
    ASSERT_TRUE(n1.WaitMessages(1));
    EXPECT_TRUE(n1.messages()[0].snapshot());
    EXPECT_EQ(n1.messages()[0].lease_ms(), 3000);
    WaitReady("n1", true);
    v1::ExternalAddress a;
    ASSERT_TRUE(External("a", "", &a).ok());
    ASSERT_TRUE(n1.WaitFor([](auto& s) { return Has(s, "external/a"); }));
    auto msgs = n1.messages();
    EXPECT_FALSE(msgs.back().snapshot());
    for (size_t i = 1; i < msgs.size(); ++i) EXPECT_GT(msgs[i].revision(), msgs[i - 1].revision());
    last = msgs.back().revision();
    n1.Report("external/a", n1.state().at("external/a").revision(), v1::ASSIGNMENT_STATE_ERROR, "no uplink");
    v1::Node n;
    ASSERT_TRUE(NodeEventually("n1", [](const v1::Node& got) { return got.statuses_size() == 1; }, &n))
        << n.ShortDebugString();
    EXPECT_EQ(n.statuses(0).message(), "no uplink");
    EXPECT_EQ(n.statuses(0).state(), v1::ASSIGNMENT_STATE_ERROR);
    EXPECT_EQ(n.assignments_size(), 1);
    EXPECT_TRUE(n.connected());
  }
  v1::ExternalAddress b;
  ASSERT_TRUE(External("b", "", &b).ok());  // while n1 is away
  // The hub takes in applied changes on its fan-out thread; let it catch up so that the resumed stream's
  // first message is the delta that carries b.
  server_->watch_hub().Flush();
  NodeClient resumed(*nodes_, "n1", {}, last);
  ASSERT_TRUE(resumed.WaitMessages(1));
  const auto first = resumed.messages()[0];
  EXPECT_FALSE(first.snapshot()) << "resumed without a full resend";
  ASSERT_EQ(first.assignments_size(), 1);
  EXPECT_EQ(first.assignments(0).id(), "external/b");
  NodeClient fresh(*nodes_, "n1", {}, 0, /*observe_only=*/true);
  ASSERT_TRUE(fresh.WaitMessages(1));
  EXPECT_TRUE(fresh.messages()[0].snapshot());
  EXPECT_EQ(fresh.messages()[0].assignments_size(), 2);
}

TEST_F(NodeServicesTest, HeartbeatsAreAcknowledgedAndANodeBackAfterItsLeaseStartsWithItsMagicAddresses) {
  Pool("pods", "10.1.0.0/16", v1::POOL_PURPOSE_WORKLOAD);
  v1::MagicAddress dd;
  ASSERT_TRUE(Magic("dd", "169.254.210.210", &dd).ok());
  {
    NodeClient n1(*nodes_, "n1");
    WaitReady("n1", true);
    ASSERT_TRUE(n1.WaitFor([](auto& s) { return Has(s, "magic/dd"); }));
    EXPECT_TRUE(n1.messages().front().acknowledges_heartbeats());
    n1.Heartbeat(7);
    ASSERT_TRUE(n1.WaitAcknowledged(7));
    for (const auto& m : n1.messages()) {
      if (m.heartbeat_acknowledged() == 7 && m.assignments().empty()) {
        EXPECT_EQ(m.revision(), 0u);  // an acknowledgement alone
      }
    }
  }
  // The lease runs out: n1 is not ready and carries nothing.
  clock_.Advance(3500);
  server_->node_registry().Sweep();
  WaitReady("n1", false);

  // Back: its first message is the snapshot of a ready node, magic address included (not a snapshot without
  // it followed by a delta that adds it back).
  NodeClient back(*nodes_, "n1");
  ASSERT_TRUE(back.WaitMessages(1));
  const v1::WatchAssignmentsResponse first = back.messages().front();
  EXPECT_TRUE(first.snapshot());
  bool has_magic = false;
  for (const auto& a : first.assignments()) has_magic |= a.id() == "magic/dd";
  EXPECT_TRUE(has_magic) << "the first snapshot of a node back after its lease lacks its magic address";
}

// The allocator with opt-in reclaim of nodes lost for a minute.
class NodeReclaimTest : public NodeServicesTest {
 protected:
  void SetUp() override {
    reclaim_ms_ = 60'000;
    NodeServicesTest::SetUp();
  }
};

TEST_F(NodeReclaimTest, ALostNodesAllocationsAreReleasedOnceItHasBeenLostLongEnough) {
  Pool("pods", "10.1.0.0/24", v1::POOL_PURPOSE_WORKLOAD);
  auto n1 = std::make_unique<NodeClient>(*nodes_, "n1");
  WaitReady("n1", true);
  grpc::ClientContext actx;
  v1::AllocateRequest areq;
  areq.set_pool("pods");
  areq.set_owner("pod-1");
  areq.set_node("n1");
  v1::Allocation pod;
  ASSERT_TRUE(alloc_->Allocate(&actx, areq, &pod).ok());
  ASSERT_TRUE(Workload("pod-2", "n2", "web").ok());

  n1->Close();
  ASSERT_TRUE(NodeEventually("n1", [](const v1::Node& n) { return !n.connected(); }));
  clock_.Advance(3500);  // the lease runs out
  server_->node_registry().Sweep();
  WaitReady("n1", false);

  auto on_node = [&](const std::string& node) {
    grpc::ClientContext ctx;
    v1::ListAllocationsRequest req;
    req.set_node(node);
    v1::ListAllocationsResponse resp;
    EXPECT_TRUE(alloc_->ListAllocations(&ctx, req, &resp).ok());
    return resp.allocations_size();
  };
  clock_.Advance(60'000);
  // Sweeps until the reclaim is proposed: a sweep skips a node whose not-ready command is still completing.
  ASSERT_TRUE(test_support::Eventually(
      [&] {
        server_->node_registry().Sweep();
        return on_node("n1") == 0;
      },
      std::chrono::seconds(10)));
  EXPECT_EQ(on_node("n2"), 1) << "only the lost node's allocations go";

  grpc::ClientContext hctx;
  v1::GetHistoryRequest hreq;
  hreq.set_address(pod.address());
  hreq.set_pool("pods");
  v1::GetHistoryResponse history;
  ASSERT_TRUE(alloc_->GetHistory(&hctx, hreq, &history).ok());
  ASSERT_EQ(history.entries_size(), 1);
  EXPECT_EQ(history.entries(0).end_reason(), "node n1 not ready for more than 1m: reclaimed");
  WaitReady("n1", false);  // the node itself stays known
}

}  // namespace
}  // namespace abode::allocator

// The allocator's /metrics endpoint over real HTTP, with a real gRPC server on port 0 in front of a real store.
#include "allocator-service/metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <future>
#include <map>
#include <optional>
#include <sstream>
#include <thread>

#include <google/protobuf/text_format.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/generic/generic_stub.h>
#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

#include "abode/v1/allocator.grpc.pb.h"
#include "abode/v1/pools.grpc.pb.h"
#include "allocator-service/server.h"
#include "replication/clock.h"
#include "storage/pool_listing.h"
#include "test-support/eventually.h"
#include "test-support/temp_dir.h"

namespace abode::allocator {
namespace {

using test_support::TempDir;

// GET http://127.0.0.1:port/path; the status line and the body.
struct HttpReply {
  std::string status_line;
  std::string body;
};
HttpReply Get(int port, const std::string& path) {
  HttpReply out;
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return out;
  }
  const std::string req = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  if (::send(fd, req.data(), req.size(), 0) != static_cast<ssize_t>(req.size())) {
    ::close(fd);
    return out;
  }
  std::string raw;
  char buf[8192];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof(buf), 0)) > 0;) raw.append(buf, static_cast<size_t>(n));
  ::close(fd);
  out.status_line = raw.substr(0, raw.find("\r\n"));
  if (const size_t body = raw.find("\r\n\r\n"); body != std::string::npos) out.body = raw.substr(body + 4);
  return out;
}

// One sample of the text exposition format: name{label="value",...} number.
struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};
std::vector<Sample> Parse(const std::string& text) {
  std::vector<Sample> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    Sample s;
    const size_t brace = line.find('{');
    const size_t space = line.rfind(' ');
    if (space == std::string::npos) continue;
    if (brace != std::string::npos && brace < space) {
      s.name = line.substr(0, brace);
      const size_t close = line.rfind('}');
      std::string labels = line.substr(brace + 1, close - brace - 1);
      // Label values here never hold '"' or ','.
      std::istringstream ls(labels);
      for (std::string kv; std::getline(ls, kv, ',');) {
        const size_t eq = kv.find('=');
        if (eq == std::string::npos || kv.size() < eq + 3) continue;
        s.labels[kv.substr(0, eq)] = kv.substr(eq + 2, kv.size() - eq - 3);
      }
    } else {
      s.name = line.substr(0, space);
    }
    s.value = std::strtod(line.c_str() + space + 1, nullptr);
    out.push_back(std::move(s));
  }
  return out;
}

// The value of the one sample named `name` whose labels include `labels`; nullopt if none, or several, match.
std::optional<double> Find(const std::vector<Sample>& samples, const std::string& name,
                           const std::map<std::string, std::string>& labels = {}) {
  std::optional<double> found;
  for (const Sample& s : samples) {
    if (s.name != name) continue;
    bool match = true;
    for (const auto& [k, v] : labels) {
      auto it = s.labels.find(k);
      if (it == s.labels.end() || it->second != v) match = false;
    }
    if (!match) continue;
    if (found.has_value()) return std::nullopt;
    found = s.value;
  }
  return found;
}

class MetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerOptions o;
    o.listen = "127.0.0.1:0";
    o.metrics_listen = "127.0.0.1:0";
    o.raft.data_dir = dir_.path() + "/data";
    o.raft.clock = &clock_;
    auto s = AllocatorServer::Start(o);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
    ASSERT_NE(server_->metrics_port(), 0);
    auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()),
                                       grpc::InsecureChannelCredentials());
    pools_ = v1::Pools::NewStub(channel);
    alloc_ = v1::Allocator::NewStub(channel);
  }

  // `spec`: a PoolSpec in protobuf text format.
  grpc::Status CreatePool(const std::string& spec) {
    v1::CreatePoolRequest req;
    EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(spec, req.mutable_pool())) << spec;
    grpc::ClientContext ctx;
    v1::Pool resp;
    return pools_->CreatePool(&ctx, req, &resp);
  }
  grpc::Status Allocate(const std::string& pool, const std::string& owner, v1::Allocation* out = nullptr) {
    grpc::ClientContext ctx;
    v1::AllocateRequest req;
    req.set_pool(pool);
    req.set_owner(owner);
    v1::Allocation resp;
    grpc::Status s = alloc_->Allocate(&ctx, req, &resp);
    if (out != nullptr) *out = resp;
    return s;
  }
  std::vector<Sample> Scrape() {
    HttpReply r = Get(server_->metrics_port(), "/metrics");
    EXPECT_NE(r.status_line.find(" 200"), std::string::npos) << r.status_line;
    return Parse(r.body);
  }
  // Raft's figures come from the view the loop refreshes every few milliseconds: scrape until the state's
  // revision reaches `revision` (or 5 s pass).
  std::vector<Sample> ScrapeAtRevision(uint64_t revision) {
    std::vector<Sample> m;
    test_support::Eventually(
        [&] {
          m = Scrape();
          return Find(m, "abode_state_revision") >= static_cast<double>(revision);
        },
        std::chrono::seconds(5), std::chrono::milliseconds(10));
    return m;
  }

  TempDir dir_;
  replication::FakeClock clock_{1'700'000'000'000};
  std::unique_ptr<AllocatorServer> server_;
  std::unique_ptr<v1::Pools::Stub> pools_;
  std::unique_ptr<v1::Allocator::Stub> alloc_;
};

const std::map<std::string, std::string> kAllocate = {{"grpc_service", "abode.v1.Allocator"},
                                                      {"grpc_method", "Allocate"},
                                                      {"grpc_type", "unary"}};
std::map<std::string, std::string> With(std::map<std::string, std::string> labels, const std::string& k,
                                        const std::string& v) {
  labels[k] = v;
  return labels;
}

TEST_F(MetricsTest, CountsEveryCallByMethodAndStatusCode) {
  ASSERT_TRUE(CreatePool(R"(name: "p" cidr: "10.9.0.0/24")").ok());
  for (const char* owner : {"a", "b", "c"}) ASSERT_TRUE(Allocate("p", owner).ok());
  EXPECT_EQ(Allocate("p", "").error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Allocate("nope", "d").error_code(), grpc::StatusCode::NOT_FOUND);

  const auto m = Scrape();
  EXPECT_EQ(Find(m, "grpc_server_started_total", kAllocate), 5);
  EXPECT_EQ(Find(m, "grpc_server_handled_total", With(kAllocate, "grpc_code", "OK")), 3);
  EXPECT_EQ(Find(m, "grpc_server_handled_total", With(kAllocate, "grpc_code", "INVALID_ARGUMENT")), 1);
  EXPECT_EQ(Find(m, "grpc_server_handled_total", With(kAllocate, "grpc_code", "NOT_FOUND")), 1);
  // Codes never seen have no series.
  EXPECT_EQ(Find(m, "grpc_server_handled_total", With(kAllocate, "grpc_code", "UNAVAILABLE")), std::nullopt);
  EXPECT_EQ(Find(m, "grpc_server_handled_total",
                 {{"grpc_service", "abode.v1.Pools"}, {"grpc_method", "CreatePool"}, {"grpc_code", "OK"}}),
            1);
  // Every call is timed: the histogram's count matches, each took some time, and none took 10 s.
  EXPECT_EQ(Find(m, "grpc_server_handling_seconds_count", kAllocate), 5);
  const auto sum = Find(m, "grpc_server_handling_seconds_sum", kAllocate);
  ASSERT_TRUE(sum.has_value());
  EXPECT_GT(*sum, 0);
  EXPECT_EQ(Find(m, "grpc_server_handling_seconds_bucket", With(kAllocate, "le", "10")), 5);
  EXPECT_EQ(Find(m, "grpc_server_handling_seconds_bucket", With(kAllocate, "le", "+Inf")), 5);
}

TEST_F(MetricsTest, MadeUpMethodsShareOneSeries) {
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()),
                                     grpc::InsecureChannelCredentials());
  grpc::GenericStub generic(channel);
  for (const char* method : {"/abode.v1.Nope/Missing", "/x/y", "/abode.v1.Allocator/Allocat"}) {
    for (int i = 0; i < 2; ++i) {
      grpc::ClientContext ctx;
      grpc::Slice empty("");
      grpc::ByteBuffer request(&empty, 1), reply;
      grpc::Status status;
      std::promise<void> done;
      generic.UnaryCall(&ctx, method, grpc::StubOptions(), &request, &reply,
                        [&](grpc::Status s) {
                          status = s;
                          done.set_value();
                        });
      done.get_future().wait();
      EXPECT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED) << method;
    }
  }
  ASSERT_TRUE(CreatePool(R"(name: "p" cidr: "10.9.0.0/24")").ok());
  const auto m = Scrape();
  EXPECT_EQ(Find(m, "grpc_server_handled_total",
                 {{"grpc_service", "unknown"}, {"grpc_method", "unknown"}, {"grpc_code", "UNIMPLEMENTED"}}),
            6);
  size_t started_series = 0;
  for (const Sample& s : m) started_series += s.name == "grpc_server_started_total";
  EXPECT_EQ(started_series, 2u);  // unknown and CreatePool, nothing per made-up name
}

TEST_F(MetricsTest, PoolFiguresFollowTheState) {
  ASSERT_TRUE(CreatePool(R"(name: "v4" cidr: "10.9.0.0/24" network: "blue")").ok());
  ASSERT_TRUE(CreatePool(R"(name: "v6" cidr: "fd00:9::/64")").ok());
  for (const char* owner : {"a", "b", "c"}) ASSERT_TRUE(Allocate("v4", owner).ok());
  v1::Allocation last;
  ASSERT_TRUE(Allocate("v6", "a", &last).ok());

  auto m = ScrapeAtRevision(last.revision());
  // 256 less network and broadcast; the /64 less its subnet-router anycast address.
  EXPECT_EQ(Find(m, "abode_pool_addresses", {{"pool", "v4"}, {"network", "blue"}, {"family", "ipv4"}}), 254);
  // 2^64 - 1, as near as the exposition's 16 digits get.
  EXPECT_NEAR(Find(m, "abode_pool_addresses", {{"pool", "v6"}, {"family", "ipv6"}}).value_or(0), 0x1p64, 1e5);
  EXPECT_EQ(Find(m, "abode_pool_allocated_addresses", {{"pool", "v4"}}), 3);
  EXPECT_EQ(Find(m, "abode_pool_allocated_addresses", {{"pool", "v6"}}), 1);
  EXPECT_EQ(Find(m, "abode_pool_scrape_ok"), 1);
  EXPECT_EQ(Find(m, "abode_state_revision"), static_cast<double>(last.revision()));

  grpc::ClientContext ctx;
  v1::ReleaseRequest rel;
  rel.set_pool("v4");
  rel.set_owner("a");
  v1::ReleaseResponse rr;
  ASSERT_TRUE(alloc_->Release(&ctx, rel, &rr).ok());
  // A scrape reads the committed state, which may trail the answer by the commit (a lone caller is answered
  // while the store commits): wait for the release's revision.
  m = ScrapeAtRevision(rr.revision());
  EXPECT_EQ(Find(m, "abode_pool_allocated_addresses", {{"pool", "v4"}}), 2);
}

TEST_F(MetricsTest, RaftFiguresOfASingleVoter) {
  ASSERT_TRUE(CreatePool(R"(name: "p" cidr: "10.9.0.0/24")").ok());
  v1::Allocation last;
  for (const char* owner : {"a", "b", "c"}) ASSERT_TRUE(Allocate("p", owner, &last).ok());
  const auto m = ScrapeAtRevision(last.revision());
  EXPECT_EQ(Find(m, "abode_state_revision"), static_cast<double>(last.revision()));
  EXPECT_EQ(Find(m, "abode_ready"), 1);
  EXPECT_EQ(Find(m, "abode_raft_role", {{"role", "leader"}}), 1);
  EXPECT_EQ(Find(m, "abode_raft_role", {{"role", "follower"}}), 0);
  EXPECT_EQ(Find(m, "abode_raft_leader_id"), 1);
  EXPECT_EQ(Find(m, "abode_raft_members", {{"role", "leader"}}), 1);
  EXPECT_EQ(Find(m, "abode_raft_members", {{"role", "voter"}}), 0);
  const auto term = Find(m, "abode_raft_term");
  ASSERT_TRUE(term.has_value());
  EXPECT_GE(*term, 1);
  // Four commands from callers at least (housekeeping may add its own), in at most as many entries.
  const auto commands = Find(m, "abode_raft_commands_proposed_total");
  const auto entries = Find(m, "abode_raft_entries_proposed_total");
  ASSERT_TRUE(commands.has_value() && entries.has_value());
  EXPECT_GE(*commands, 4);
  EXPECT_GE(*entries, 1);
  EXPECT_LE(*entries, *commands);
  const auto applied = Find(m, "abode_raft_applied_index");
  const auto committed = Find(m, "abode_raft_commit_index");
  ASSERT_TRUE(applied.has_value() && committed.has_value());
  EXPECT_GE(*applied, *entries);
  EXPECT_GE(*committed, *applied);
}

TEST_F(MetricsTest, OnlyMetricsIsServed) {
  EXPECT_NE(Get(server_->metrics_port(), "/nope").status_line.find(" 404"), std::string::npos);
}

TEST(MetricsEndpointTest, RefusesAnAddressItCannotServeBeforeTouchingTheDataDir) {
  TempDir dir;
  replication::FakeClock clock(1'700'000'000'000);
  auto start = [&](const std::string& listen) {
    ServerOptions o;
    o.listen = "127.0.0.1:0";
    o.metrics_listen = listen;
    o.raft.data_dir = dir.path() + "/data";
    o.raft.clock = &clock;
    return AllocatorServer::Start(o);
  };
  for (const char* bad : {"localhost:9464", "127.0.0.1", "127.0.0.1:65536", "127.0.0.1:x", "[::1:9464", ":9464",
                          "[::1]:9464", "10.0.0.256:9464"}) {
    auto s = start(bad);
    ASSERT_FALSE(s.ok()) << bad;
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(s.status().message().find("--metrics-listen"), std::string::npos) << s.status();
  }
  // A port some other socket holds.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  auto busy = start("127.0.0.1:" + std::to_string(ntohs(addr.sin_port)));
  ::close(fd);
  ASSERT_FALSE(busy.ok());
  EXPECT_EQ(busy.status().code(), absl::StatusCode::kUnavailable) << busy.status();
  EXPECT_NE(busy.status().message().find("--metrics-listen"), std::string::npos) << busy.status();
  // Nothing was started: no raft log, no store.
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/data"));
  // And with no metrics address, no endpoint.
  auto plain = start("");
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ((*plain)->metrics_port(), 0);
}

// ReplicaMetrics alone, over fakes of the replica's status and of the pool listing: what a follower and a
// failing read side report, which a single-voter server does not show.
class FakeStatus final : public replication::ReplicaStatus {
 public:
  replication::ClusterView view() override { return view_; }
  replication::ReplicationStats stats() override { return stats_; }
  replication::ClusterView view_;
  replication::ReplicationStats stats_;
};

class FakePools final : public storage::PoolListing {
 public:
  absl::StatusOr<v1::ListPoolsResponse> ListPools(const v1::ListPoolsRequest& /*req*/) override {
    ++calls;
    return pools;
  }
  absl::StatusOr<v1::ListPoolsResponse> pools = absl::UnavailableError("database is locked");
  int calls = 0;
};

std::vector<Sample> Collected(const ReplicaMetrics& metrics) {
  return Parse(prometheus::TextSerializer().Serialize(metrics.Collect()));
}

TEST(ReplicaMetricsTest, AFollowerReportsItsRoleLeaderAndMembers) {
  FakeStatus status;
  status.view_.role = replication::RaftRole::kFollower;
  status.view_.term = 7;
  status.view_.leader_id = 3;
  status.view_.commit_index = 120;
  status.view_.applied_index = 118;
  status.view_.revision = 90;
  status.view_.ready = true;
  status.view_.members = {{1, "", "", replication::MemberRole::kVoter},
                          {2, "", "", replication::MemberRole::kSpare},
                          {3, "", "", replication::MemberRole::kLeader},
                          {4, "", "", replication::MemberRole::kVoter}};
  FakePools pools;
  ReplicaMetrics metrics(status, pools);

  const auto m = Collected(metrics);
  EXPECT_EQ(Find(m, "abode_raft_role", {{"role", "follower"}}), 1);
  EXPECT_EQ(Find(m, "abode_raft_role", {{"role", "leader"}}), 0);
  EXPECT_EQ(Find(m, "abode_raft_term"), 7);
  EXPECT_EQ(Find(m, "abode_raft_leader_id"), 3);
  EXPECT_EQ(Find(m, "abode_raft_commit_index"), 120);
  EXPECT_EQ(Find(m, "abode_raft_applied_index"), 118);
  EXPECT_EQ(Find(m, "abode_state_revision"), 90);
  EXPECT_EQ(Find(m, "abode_raft_members", {{"role", "voter"}}), 2);
  EXPECT_EQ(Find(m, "abode_raft_members", {{"role", "leader"}}), 1);
  EXPECT_EQ(Find(m, "abode_raft_members", {{"role", "spare"}}), 1);
  EXPECT_EQ(Find(m, "abode_raft_members", {{"role", "standby"}}), 0);
}

TEST(ReplicaMetricsTest, PoolsThatCannotBeReadAreReportedAsSuchUntilTheyCanBe) {
  FakeStatus status;
  FakePools pools;
  ReplicaMetrics metrics(status, pools);

  auto m = Collected(metrics);
  EXPECT_EQ(Find(m, "abode_pool_scrape_ok"), 0);
  EXPECT_EQ(Find(m, "abode_pool_addresses"), std::nullopt);
  EXPECT_EQ(Find(m, "abode_raft_term"), 0) << "the raft figures do not depend on the pools";

  v1::ListPoolsResponse listed;
  v1::Pool* pool = listed.add_pools();
  pool->mutable_spec()->set_name("v4");
  pool->mutable_spec()->set_cidr("10.9.0.0/24");
  pool->set_size("254");
  pool->set_used(17);
  pools.pools = listed;
  m = Collected(metrics);
  EXPECT_EQ(Find(m, "abode_pool_scrape_ok"), 1);
  EXPECT_EQ(Find(m, "abode_pool_addresses", {{"pool", "v4"}, {"family", "ipv4"}}), 254);
  EXPECT_EQ(Find(m, "abode_pool_allocated_addresses", {{"pool", "v4"}}), 17);
}

TEST(ReplicaMetricsTest, ADetachedReplicaReportsNothingAndReadsNothing) {
  FakeStatus status;
  FakePools pools;
  ReplicaMetrics metrics(status, pools);
  ASSERT_FALSE(metrics.Collect().empty());
  const int reads = pools.calls;
  metrics.Detach();
  EXPECT_TRUE(metrics.Collect().empty());
  EXPECT_EQ(pools.calls, reads);
}

}  // namespace
}  // namespace abode::allocator

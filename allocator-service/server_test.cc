// The allocator over real gRPC: a server on port 0 with its raft log and SQLite store in a temp dir.
#include "allocator-service/server.h"

#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <future>
#include <set>
#include <thread>

#include <grpcpp/create_channel.h>
#include <google/protobuf/descriptor.h>
#include <grpcpp/generic/generic_stub.h>
#include <gtest/gtest.h>

#include "abode/v1/allocator.grpc.pb.h"
#include "abode/v1/cluster.grpc.pb.h"
#include "abode/v1/pools.grpc.pb.h"
#include "absl/strings/str_cat.h"
#include "allocator-service/test_server.h"
#include "replication/clock.h"
#include "replication/offline_tools.h"
#include "storage/backup_file.h"
#include "storage/sqlite.h"
#include "storage/state_machine.h"
#include "test-support/eventually.h"
#include "test-support/temp_dir.h"

namespace abode::allocator {
namespace {

using test_support::TempDir;

class ServerTest : public ::testing::Test {
 protected:
  void StartServer() {
    ServerOptions o = LocalTestServerOptions(dir_.path() + "/data", &clock_);
    o.timers = &timers_;  // housekeeping runs when a test fires it
    if (snapshot_threshold_ != 0) o.raft.snapshot_threshold = snapshot_threshold_;
    o.raft.snapshot_log_ratio = snapshot_log_ratio_;
    o.raft.max_inflight_entries = max_inflight_entries_;
    absl::Status started = StartLocalTestServer(o, &server_);
    ASSERT_TRUE(started.ok()) << started;
    auto channel = LocalChannelTo(*server_);
    pools_ = v1::Pools::NewStub(channel);
    alloc_ = v1::Allocator::NewStub(channel);
  }
  void SetUp() override { StartServer(); }

  grpc::Status CreatePool(const std::string& name, const std::string& cidr, v1::Pool* out = nullptr,
                          const std::string& network = "") {
    grpc::ClientContext ctx;
    v1::CreatePoolRequest req;
    req.mutable_pool()->set_name(name);
    req.mutable_pool()->set_cidr(cidr);
    req.mutable_pool()->set_network(network);
    v1::Pool resp;
    auto s = pools_->CreatePool(&ctx, req, &resp);
    if (out) *out = resp;
    return s;
  }
  grpc::Status Allocate(const std::string& pool, const std::string& owner, v1::Allocation* out,
                        const std::string& address = "", int64_t ttl = 0) {
    grpc::ClientContext ctx;
    v1::AllocateRequest req;
    req.set_pool(pool);
    req.set_owner(owner);
    req.set_address(address);
    req.set_ttl_seconds(ttl);
    return alloc_->Allocate(&ctx, req, out);
  }

  // `threads` clients at once, each allocating `per_thread` addresses one after another; returns the addresses
  // handed out.
  std::vector<std::string> AllocateFromThreads(const std::string& pool, int threads, int per_thread) {
    std::vector<std::vector<std::string>> got(static_cast<size_t>(threads));
    std::vector<std::thread> running;
    for (int t = 0; t < threads; ++t) {
      running.emplace_back([&, t] {
        for (int i = 0; i < per_thread; ++i) {
          v1::Allocation a;
          if (Allocate(pool, pool + "-" + std::to_string(t) + "-" + std::to_string(i), &a).ok()) {
            got[static_cast<size_t>(t)].push_back(a.address());
          }
        }
      });
    }
    for (auto& th : running) th.join();
    std::vector<std::string> all;
    for (const auto& v : got) all.insert(all.end(), v.begin(), v.end());
    return all;
  }

  unsigned snapshot_threshold_ = 0;
  double snapshot_log_ratio_ = 0;  // a fixed threshold: tests choose when snapshots happen
  size_t max_inflight_entries_ = replication::RaftNodeOptions{}.max_inflight_entries;
  TempDir dir_;
  replication::FakeClock clock_{1'700'000'000'000};
  ManualTimers timers_;
  std::unique_ptr<AllocatorServer> server_;
  std::unique_ptr<v1::Pools::Stub> pools_;
  std::unique_ptr<v1::Allocator::Stub> alloc_;
};

TEST_F(ServerTest, CreateAllocateReleaseRoundTrip) {
  v1::Pool pool;
  ASSERT_TRUE(CreatePool("pods", "10.1.0.0/24", &pool).ok());
  EXPECT_EQ(pool.size(), "254");
  EXPECT_EQ(pool.free(), "254");

  v1::Allocation a;
  ASSERT_TRUE(Allocate("pods", "k8s/uid-1/eth0", &a).ok());
  EXPECT_EQ(a.address(), "10.1.0.1");
  EXPECT_EQ(a.prefix_length(), 24);
  EXPECT_GT(a.revision(), 0u);

  // Idempotent: the same owner gets the same address back.
  v1::Allocation again;
  ASSERT_TRUE(Allocate("pods", "k8s/uid-1/eth0", &again).ok());
  EXPECT_EQ(again.address(), a.address());

  // A requested address held by someone else names its holder.
  v1::Allocation other;
  auto s = Allocate("pods", "k8s/uid-2/eth0", &other, "10.1.0.1");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_NE(s.error_message().find("k8s/uid-1/eth0"), std::string::npos) << s.error_message();

  {
    grpc::ClientContext ctx;
    v1::GetPoolRequest req;
    req.set_name("pods");
    v1::Pool got;
    ASSERT_TRUE(pools_->GetPool(&ctx, req, &got).ok());
    EXPECT_EQ(got.used(), 1u);
    EXPECT_EQ(got.free(), "253");
  }
  {
    grpc::ClientContext ctx;
    v1::ReleaseRequest req;
    req.set_address("10.1.0.1");
    v1::ReleaseResponse resp;
    ASSERT_TRUE(alloc_->Release(&ctx, req, &resp).ok());
    ASSERT_EQ(resp.released_size(), 1);
    EXPECT_EQ(resp.released(0).owner(), "k8s/uid-1/eth0");
  }
  {
    // Releasing what is already free succeeds and releases nothing.
    grpc::ClientContext ctx;
    v1::ReleaseRequest req;
    req.set_address("10.1.0.1");
    v1::ReleaseResponse resp;
    ASSERT_TRUE(alloc_->Release(&ctx, req, &resp).ok());
    EXPECT_EQ(resp.released_size(), 0);
  }
  {
    grpc::ClientContext ctx;
    v1::GetHistoryRequest req;
    req.set_address("10.1.0.1");
    v1::GetHistoryResponse resp;
    ASSERT_TRUE(alloc_->GetHistory(&ctx, req, &resp).ok());
    ASSERT_EQ(resp.entries_size(), 1);
    EXPECT_EQ(resp.entries(0).owner(), "k8s/uid-1/eth0");
    EXPECT_EQ(resp.entries(0).end_reason(), "released");
  }
}

TEST_F(ServerTest, BadInputGetsPreciseCodesNamingTheField) {
  v1::Pool pool;
  auto s = CreatePool("bad", "10.1.0.0/33", &pool);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("pool.cidr"), std::string::npos) << s.error_message();

  ASSERT_TRUE(CreatePool("a", "10.2.0.0/16").ok());
  s = CreatePool("b", "10.2.3.0/24");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(s.error_message().find("\"a\""), std::string::npos) << s.error_message();
  EXPECT_TRUE(CreatePool("b", "10.2.3.0/24", nullptr, "other-net").ok());

  v1::Allocation a;
  s = Allocate("missing", "o", &a);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  s = Allocate("a", "", &a);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("owner"), std::string::npos);
  s = Allocate("a", std::string(254, 'x'), &a);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  s = Allocate("a", "o", &a, "not-an-ip");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("address"), std::string::npos);
  s = Allocate("a", "o", &a, "10.9.0.1");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(ServerTest, FullPoolIsResourceExhausted) {
  ASSERT_TRUE(CreatePool("tiny", "10.3.0.0/30").ok());  // .1 and .2 assignable
  v1::Allocation a;
  ASSERT_TRUE(Allocate("tiny", "o1", &a).ok());
  ASSERT_TRUE(Allocate("tiny", "o2", &a).ok());
  auto s = Allocate("tiny", "o3", &a);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
}

TEST_F(ServerTest, AllocateManyGetsEveryAddressOrNone) {
  ASSERT_TRUE(CreatePool("v4", "10.5.0.0/24").ok());
  ASSERT_TRUE(CreatePool("v6", "fd05::/126").ok());  // ::1 to ::3 assignable
  auto many = [&](const std::string& owner, const std::vector<std::string>& pools, v1::AllocateManyResponse* out,
                  const std::string& last_address = "") {
    grpc::ClientContext ctx;
    v1::AllocateManyRequest req;
    req.set_owner(owner);
    req.set_node("node-a");
    (*req.mutable_labels())["k8s-pod-name"] = owner;
    for (const std::string& p : pools) req.add_items()->set_pool(p);
    if (!last_address.empty() && req.items_size() > 0) req.mutable_items(req.items_size() - 1)->set_address(last_address);
    return alloc_->AllocateMany(&ctx, req, out);
  };
  v1::AllocateManyResponse first;
  ASSERT_TRUE(many("pod-1", {"v4", "v6"}, &first).ok());
  ASSERT_EQ(first.allocations_size(), 2);
  EXPECT_EQ(first.allocations(0).address(), "10.5.0.1");
  EXPECT_EQ(first.allocations(1).address(), "fd05::1");
  EXPECT_EQ(first.allocations(1).node(), "node-a");
  v1::AllocateManyResponse retry;
  ASSERT_TRUE(many("pod-1", {"v4", "v6"}, &retry).ok());
  EXPECT_EQ(retry.allocations(0).address(), "10.5.0.1");
  EXPECT_EQ(retry.allocations(1).address(), "fd05::1");

  v1::AllocateManyResponse out;
  auto s = many("pod-2", {"v4", "v6"}, &out, "fd05::1");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_NE(s.error_message().find("items[1] (pool \"v6\")"), std::string::npos) << s.error_message();
  s = many("pod-2", {"v4", "gone"}, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(s.error_message().find("items[1] (pool \"gone\")"), std::string::npos) << s.error_message();
  s = many("pod-2", {"v4", "v6"}, &out, "not-an-ip");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("items[1].address"), std::string::npos) << s.error_message();
  s = many("pod-2", {}, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  ASSERT_TRUE(many("pod-2", {"v6"}, &out).ok());
  ASSERT_TRUE(many("pod-3", {"v6"}, &out).ok());
  s = many("pod-4", {"v4", "v6"}, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(s.error_message().find("items[1] (pool \"v6\")"), std::string::npos) << s.error_message();

  // None of the refused requests holds anything in v4: its next address is the second.
  grpc::ClientContext ctx;
  v1::GetAllocationRequest get;
  get.set_owner("pod-4");
  v1::GetAllocationResponse held;
  EXPECT_EQ(alloc_->GetAllocation(&ctx, get, &held).error_code(), grpc::StatusCode::NOT_FOUND);
  v1::Allocation next;
  ASSERT_TRUE(Allocate("v4", "pod-5", &next).ok());
  EXPECT_EQ(next.address(), "10.5.0.2");
}

TEST_F(ServerTest, ExpiredAllocationsAreReclaimedByTheLeader) {
  ASSERT_TRUE(CreatePool("ttl", "10.4.0.0/24").ok());
  v1::Allocation a;
  ASSERT_TRUE(Allocate("ttl", "short-lived", &a, "", 30).ok());
  EXPECT_EQ(a.expire_time_unix_ms(), clock_.NowUnixMs() + 30'000);
  clock_.Advance(31'000);
  timers_.Fire();  // the leader's housekeeping round: it proposes the expiry; wait for its effect, bounded
  bool got_pool = true;
  test_support::Eventually(
      [&] {
        grpc::ClientContext ctx;
        v1::GetPoolRequest req;
        req.set_name("ttl");
        v1::Pool p;
        got_pool = pools_->GetPool(&ctx, req, &p).ok();
        return !got_pool || p.used() == 0;
      },
      std::chrono::seconds(5), std::chrono::milliseconds(10));
  ASSERT_TRUE(got_pool);
  grpc::ClientContext ctx;
  v1::GetHistoryRequest req;
  req.set_address(a.address());
  v1::GetHistoryResponse resp;
  ASSERT_TRUE(alloc_->GetHistory(&ctx, req, &resp).ok());
  ASSERT_EQ(resp.entries_size(), 1);
  EXPECT_EQ(resp.entries(0).end_reason(), "expired");
}

TEST_F(ServerTest, RestartRecoversAcknowledgedState) {
  ASSERT_TRUE(CreatePool("persist", "fd00:1::/64").ok());
  std::vector<std::string> addrs;
  for (int i = 0; i < 50; ++i) {
    v1::Allocation a;
    ASSERT_TRUE(Allocate("persist", "owner-" + std::to_string(i), &a).ok());
    addrs.push_back(a.address());
  }
  EXPECT_EQ(addrs.front(), "fd00:1::1");  // the subnet-router anycast address is skipped
  server_.reset();
  StartServer();
  for (int i = 0; i < 50; ++i) {
    v1::Allocation a;
    ASSERT_TRUE(Allocate("persist", "owner-" + std::to_string(i), &a).ok());
    EXPECT_EQ(a.address(), addrs[static_cast<size_t>(i)]);
  }
  grpc::ClientContext ctx;
  v1::ListAllocationsRequest req;
  req.set_pool("persist");
  v1::ListAllocationsResponse resp;
  ASSERT_TRUE(alloc_->ListAllocations(&ctx, req, &resp).ok());
  EXPECT_EQ(resp.allocations_size(), 50);
}

// state.db is a materialisation: reopened when it matches the log, rebuilt from snapshot + log when it is
// gone or of another schema version. Both paths must give the same state, across snapshots (threshold 16 entries here).
// With snapshot pacing (the default), the log kept since the last snapshot grows with the state instead of
// staying at the threshold; without it, snapshots follow every `threshold` entries.
TEST_F(ServerTest, SnapshotsArePacedByTheSizeOfTheState) {
  for (const double ratio : {0.0, 0.5}) {
    SCOPED_TRACE(ratio);
    server_.reset();
    std::filesystem::remove_all(dir_.path() + "/data");
    snapshot_threshold_ = 16;
    snapshot_log_ratio_ = ratio;
    StartServer();
    ASSERT_TRUE(CreatePool("paced", "10.60.0.0/16").ok());
    for (int i = 0; i < 1100; ++i) {  // one allocation per log entry
      v1::Allocation a;
      ASSERT_TRUE(Allocate("paced", "paced-" + std::to_string(i), &a).ok());
    }
    server_.reset();
    auto log = replication::ReadRaftLogState(dir_.path() + "/data", 1);
    ASSERT_TRUE(log.ok()) << log.status();
    ASSERT_GT(log->snapshot_index, 0u);
    // A fixed threshold leaves at most 16 entries after the last snapshot (+2: one may still be in flight
    // when the server stops). Paced, the threshold is ~half a snapshot's bytes in entries by now: hundreds of
    // entries, the last snapshot at ~750 of ~1,100 entries here.
    const uint64_t since_snapshot = log->last_index - log->snapshot_index;
    if (ratio == 0) {
      EXPECT_LE(since_snapshot, 16u + 2u);
    } else {
      EXPECT_GT(since_snapshot, 16u + 2u) << "snapshot at " << log->snapshot_index << " of " << log->last_index;
    }
  }
}

TEST_F(ServerTest, StateDbIsReusedOrRebuiltToTheSameState) {
  server_.reset();
  snapshot_threshold_ = 16;
  StartServer();
  ASSERT_TRUE(CreatePool("rebuild", "10.6.0.0/24").ok());
  std::vector<std::string> addrs;
  for (int i = 0; i < 100; ++i) {
    v1::Allocation a;
    ASSERT_TRUE(Allocate("rebuild", "o-" + std::to_string(i), &a).ok());
    addrs.push_back(a.address());
  }
  auto list = [&] {
    grpc::ClientContext ctx;
    v1::ListAllocationsRequest req;
    req.set_pool("rebuild");
    v1::ListAllocationsResponse resp;
    EXPECT_TRUE(alloc_->ListAllocations(&ctx, req, &resp).ok());
    std::vector<std::string> out;
    for (const auto& a : resp.allocations()) out.push_back(a.owner() + "=" + a.address() + "@" + std::to_string(a.revision()));
    return out;
  };
  const auto before = list();
  ASSERT_EQ(before.size(), 100u);

  server_.reset();  // reopen: the database already holds everything
  StartServer();
  EXPECT_EQ(list(), before);

  server_.reset();  // rebuild: no database at all
  std::filesystem::remove(dir_.path() + "/data/state.db");
  std::filesystem::remove(dir_.path() + "/data/state.db-wal");
  std::filesystem::remove(dir_.path() + "/data/state.db-shm");
  StartServer();
  EXPECT_EQ(list(), before);
  v1::Allocation next;
  ASSERT_TRUE(Allocate("rebuild", "after-rebuild", &next).ok());
  EXPECT_EQ(next.address(), "10.6.0.101");

  // An upgrade: a database of an older schema version (3 kept an SQLite index on owners) is rebuilt, and
  // the owners are found again: a retry answers with the address the owner holds.
  server_.reset();
  {
    auto db = storage::Database::Open(dir_.path() + "/data/state.db", /*read_only=*/false);
    ASSERT_TRUE(db.ok()) << db.status();
    ASSERT_TRUE(db->Exec("PRAGMA user_version = 3").ok());
  }
  StartServer();
  {
    auto db = storage::Database::Open(dir_.path() + "/data/state.db", /*read_only=*/true);
    ASSERT_TRUE(db.ok()) << db.status();
    auto version = db->Prepare("PRAGMA user_version");
    ASSERT_TRUE(version.ok());
    auto row = version->Step();
    ASSERT_TRUE(row.ok() && *row);
    EXPECT_EQ(version->Int(0), storage::SchemaVersion()) << "rebuilt in the current schema";
  }
  auto after = list();
  ASSERT_EQ(after.size(), before.size() + 1);
  EXPECT_TRUE(std::equal(before.begin(), before.end(), after.begin()));
  v1::Allocation retry;
  ASSERT_TRUE(Allocate("rebuild", "o-5", &retry).ok());
  EXPECT_EQ(retry.address(), addrs[5]);
  EXPECT_EQ(list(), after) << "a retry changes nothing";
}

TEST_F(ServerTest, ConcurrentClientsNeverShareAnAddress) {
  ASSERT_TRUE(CreatePool("busy", "10.5.0.0/20").ok());
  constexpr int kThreads = 8;
  constexpr int kPerThread = 100;
  const std::vector<std::string> got = AllocateFromThreads("busy", kThreads, kPerThread);
  EXPECT_EQ(got.size(), static_cast<size_t>(kThreads * kPerThread));
  EXPECT_EQ(std::set<std::string>(got.begin(), got.end()).size(), got.size());
  EXPECT_GE(server_->node().stats().commands, static_cast<uint64_t>(kThreads * kPerThread + 1));
}

// Allocations from many clients at once, with at most one log entry in flight: the commands that arrive
// while it is written wait and go out together, every caller is answered, and no address is shared.
TEST_F(ServerTest, CommandsArrivingWhileAnEntryIsInFlightGoOutTogether) {
  ASSERT_EQ(max_inflight_entries_, 1u);  // the default
  ASSERT_TRUE(CreatePool("storm", "10.6.0.0/20").ok());
  const replication::ReplicationStats before = server_->node().stats();
  constexpr int kThreads = 32;
  constexpr int kPerThread = 40;
  const std::vector<std::string> got = AllocateFromThreads("storm", kThreads, kPerThread);
  EXPECT_EQ(got.size(), static_cast<size_t>(kThreads * kPerThread));
  EXPECT_EQ(std::set<std::string>(got.begin(), got.end()).size(), got.size());
  const replication::ReplicationStats after = server_->node().stats();
  EXPECT_EQ(after.most_inflight_entries, 1u);
  const uint64_t entries = after.entries - before.entries;
  const uint64_t commands = after.commands - before.commands;
  EXPECT_EQ(commands, static_cast<uint64_t>(kThreads * kPerThread));
  // 32 callers, each waiting for its answer before asking again: entries carry several commands each.
  EXPECT_LE(entries * 2, commands) << entries << " entries for " << commands << " commands";
}

// With no limit, each wake-up of the loop proposes an entry, and several can be in flight at once.
TEST_F(ServerTest, InflightEntriesCanBeUnlimited) {
  server_.reset();
  max_inflight_entries_ = 0;
  StartServer();
  // The same storm as above without the limit puts several entries in flight at once: the limit is what
  // kept it to one there. Whether two entries overlap depends on how the threads are scheduled, so storms
  // repeat (on fresh pools) until they do, a few times at most, on a machine busy with other work.
  for (int round = 0; round < 8 && server_->node().stats().most_inflight_entries <= 1; ++round) {
    const std::string pool = "free" + std::to_string(round);
    ASSERT_TRUE(CreatePool(pool, "10.7." + std::to_string(16 * round) + ".0/20").ok());
    EXPECT_EQ(AllocateFromThreads(pool, 32, 20).size(), 32u * 20u);
  }
  EXPECT_GT(server_->node().stats().most_inflight_entries, 1u);
}

TEST_F(ServerTest, HealthServiceReportsServing) {
  // grpc.health.v1.Health/Check with an empty request; the answer {status: SERVING} encodes as 08 01.
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()), grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  grpc::Slice empty("");
  grpc::ByteBuffer request(&empty, 1);
  grpc::ByteBuffer response;
  std::promise<grpc::Status> done;
  stub.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                 [&done](grpc::Status s) { done.set_value(s); });
  grpc::Status s = done.get_future().get();
  ASSERT_TRUE(s.ok()) << s.error_message();
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(response.Dump(&slices).ok());
  std::string bytes;
  for (const auto& sl : slices) bytes.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
  EXPECT_EQ(bytes, std::string("\x08\x01", 2));
}


// Every unary method of every abode.v1 service the allocator registers is served: a method left out of a
// service's hand-listed callback or raw methods would answer UNIMPLEMENTED. An empty request gets some answer
// (an error naming a field, NOT_FOUND, OK...), never UNIMPLEMENTED.
TEST_F(ServerTest, EveryUnaryMethodOfEveryServiceIsServed) {
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()), grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  const google::protobuf::DescriptorPool* pool = google::protobuf::DescriptorPool::generated_pool();
  int checked = 0;
  for (const char* name : {"abode.v1.Allocator", "abode.v1.Pools", "abode.v1.Cluster", "abode.v1.Replica",
                           "abode.v1.Nodes", "abode.v1.ExternalAddresses", "abode.v1.ElasticAddresses",
                           "abode.v1.MagicAddresses"}) {
    const google::protobuf::ServiceDescriptor* service = pool->FindServiceByName(name);
    ASSERT_NE(service, nullptr) << name;
    for (int i = 0; i < service->method_count(); ++i) {
      const google::protobuf::MethodDescriptor* method = service->method(i);
      if (method->client_streaming() || method->server_streaming()) continue;
      const std::string path = absl::StrCat("/", service->full_name(), "/", method->name());
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
      grpc::Slice empty("");
      grpc::ByteBuffer request(&empty, 1);
      grpc::ByteBuffer response;
      std::promise<grpc::Status> done;
      stub.UnaryCall(&ctx, path, grpc::StubOptions(), &request, &response,
                     [&done](grpc::Status s) { done.set_value(s); });
      const grpc::Status s = done.get_future().get();
      EXPECT_NE(s.error_code(), grpc::StatusCode::UNIMPLEMENTED) << path << ": " << s.error_message();
      ++checked;
    }
  }
  EXPECT_GE(checked, 30);  // the services have more unary methods than that; a lookup gone wrong would not
}


// A backup larger than one message: the header, then the snapshot in chunks that add up to what the header
// says, hashing to the checksum Cluster.Checksum reports for the same state.
TEST_F(ServerTest, BackupStreamsTheStateInChunksWithItsChecksum) {
  ASSERT_TRUE(CreatePool("big", "10.61.0.0/16").ok());
  // Labels at their limits (64 a row, 63 characters each): ~8 KiB a row, ~1.3 MiB in all.
  const std::string value(63, 'v');
  constexpr int kRows = 160;
  for (int i = 0; i < kRows; ++i) {
    grpc::ClientContext ctx;
    v1::AllocateRequest req;
    req.set_pool("big");
    req.set_owner("big-" + std::to_string(i));
    for (int k = 0; k < 64; ++k) (*req.mutable_labels())[std::string(60, 'k') + std::to_string(100 + k)] = value;
    v1::Allocation a;
    const grpc::Status s = alloc_->Allocate(&ctx, req, &a);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  auto cluster = v1::Cluster::NewStub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()), grpc::InsecureChannelCredentials()));
  v1::ChecksumResponse sum;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(cluster->Checksum(&ctx, v1::ChecksumRequest(), &sum).ok());
  }
  grpc::ClientContext ctx;
  auto reader = cluster->Backup(&ctx, v1::BackupRequest());
  v1::BackupChunk chunk;
  ASSERT_TRUE(reader->Read(&chunk));
  ASSERT_TRUE(chunk.has_header());
  const v1::BackupHeader header = chunk.header();
  std::string snapshot;
  int chunks = 0;
  while (reader->Read(&chunk)) {
    ASSERT_EQ(chunk.part_case(), v1::BackupChunk::kData);
    snapshot += chunk.data();
    ++chunks;
  }
  const grpc::Status status = reader->Finish();
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_GT(chunks, 1);
  EXPECT_GT(snapshot.size(), 1u << 20);
  EXPECT_EQ(snapshot.size(), header.size());
  EXPECT_EQ(header.checksum(), storage::Fnv1a64(snapshot));
  EXPECT_EQ(header.checksum(), sum.checksum());
  EXPECT_EQ(header.revision(), sum.revision());
  EXPECT_EQ(header.allocations(), static_cast<uint64_t>(kRows));
  EXPECT_EQ(header.member_id(), 1u);
  EXPECT_EQ(snapshot.substr(0, 8), "ABODESNP");
}

}  // namespace
}  // namespace abode::allocator

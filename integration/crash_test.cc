// kill -9 the allocator during a concurrent allocation storm, restart it, and check that every acknowledged
// allocation survived and that no address has two owners. Repeated over several crash rounds.
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <grpcpp/create_channel.h>
#include <gtest/gtest.h>

#include "abode/v1/allocator.grpc.pb.h"
#include "abode/v1/pools.grpc.pb.h"
#include "integration/allocator_process.h"
#include "test-support/eventually.h"
#include "test-support/temp_dir.h"

namespace abode::integration {
namespace {

using test_support::TempDir;

struct Client {
  explicit Client(const std::string& address) {
    auto ch = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
    pools = v1::Pools::NewStub(ch);
    alloc = v1::Allocator::NewStub(ch);
  }
  std::unique_ptr<v1::Pools::Stub> pools;
  std::unique_ptr<v1::Allocator::Stub> alloc;
};

std::chrono::system_clock::time_point Deadline(int ms) {
  return std::chrono::system_clock::now() + std::chrono::milliseconds(ms);
}

TEST(CrashTest, AcknowledgedAllocationsSurviveKill9AndNoAddressHasTwoOwners) {
  TempDir dir;
  // A small, fixed snapshot threshold so crashes also land around snapshots and log compaction.
  AllocatorProcess server(ABODE_ALLOCATOR_BIN, dir.path() + "/data",
                          {"--snapshot-threshold", "64", "--snapshot-log-ratio", "0"});
  ASSERT_TRUE(server.Start().ok()) << server.log_path();
  {
    Client c(server.address());
    grpc::ClientContext ctx;
    v1::CreatePoolRequest req;
    req.mutable_pool()->set_name("storm");
    req.mutable_pool()->set_cidr("10.20.0.0/16");
    v1::Pool pool;
    ASSERT_TRUE(c.pools->CreatePool(&ctx, req, &pool).ok());
  }

  std::mutex mu;
  std::map<std::string, std::string> acknowledged;  // owner -> address
  int round_seq = 0;
  constexpr int kRounds = 3;
  constexpr int kThreads = 16;
  for (int round = 0; round < kRounds; ++round) {
    std::atomic<bool> stop{false};
    std::atomic<int> acks_this_round{0};
    std::vector<std::thread> threads;
    const std::string address = server.address();
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        Client c(address);
        for (int i = 0; !stop.load(); ++i) {
          grpc::ClientContext ctx;
          ctx.set_deadline(Deadline(2000));
          v1::AllocateRequest req;
          req.set_pool("storm");
          req.set_owner("r" + std::to_string(round_seq) + "/t" + std::to_string(t) + "/" + std::to_string(i));
          v1::Allocation a;
          if (c.alloc->Allocate(&ctx, req, &a).ok()) {
            std::lock_guard<std::mutex> lock(mu);
            acknowledged[req.owner()] = a.address();
            acks_this_round.fetch_add(1);
          } else if (stop.load()) {
            return;
          }
        }
      });
    }
    // Let the storm build up, then crash the server in the middle of it.
    test_support::Eventually([&] { return acks_this_round.load() >= 300 + 200 * round; }, std::chrono::seconds(5),
                             std::chrono::milliseconds(5));
    server.Kill();
    stop = true;
    for (auto& th : threads) th.join();
    ASSERT_GT(acks_this_round.load(), 0);
    ++round_seq;
    ASSERT_TRUE(server.Start().ok()) << server.log_path();
  }

  // The storm was long enough to cross snapshots and log compaction.
  bool have_snapshot = false;
  for (const auto& e : std::filesystem::directory_iterator(dir.path() + "/data/raft")) {
    if (e.path().filename().string().rfind("snapshot-", 0) == 0) have_snapshot = true;
  }
  EXPECT_TRUE(have_snapshot);
  RecordProperty("acknowledged", static_cast<int>(acknowledged.size()));
  std::printf("acknowledged allocations across %d crashes: %zu\n", kRounds, acknowledged.size());

  Client c(server.address());
  // Every acknowledged allocation is present with the address its caller was told.
  for (const auto& [owner, address] : acknowledged) {
    grpc::ClientContext ctx;
    v1::GetAllocationRequest req;
    req.set_owner(owner);
    v1::GetAllocationResponse resp;
    auto s = c.alloc->GetAllocation(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << owner << ": " << s.error_message();
    ASSERT_EQ(resp.allocations_size(), 1);
    EXPECT_EQ(resp.allocations(0).address(), address) << owner;
  }
  // No address has two owners, and the pool's count matches what is listed.
  std::set<std::string> addresses;
  size_t total = 0;
  std::string token;
  do {
    grpc::ClientContext ctx;
    v1::ListAllocationsRequest req;
    req.set_pool("storm");
    req.set_page_size(5000);
    req.set_page_token(token);
    v1::ListAllocationsResponse resp;
    ASSERT_TRUE(c.alloc->ListAllocations(&ctx, req, &resp).ok());
    for (const auto& a : resp.allocations()) {
      EXPECT_TRUE(addresses.insert(a.address()).second) << "two owners for " << a.address();
      ++total;
    }
    token = resp.next_page_token();
  } while (!token.empty());
  EXPECT_GE(total, acknowledged.size());
  grpc::ClientContext ctx;
  v1::GetPoolRequest req;
  req.set_name("storm");
  v1::Pool pool;
  ASSERT_TRUE(c.pools->GetPool(&ctx, req, &pool).ok());
  EXPECT_EQ(pool.used(), total);
  // After recovery the allocator still serves: an owner that was acknowledged gets the same address back.
  const auto& [owner, address] = *acknowledged.begin();
  grpc::ClientContext actx;
  v1::AllocateRequest areq;
  areq.set_pool("storm");
  areq.set_owner(owner);
  v1::Allocation again;
  ASSERT_TRUE(c.alloc->Allocate(&actx, areq, &again).ok());
  EXPECT_EQ(again.address(), address);
}

}  // namespace
}  // namespace abode::integration

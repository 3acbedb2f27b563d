// Tests only: the calls, checks and load that the cluster tests share.
#ifndef ABODE_INTEGRATION_CLUSTER_TEST_SUPPORT_H_
#define ABODE_INTEGRATION_CLUSTER_TEST_SUPPORT_H_

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <grpcpp/create_channel.h>
#include <gtest/gtest.h>
#include "abode/v1/allocator.grpc.pb.h"
#include "abode/v1/cluster.grpc.pb.h"
#include "abode/v1/nodes.grpc.pb.h"
#include "integration/cluster_harness.h"
#include "integration/require_root.h"
#include "test-support/eventually.h"

namespace abode::integration::cluster_testing {

using std::chrono::milliseconds;
using std::chrono::seconds;

inline std::chrono::system_clock::time_point DeadlineIn(int ms) {
  return std::chrono::system_clock::now() + milliseconds(ms);
}

// Every allocation of `pool` on `member` (stale read: the member's own state), owner -> address.
inline absl::StatusOr<std::map<std::string, std::string>> AllAllocations(ClusterHarness& c, int member,
                                                                  const std::string& pool) {
  auto stub = v1::Allocator::NewStub(c.channel(member));
  std::map<std::string, std::string> out;
  std::set<std::string> addresses;
  std::string token;
  do {
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(10000));
    ctx.AddMetadata("abode-read-stale", "true");
    v1::ListAllocationsRequest req;
    req.set_pool(pool);
    req.set_page_size(5000);
    req.set_page_token(token);
    v1::ListAllocationsResponse resp;
    grpc::Status s = stub->ListAllocations(&ctx, req, &resp);
    if (!s.ok()) return absl::UnavailableError(s.error_message());
    for (const auto& a : resp.allocations()) {
      if (!addresses.insert(a.address()).second) {
        return absl::DataLossError("address " + a.address() + " has two owners on member " +
                                   std::to_string(member + 1));
      }
      out[a.owner()] = a.address();
    }
    token = resp.next_page_token();
  } while (!token.empty());
  return out;
}

// A cluster made with `o`, every member started, and the member that leads in *leader; null, with the
// reason recorded as a test failure, when it cannot be made, start or elect a leader within 30 s.
inline std::unique_ptr<ClusterHarness> StartedCluster(ClusterOptions o, absl::StatusOr<int>* leader) {
  auto made = ClusterHarness::Create(ABODE_ALLOCATOR_BIN, o);
  if (!made.ok()) {
    ADD_FAILURE() << made.status();
    return nullptr;
  }
  std::unique_ptr<ClusterHarness> c = std::move(*made);
  if (absl::Status s = c->StartAll(); !s.ok()) {
    ADD_FAILURE() << "starting the members: " << s;
    return nullptr;
  }
  *leader = c->WaitForLeader(seconds(30));
  if (!leader->ok()) {
    ADD_FAILURE() << leader->status();
    return nullptr;
  }
  return c;
}

// Load from concurrent clients spread over the members; every acknowledged allocation is recorded.
class Load {
 public:
  Load(ClusterHarness& c, std::string pool, int threads) : c_(c), pool_(std::move(pool)) {
    for (int t = 0; t < threads; ++t) {
      threads_.emplace_back([this, t] { Run(t); });
    }
  }
  ~Load() { Stop(); }
  void Stop() {
    stop_ = true;
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }
  std::map<std::string, std::string> acknowledged() {
    std::lock_guard<std::mutex> lock(mu_);
    return acked_;
  }
  int64_t last_ack_ms() const { return last_ack_ms_.load(); }
  int acks() const { return acks_.load(); }
  std::vector<std::string> conflicts() {
    std::lock_guard<std::mutex> lock(mu_);
    return conflicts_;
  }

  static int64_t NowMs() {
    return std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
  }

 private:
  void Run(int t) {
    int seq = 0;
    int member = t % c_.size();
    while (!stop_) {
      const std::string owner = "load/" + std::to_string(t) + "/" + std::to_string(seq);
      v1::Allocation a;
      // Retrying one owner until it is acknowledged is safe: Allocate is idempotent per owner.
      grpc::Status s = Allocate(c_, member, pool_, owner, &a, 2000);
      if (s.ok()) {
        std::lock_guard<std::mutex> lock(mu_);
        auto [it, fresh] = acked_.emplace(owner, a.address());
        if (!fresh && it->second != a.address()) conflicts_.push_back(owner);
        ++seq;
        acks_++;
        last_ack_ms_ = NowMs();
      } else {
        member = (member + 1) % c_.size();  // that member may be gone: try the next
        std::this_thread::sleep_for(milliseconds(20));
      }
    }
  }

  ClusterHarness& c_;
  const std::string pool_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> last_ack_ms_{0};
  std::atomic<int> acks_{0};
  std::mutex mu_;
  std::map<std::string, std::string> acked_;
  std::vector<std::string> conflicts_;
  std::vector<std::thread> threads_;
};

// Every acknowledged allocation is on every running member with the same address; no address has two
// owners; all members converged to equal checksums at an equal applied index.
inline void ExpectConsistent(ClusterHarness& c, const std::string& pool, const std::map<std::string, std::string>& acked) {
  auto sum = c.WaitConverged(seconds(60));
  ASSERT_TRUE(sum.ok()) << sum.status();
  for (int i = 0; i < c.size(); ++i) {
    if (!c.running(i)) continue;
    auto all = AllAllocations(c, i, pool);
    ASSERT_TRUE(all.ok()) << all.status();
    for (const auto& [owner, address] : acked) {
      auto it = all->find(owner);
      ASSERT_NE(it, all->end()) << "member " << i + 1 << " lost acknowledged " << owner;
      EXPECT_EQ(it->second, address) << owner;
    }
  }
}

// Member `i` is listed as a voter by the leader, within 60 s (it is promoted once caught up).
inline void ExpectVoterAgain(ClusterHarness& c, int leader, int i) {
  std::string role;
  EXPECT_TRUE(test_support::Eventually(
      [&] {
        auto st = c.Status(leader);
        if (!st.ok()) return false;
        for (const auto& m : st->members()) {
          if (m.id() == static_cast<uint64_t>(i + 1)) role = m.role();
        }
        return role == "voter" || role == "leader";
      },
      seconds(60), milliseconds(100)))
      << "member " << i + 1 << " is not a voter again (role: \"" << role << "\")";
}

}  // namespace abode::integration::cluster_testing

#endif  // ABODE_INTEGRATION_CLUSTER_TEST_SUPPORT_H_

// The resolver of raft member host names, with its lookups answered by the test.
#include "replication/peer_resolver.h"

#include <atomic>
#include <chrono>
#include <future>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "absl/status/status.h"
#include "test-support/eventually.h"

namespace abode::replication {
namespace {

using std::chrono::milliseconds;

// What the test's "DNS" answers, changeable while the resolver runs.
class FakeDns {
 public:
  void Set(const std::string& host, absl::StatusOr<std::string> answer) {
    std::lock_guard<std::mutex> lock(mu_);
    answers_.insert_or_assign(host, std::move(answer));
  }
  absl::StatusOr<std::string> Resolve(const std::string& host) {
    calls_.fetch_add(1);
    std::lock_guard<std::mutex> lock(mu_);
    asked_.push_back(host);
    auto it = answers_.find(host);
    if (it == answers_.end()) return absl::NotFoundError("no such host");
    return it->second;
  }
  int calls() const { return calls_.load(); }
  // The names looked up so far, in order.
  std::vector<std::string> asked() {
    std::lock_guard<std::mutex> lock(mu_);
    return asked_;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> asked_;
  std::map<std::string, absl::StatusOr<std::string>> answers_;
  std::atomic<int> calls_{0};
};

// Polls Lookup (which never blocks) until it gives `want`; false after 10 s.
bool Eventually(PeerResolver& r, const std::string& host_port, const std::optional<std::string>& want) {
  return test_support::Eventually([&] { return r.Lookup(host_port) == want; }, std::chrono::seconds(10),
                                  milliseconds(5));
}

TEST(PeerResolverTest, Ipv4LiteralsPassThroughWithoutALookup) {
  FakeDns dns;
  PeerResolver r([&](const std::string& h) { return dns.Resolve(h); }, milliseconds(10));
  EXPECT_EQ(r.Lookup("10.0.0.7:7444"), "10.0.0.7:7444");
  EXPECT_EQ(r.Lookup("not an address"), std::nullopt);
  EXPECT_EQ(r.Lookup("host:notaport"), std::nullopt);
  // A name asked for after them: the resolver looks up every name it knows in one round, in name order
  // (this one sorts last), so once its answer is in, any lookup the calls above caused has happened too.
  dns.Set("zz-probe", "10.0.0.8");
  ASSERT_TRUE(Eventually(r, "zz-probe:1", "10.0.0.8:1"));
  EXPECT_EQ(dns.asked(), std::vector<std::string>({"zz-probe"}));
}

TEST(PeerResolverTest, ANameIsResolvedAndFollowedWhenItMoves) {
  FakeDns dns;
  dns.Set("abode-1.abode", "10.1.0.5");
  PeerResolver r([&](const std::string& h) { return dns.Resolve(h); }, milliseconds(10));
  EXPECT_TRUE(Eventually(r, "abode-1.abode:7444", "10.1.0.5:7444"));
  EXPECT_EQ(r.Lookup("abode-1.abode:9000"), "10.1.0.5:9000");  // the port is the caller's
  dns.Set("abode-1.abode", "10.1.0.99");  // the pod was rescheduled
  EXPECT_TRUE(Eventually(r, "abode-1.abode:7444", "10.1.0.99:7444"));
}

TEST(PeerResolverTest, AFailedLookupKeepsTheLastAnswer) {
  FakeDns dns;
  dns.Set("abode-2.abode", "10.1.0.6");
  PeerResolver r([&](const std::string& h) { return dns.Resolve(h); }, milliseconds(10));
  ASSERT_TRUE(Eventually(r, "abode-2.abode:7444", "10.1.0.6:7444"));
  dns.Set("abode-2.abode", absl::UnavailableError("DNS is down"));
  const int before = dns.calls();
  // Failed lookups happened.
  ASSERT_TRUE(test_support::Eventually([&] { return dns.calls() >= before + 3; }, std::chrono::seconds(10),
                                       milliseconds(5)));
  EXPECT_EQ(r.Lookup("abode-2.abode:7444"), "10.1.0.6:7444");
  // A name that never resolved has no answer.
  EXPECT_EQ(r.Lookup("abode-9.abode:7444"), std::nullopt);
}

// The raft loop must not wait for DNS: while a lookup hangs, Lookup still answers at once (nothing for that
// name yet, the last answer for the others).
TEST(PeerResolverTest, LookupNeverWaitsForASlowResolver) {
  FakeDns dns;
  dns.Set("fast", "10.1.0.1");
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  PeerResolver r(
      [&](const std::string& h) -> absl::StatusOr<std::string> {
        if (h == "slow") released.wait();
        return dns.Resolve(h);
      },
      milliseconds(10));
  ASSERT_TRUE(Eventually(r, "fast:1", "10.1.0.1:1"));
  dns.Set("slow", "10.1.0.2");
  EXPECT_EQ(r.Lookup("slow:1"), std::nullopt);  // asks for it; the resolver thread now hangs on it
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(r.Lookup("slow:1"), std::nullopt);
    EXPECT_EQ(r.Lookup("fast:1"), "10.1.0.1:1");
    std::this_thread::sleep_for(milliseconds(5));
  }
  release.set_value();
  EXPECT_TRUE(Eventually(r, "slow:1", "10.1.0.2:1"));
}

}  // namespace
}  // namespace abode::replication

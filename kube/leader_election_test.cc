#include "kube/leader_election.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kube/fake_transport.h"

namespace abode::kube {
namespace {

// One Lease object with resourceVersion checks, as the API server keeps it: enough to exercise the
// elector's optimistic concurrency. Creating an existing Lease is 409 AlreadyExists; a PUT with a stale
// resourceVersion is 409 Conflict.
class LeaseStore {
 public:
  HttpResponse Answer(const HttpRequest& r) {
    if (r.method == "GET") return lease_.is_null() ? HttpResponse{404, R"({"message":"not found"})"} : Ok();
    json body = json::parse(r.body);
    if (r.method == "POST") {
      if (!lease_.is_null()) return HttpResponse{409, R"({"reason":"AlreadyExists","message":"exists"})"};
    } else if (body["metadata"].value("resourceVersion", std::string()) != std::to_string(rv_)) {
      return HttpResponse{409, R"({"reason":"Conflict","message":"the object has been modified"})"};
    }
    lease_ = body;
    lease_["metadata"]["resourceVersion"] = std::to_string(++rv_);
    return Ok();
  }
  json lease() const { return lease_; }
  // Another writer changes the Lease between a candidate's read and its write.
  void Bump() { lease_["metadata"]["resourceVersion"] = std::to_string(++rv_); }

 private:
  HttpResponse Ok() const { return HttpResponse{200, lease_.dump()}; }
  json lease_;
  int rv_ = 0;
};

class LeaderElectionTest : public ::testing::Test {
 protected:
  LeaderElectionTest()
      : tokens_(ClusterConfig{}, clock_),
        client_(transport_, tokens_),
        a_(client_, clock_, Options("a")),
        b_(client_, clock_, Options("b")) {
    transport_.SetHandler([this](const HttpRequest& r) { return store_.Answer(r); });
  }
  static LeaseOptions Options(const std::string& id) {
    return LeaseOptions{"abode-system", "abode-kube", id, 15'000, 10'000, 2'000};
  }

  replication::FakeClock clock_{1'700'000'000'000};
  LeaseStore store_;
  FakeTransport transport_;
  TokenSource tokens_;
  KubeClient client_;
  LeaderElector a_;
  LeaderElector b_;
};

TEST_F(LeaderElectionTest, OneLeaderAtATimeAndTakeOverOnlyAfterTheLeaseExpires) {
  EXPECT_TRUE(*a_.TryAcquireOrRenew());
  EXPECT_TRUE(a_.is_leader());
  EXPECT_EQ(store_.lease()["spec"]["holderIdentity"], "a");
  EXPECT_EQ(store_.lease()["spec"]["leaseDurationSeconds"], 15);
  EXPECT_FALSE(*b_.TryAcquireOrRenew());
  EXPECT_FALSE(b_.is_leader());

  // a renews every 2 s; b never takes over however long it waits.
  for (int i = 0; i < 20; ++i) {
    clock_.Advance(2'000);
    EXPECT_TRUE(*a_.TryAcquireOrRenew());
    EXPECT_FALSE(*b_.TryAcquireOrRenew());
  }
  EXPECT_EQ(ParseMicroTime(store_.lease()["spec"]["renewTime"]), clock_.NowUnixMs());

  // a stops renewing (dead): after its renew deadline it no longer calls itself leader ...
  clock_.Advance(10'000);
  EXPECT_FALSE(a_.is_leader());
  EXPECT_FALSE(*b_.TryAcquireOrRenew()) << "b has seen the record unchanged for 10 s only";
  // ... and once b has seen the record unchanged for the lease duration, b takes over.
  clock_.Advance(5'000);
  EXPECT_TRUE(*b_.TryAcquireOrRenew());
  EXPECT_EQ(store_.lease()["spec"]["holderIdentity"], "b");
  EXPECT_EQ(store_.lease()["spec"]["leaseTransitions"], 1);
  EXPECT_FALSE(*a_.TryAcquireOrRenew());
  EXPECT_FALSE(a_.is_leader());
}

TEST_F(LeaderElectionTest, AConcurrentWriteLosesTheRoundAndReleaseHandsOverAtOnce) {
  ASSERT_TRUE(*a_.TryAcquireOrRenew());
  ASSERT_TRUE(a_.Release().ok());
  EXPECT_FALSE(a_.is_leader());
  EXPECT_EQ(store_.lease()["spec"]["holderIdentity"], "");
  ASSERT_TRUE(a_.Release().ok());  // not leading any more: nothing to do
  // b reads the free Lease, then another candidate writes before b does: b's PUT carries a stale
  // resourceVersion and loses this round.
  transport_.SetHandler([this](const HttpRequest& r) {
    if (r.method == "PUT") store_.Bump();
    return store_.Answer(r);
  });
  EXPECT_FALSE(*b_.TryAcquireOrRenew()) << "409: lost the race this round";
  EXPECT_FALSE(b_.is_leader());
  transport_.SetHandler([this](const HttpRequest& r) { return store_.Answer(r); });
  EXPECT_TRUE(*b_.TryAcquireOrRenew()) << "released (holder cleared): no need to wait for expiry";
}

TEST_F(LeaderElectionTest, ALeaderThatCannotReachTheServerStepsDownBeforeExpiry) {
  ASSERT_TRUE(*a_.TryAcquireOrRenew());
  transport_.SetHandler([](const HttpRequest&) { return HttpResponse{503, R"({"message":"down"})"}; });
  clock_.Advance(4'000);
  EXPECT_FALSE(a_.TryAcquireOrRenew().ok());
  EXPECT_TRUE(a_.is_leader());  // within the renew deadline
  clock_.Advance(6'000);
  EXPECT_FALSE(a_.TryAcquireOrRenew().ok());
  EXPECT_FALSE(a_.is_leader());
}

// The epoch tells a new leadership that continues this candidate's own record (nobody else led: the queue
// holds everything that changed) from one that took the Lease over (everything must be reconciled again).
TEST_F(LeaderElectionTest, TheEpochStaysThroughALapseAndChangesWhenTheLeaseChangesHands) {
  ASSERT_TRUE(*a_.TryAcquireOrRenew());
  const uint64_t first = a_.epoch();
  EXPECT_EQ(first, 1u);
  transport_.SetHandler([](const HttpRequest&) { return HttpResponse{503, R"({"message":"down"})"}; });
  clock_.Advance(11'000);
  EXPECT_FALSE(a_.TryAcquireOrRenew().ok());
  EXPECT_FALSE(a_.is_leader()) << "past the renew deadline";
  transport_.SetHandler([this](const HttpRequest& r) { return store_.Answer(r); });
  ASSERT_TRUE(*a_.TryAcquireOrRenew()) << "its own record, not yet taken by anyone";
  EXPECT_EQ(a_.epoch(), first);
  EXPECT_EQ(a_.transitions(), 2u);

  ASSERT_TRUE(a_.Release().ok());
  ASSERT_TRUE(*b_.TryAcquireOrRenew());
  ASSERT_TRUE(b_.Release().ok());
  ASSERT_TRUE(*a_.TryAcquireOrRenew());
  EXPECT_NE(a_.epoch(), first) << "b led in between";
}

TEST(MicroTimeTest, RoundTrips) {
  EXPECT_EQ(MicroTime(1'700'000'000'123), "2023-11-14T22:13:20.123000Z");
  EXPECT_EQ(ParseMicroTime("2023-11-14T22:13:20.123000Z"), 1'700'000'000'123);
  EXPECT_EQ(ParseMicroTime("2023-11-14T22:13:20Z"), 1'700'000'000'000);
  EXPECT_EQ(ParseMicroTime("yesterday"), 0);
}

}  // namespace
}  // namespace abode::kube

// The leader's housekeeping driven by a manual timer and a fake clock: what it proposes, when, and only
// while it leads.
#include "allocator-service/housekeeper.h"

#include <optional>
#include <vector>

#include <gtest/gtest.h>

namespace abode::allocator {
namespace {

constexpr int64_t kStartMs = 1'700'000'000'000;

// The replica as the housekeeper sees it; proposals wait until the test answers them.
class FakeHost final : public HousekeepingHost {
 public:
  bool Leads() override { return leads; }
  void EarliestExpiry(ExpiryDone done) override {
    ++expiry_reads;
    std::move(done)(earliest_expiry);
  }
  void ProposeHere(v1::Command command, replication::CommandLog::Done done) override {
    proposed.push_back(std::move(command));
    dones.push_back(std::move(done));
  }

  // Answers the proposal at `i` as applied, having changed `changed` rows.
  void Apply(size_t i, uint64_t changed) {
    v1::CommandResult r;
    r.set_changed(changed);
    std::move(dones.at(i))(r);
  }
  size_t count(v1::Command::OpCase kind) const {
    size_t n = 0;
    for (const auto& c : proposed) n += c.op_case() == kind;
    return n;
  }

  bool leads = true;
  absl::StatusOr<std::optional<int64_t>> earliest_expiry = std::optional<int64_t>();
  int expiry_reads = 0;
  std::vector<v1::Command> proposed;
  std::vector<replication::CommandLog::Done> dones;
};

class HousekeeperTest : public ::testing::Test {
 protected:
  HousekeeperOptions Options(int64_t retention_ms) {
    HousekeeperOptions o;
    o.history_retention_ms = retention_ms;
    o.clock = &clock_;
    o.timers = &timers_;
    return o;
  }

  replication::FakeClock clock_{kStartMs};
  ManualTimers timers_;
  FakeHost host_;
};

TEST_F(HousekeeperTest, ProposesNothingWhileItDoesNotLead) {
  host_.leads = false;
  host_.earliest_expiry = std::optional<int64_t>(kStartMs - 1);
  Housekeeper keeper(host_, Options(1000));
  timers_.Fire();
  EXPECT_EQ(host_.expiry_reads, 0);
  EXPECT_TRUE(host_.proposed.empty());
}

TEST_F(HousekeeperTest, ExpiresOnceTheEarliestExpiryIsDueAndOneAtATime) {
  Housekeeper keeper(host_, Options(0));
  host_.earliest_expiry = std::optional<int64_t>(kStartMs + 5000);
  timers_.Fire();
  EXPECT_EQ(host_.expiry_reads, 1);
  EXPECT_TRUE(host_.proposed.empty()) << "nothing is due yet";

  clock_.Advance(5000);
  timers_.Fire();
  ASSERT_EQ(host_.count(v1::Command::kExpireAllocations), 1u);
  // While that proposal is in flight, no second one, and no second read.
  timers_.Fire();
  EXPECT_EQ(host_.count(v1::Command::kExpireAllocations), 1u);
  EXPECT_EQ(host_.expiry_reads, 2);

  host_.Apply(0, 3);
  timers_.Fire();
  EXPECT_EQ(host_.count(v1::Command::kExpireAllocations), 2u) << "still due: proposed again";
}

TEST_F(HousekeeperTest, NoAllocationWithATtlMeansNoExpiry) {
  Housekeeper keeper(host_, Options(0));
  timers_.Fire();
  timers_.Fire();
  EXPECT_EQ(host_.expiry_reads, 2);
  EXPECT_TRUE(host_.proposed.empty());
}

TEST_F(HousekeeperTest, AFailedExpiryReadIsTriedAgainNextRound) {
  Housekeeper keeper(host_, Options(0));
  host_.earliest_expiry = absl::UnavailableError("store is busy");
  timers_.Fire();
  host_.earliest_expiry = std::optional<int64_t>(kStartMs);
  timers_.Fire();
  EXPECT_EQ(host_.count(v1::Command::kExpireAllocations), 1u);
}

TEST_F(HousekeeperTest, PrunesHistoryOlderThanTheRetentionOncePerPruneInterval) {
  const int64_t retention = 3600'000;
  Housekeeper keeper(host_, Options(retention));
  timers_.Fire();
  ASSERT_EQ(host_.count(v1::Command::kPruneHistory), 1u);
  EXPECT_EQ(host_.proposed.back().prune_history().older_than_unix_ms(), kStartMs - retention);

  clock_.Advance(59'999);
  timers_.Fire();
  EXPECT_EQ(host_.count(v1::Command::kPruneHistory), 1u) << "within the prune interval";
  clock_.Advance(1);
  timers_.Fire();
  ASSERT_EQ(host_.count(v1::Command::kPruneHistory), 2u);
  EXPECT_EQ(host_.proposed.back().prune_history().older_than_unix_ms(), kStartMs + 60'000 - retention);
}

TEST_F(HousekeeperTest, ZeroRetentionKeepsHistoryForever) {
  Housekeeper keeper(host_, Options(0));
  for (int i = 0; i < 3; ++i) {
    clock_.Advance(3600'000);
    timers_.Fire();
  }
  EXPECT_EQ(host_.count(v1::Command::kPruneHistory), 0u);
}

TEST_F(HousekeeperTest, StoppedItsTimerNoLongerRuns) {
  Housekeeper keeper(host_, Options(1000));
  ASSERT_EQ(timers_.live(), 1u);
  keeper.Stop();
  EXPECT_EQ(timers_.live(), 0u);
  timers_.Fire();
  EXPECT_EQ(host_.expiry_reads, 0);
}

}  // namespace
}  // namespace abode::allocator

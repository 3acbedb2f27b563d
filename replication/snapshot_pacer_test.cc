#include "replication/snapshot_pacer.h"

#include <limits>

#include <gtest/gtest.h>

namespace abode::replication {
namespace {

TEST(SnapshotPacerTest, ASmallStateKeepsTheMinimum) {
  SnapshotPacer p(8192, 0.5);
  EXPECT_EQ(p.threshold(), 8192u);  // nothing seen yet
  p.OnEntry(1000);
  EXPECT_EQ(p.threshold(), 8192u);  // no snapshot yet
  p.OnSnapshot(1'000'000);          // half of it is 500 entries of 1,000 bytes: below the minimum
  EXPECT_EQ(p.threshold(), 8192u);
}

TEST(SnapshotPacerTest, TheLogBetweenSnapshotsGrowsWithTheState) {
  SnapshotPacer p(8192, 0.5);
  p.OnEntry(1000);
  p.OnSnapshot(100'000'000);  // 50 MB of log between snapshots: 50,000 entries of 1,000 bytes
  EXPECT_EQ(p.threshold(), 50'000u);
  p.OnSnapshot(200'000'000);
  EXPECT_EQ(p.threshold(), 100'000u);
  p.OnSnapshot(10'000'000);  // the state shrank (pools deleted): back to the minimum
  EXPECT_EQ(p.threshold(), 8192u);
}

TEST(SnapshotPacerTest, EntrySizesAreARunningMeanThatFollowsTheWorkload) {
  SnapshotPacer p(1, 1.0);
  p.OnSnapshot(1'000'000);
  p.OnEntry(1000);
  EXPECT_EQ(p.threshold(), 1000u);
  for (int i = 0; i < 20000; ++i) p.OnEntry(100);  // entries became ten times smaller
  EXPECT_NEAR(p.mean_entry_bytes(), 100.0, 1.0);
  EXPECT_NEAR(static_cast<double>(p.threshold()), 10'000.0, 100.0);
}

TEST(SnapshotPacerTest, ARatioOfZeroKeepsTheFixedThreshold) {
  SnapshotPacer p(64, 0);
  p.OnEntry(10);
  p.OnSnapshot(1'000'000'000);
  EXPECT_EQ(p.threshold(), 64u);
}

TEST(SnapshotPacerTest, ReplicasStaggerTheirThresholds) {
  EXPECT_EQ(SnapshotPacer::StaggerFor(1), 0.0);
  EXPECT_DOUBLE_EQ(SnapshotPacer::StaggerFor(2), 0.1);
  EXPECT_DOUBLE_EQ(SnapshotPacer::StaggerFor(5), 0.4);
  EXPECT_EQ(SnapshotPacer::StaggerFor(6), 0.0);
  SnapshotPacer first(8192, 0.5, SnapshotPacer::StaggerFor(1));
  SnapshotPacer third(8192, 0.5, SnapshotPacer::StaggerFor(3));
  EXPECT_EQ(first.threshold(), 8192u);
  EXPECT_EQ(third.threshold(), 9830u);  // the minimum too: small states are where replicas would meet
  for (SnapshotPacer* p : {&first, &third}) {
    p->OnEntry(1000);
    p->OnSnapshot(100'000'000);
  }
  EXPECT_EQ(first.threshold(), 50'000u);
  EXPECT_EQ(third.threshold(), 60'000u);
}

TEST(SnapshotPacerTest, ARatioThatIsNotANumberKeepsTheFixedThreshold) {
  SnapshotPacer p(64, std::numeric_limits<double>::quiet_NaN());
  p.OnEntry(10);
  p.OnSnapshot(1'000'000);
  EXPECT_EQ(p.threshold(), 64u);
}

TEST(SnapshotPacerTest, HugeRatiosSaturateInsteadOfOverflowing) {
  SnapshotPacer p(8192, 1e12);
  p.OnEntry(1);
  p.OnSnapshot(size_t{1} << 40);
  EXPECT_EQ(p.threshold(), std::numeric_limits<unsigned>::max());
}

}  // namespace
}  // namespace abode::replication

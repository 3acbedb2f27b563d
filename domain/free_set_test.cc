#include "domain/free_set.h"

#include <cstdint>
#include <optional>
#include <random>
#include <set>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace abode::domain {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;

constexpr u128 kMax = ~u128{0};

std::vector<std::pair<u128, u128>> Intervals(const FreeSet& s) {
  std::vector<std::pair<u128, u128>> out;
  s.ForEachInterval([&](u128 lo, u128 hi) { out.emplace_back(lo, hi); });
  return out;
}

// The count implied by the intervals, independent of the set's own bookkeeping.
u128 CountOfIntervals(const FreeSet& s) {
  u128 n = 0;
  s.ForEachInterval([&](u128 lo, u128 hi) { n += hi - lo + 1; });
  return n;
}

TEST(FreeSetTest, EmptySet) {
  FreeSet s;
  EXPECT_TRUE(s.empty());
  EXPECT_EQ(s.count(), 0u);
  EXPECT_EQ(s.Lowest(), std::nullopt);
  EXPECT_EQ(s.NextFrom(5), std::nullopt);
  EXPECT_FALSE(s.Contains(0));
  EXPECT_FALSE(s.Take(0));
  EXPECT_EQ(s.RemoveRange(0, 100), 0u);
}

TEST(FreeSetTest, AddRangeMergesOverlappingAndAdjacent) {
  FreeSet s;
  s.AddRange(10, 19);
  s.AddRange(30, 39);
  EXPECT_THAT(Intervals(s), ElementsAre(Pair(10, 19), Pair(30, 39)));
  EXPECT_EQ(s.count(), 20u);

  s.AddRange(20, 20);  // touches the left interval only
  EXPECT_THAT(Intervals(s), ElementsAre(Pair(10, 20), Pair(30, 39)));
  s.AddRange(29, 29);  // touches the right interval only
  EXPECT_THAT(Intervals(s), ElementsAre(Pair(10, 20), Pair(29, 39)));
  s.AddRange(21, 28);  // bridges both
  EXPECT_THAT(Intervals(s), ElementsAre(Pair(10, 39)));
  EXPECT_EQ(s.count(), 30u);

  s.AddRange(15, 25);  // already inside: no change
  EXPECT_THAT(Intervals(s), ElementsAre(Pair(10, 39)));
  EXPECT_EQ(s.count(), 30u);

  s.AddRange(50, 60);
  s.AddRange(70, 80);
  s.AddRange(5, 75);  // swallows several and extends both ends
  EXPECT_THAT(Intervals(s), ElementsAre(Pair(5, 80)));
  EXPECT_EQ(s.count(), 76u);

  s.AddRange(0, 3);  // a gap of one (4) keeps them apart
  EXPECT_THAT(Intervals(s), ElementsAre(Pair(0, 3), Pair(5, 80)));
  s.AddRange(4, 4);
  EXPECT_THAT(Intervals(s), ElementsAre(Pair(0, 80)));
  EXPECT_EQ(s.interval_count(), 1u);
  EXPECT_EQ(s.count(), 81u);
}

TEST(FreeSetTest, RemoveRangeSplitsAtBoundaries) {
  FreeSet s;
  s.AddRange(10, 20);
  EXPECT_EQ(s.RemoveRange(10, 10), 1u);  // left edge
  EXPECT_THAT(Intervals(s), ElementsAre(Pair(11, 20)));
  EXPECT_EQ(s.RemoveRange(20, 25), 1u);  // right edge, beyond the end
  EXPECT_THAT(Intervals(s), ElementsAre(Pair(11, 19)));
  EXPECT_EQ(s.RemoveRange(14, 15), 2u);  // middle: splits
  EXPECT_THAT(Intervals(s), ElementsAre(Pair(11, 13), Pair(16, 19)));
  EXPECT_EQ(s.count(), 7u);
  EXPECT_EQ(s.RemoveRange(14, 15), 0u);  // nothing free there
  EXPECT_EQ(s.RemoveRange(0, 5), 0u);
  EXPECT_EQ(s.RemoveRange(13, 16), 2u);  // spans the gap, trims both
  EXPECT_THAT(Intervals(s), ElementsAre(Pair(11, 12), Pair(17, 19)));
  EXPECT_EQ(s.RemoveRange(0, 100), 5u);  // everything
  EXPECT_TRUE(s.empty());
  EXPECT_EQ(s.count(), 0u);
}

TEST(FreeSetTest, RemoveRangeAcrossManyIntervals) {
  FreeSet s;
  for (u128 i = 0; i < 10; ++i) s.AddRange(i * 10, i * 10 + 4);
  EXPECT_EQ(s.count(), 50u);
  EXPECT_EQ(s.RemoveRange(12, 73), 3u + 5 * 5 + 4);
  EXPECT_THAT(Intervals(s), ElementsAre(Pair(0, 4), Pair(10, 11), Pair(74, 74), Pair(80, 84), Pair(90, 94)));
  EXPECT_EQ(s.count(), CountOfIntervals(s));
}

TEST(FreeSetTest, TakeAndGiveAtEdgesAndMiddle) {
  FreeSet s;
  s.AddRange(100, 104);
  EXPECT_TRUE(s.Take(100));  // lowest edge
  EXPECT_THAT(Intervals(s), ElementsAre(Pair(101, 104)));
  EXPECT_TRUE(s.Take(104));  // highest edge
  EXPECT_THAT(Intervals(s), ElementsAre(Pair(101, 103)));
  EXPECT_TRUE(s.Take(102));  // middle: splits
  EXPECT_THAT(Intervals(s), ElementsAre(Pair(101, 101), Pair(103, 103)));
  EXPECT_FALSE(s.Take(102));
  EXPECT_FALSE(s.Take(99));
  EXPECT_FALSE(s.Take(105));
  EXPECT_TRUE(s.Take(101));  // a single-address interval disappears
  EXPECT_THAT(Intervals(s), ElementsAre(Pair(103, 103)));
  EXPECT_EQ(s.count(), 1u);

  EXPECT_FALSE(s.Give(103));  // already free
  EXPECT_TRUE(s.Give(102));
  EXPECT_THAT(Intervals(s), ElementsAre(Pair(102, 103)));
  EXPECT_TRUE(s.Give(104));
  EXPECT_TRUE(s.Give(100));
  EXPECT_THAT(Intervals(s), ElementsAre(Pair(100, 100), Pair(102, 104)));
  EXPECT_TRUE(s.Give(101));  // fills the hole: one interval again
  EXPECT_THAT(Intervals(s), ElementsAre(Pair(100, 104)));
  EXPECT_EQ(s.count(), 5u);
}

TEST(FreeSetTest, LowestAndNextFromWrap) {
  FreeSet s;
  s.AddRange(10, 12);
  s.AddRange(20, 22);
  EXPECT_EQ(s.Lowest(), 10u);
  EXPECT_EQ(s.NextFrom(0), 10u);
  EXPECT_EQ(s.NextFrom(10), 10u);
  EXPECT_EQ(s.NextFrom(11), 11u);
  EXPECT_EQ(s.NextFrom(12), 12u);
  EXPECT_EQ(s.NextFrom(13), 20u);
  EXPECT_EQ(s.NextFrom(22), 22u);
  EXPECT_EQ(s.NextFrom(23), 10u);  // wraps
  EXPECT_EQ(s.NextFrom(kMax), 10u);
  ASSERT_TRUE(s.Take(10));
  EXPECT_EQ(s.Lowest(), 11u);
  EXPECT_EQ(s.NextFrom(10), 11u);
}

TEST(FreeSetTest, ContainsAtBoundaries) {
  FreeSet s;
  s.AddRange(5, 7);
  EXPECT_FALSE(s.Contains(4));
  EXPECT_TRUE(s.Contains(5));
  EXPECT_TRUE(s.Contains(7));
  EXPECT_FALSE(s.Contains(8));
}

TEST(FreeSetTest, TopOfThe128BitSpaceDoesNotOverflow) {
  FreeSet s;
  s.AddRange(kMax - 9, kMax);
  EXPECT_EQ(s.count(), 10u);
  EXPECT_TRUE(s.Contains(kMax));
  EXPECT_EQ(s.NextFrom(kMax), kMax);

  // Adding a range that ends at the top merges with what lies below it, and the other way round.
  s.AddRange(kMax - 20, kMax - 10);
  EXPECT_THAT(Intervals(s), ElementsAre(Pair(kMax - 20, kMax)));
  EXPECT_EQ(s.count(), 21u);
  s.AddRange(kMax, kMax);
  EXPECT_THAT(Intervals(s), ElementsAre(Pair(kMax - 20, kMax)));
  s.AddRange(kMax - 5, kMax);
  EXPECT_EQ(s.count(), 21u);

  EXPECT_TRUE(s.Take(kMax));
  EXPECT_THAT(Intervals(s), ElementsAre(Pair(kMax - 20, kMax - 1)));
  EXPECT_FALSE(s.Contains(kMax));
  EXPECT_EQ(s.NextFrom(kMax), kMax - 20);  // wraps
  EXPECT_TRUE(s.Give(kMax));
  EXPECT_THAT(Intervals(s), ElementsAre(Pair(kMax - 20, kMax)));

  EXPECT_EQ(s.RemoveRange(kMax - 1, kMax), 2u);
  EXPECT_THAT(Intervals(s), ElementsAre(Pair(kMax - 20, kMax - 2)));
  EXPECT_EQ(s.RemoveRange(kMax - 15, kMax), 14u);
  EXPECT_THAT(Intervals(s), ElementsAre(Pair(kMax - 20, kMax - 16)));
  EXPECT_EQ(s.count(), 5u);

  // A lone interval at the top, with a gap below it.
  s.AddRange(kMax, kMax);
  EXPECT_THAT(Intervals(s), ElementsAre(Pair(kMax - 20, kMax - 16), Pair(kMax, kMax)));
  EXPECT_TRUE(s.Take(kMax));
  EXPECT_EQ(s.count(), 5u);

  // Half the space (2^127 addresses) counts exactly.
  FreeSet half;
  half.AddRange(u128{1} << 127, kMax);
  EXPECT_EQ(half.count(), u128{1} << 127);
  EXPECT_TRUE(half.Take(u128{1} << 127));
  EXPECT_EQ(half.Lowest(), (u128{1} << 127) + 1);
  EXPECT_EQ(half.RemoveRange(0, kMax), (u128{1} << 127) - 1);
  EXPECT_TRUE(half.empty());
}

TEST(FreeSetTest, BottomOfTheSpace) {
  FreeSet s;
  s.AddRange(0, 0);
  s.AddRange(2, 3);
  EXPECT_THAT(Intervals(s), ElementsAre(Pair(0, 0), Pair(2, 3)));
  s.AddRange(1, 1);
  EXPECT_THAT(Intervals(s), ElementsAre(Pair(0, 3)));
  EXPECT_TRUE(s.Take(0));
  EXPECT_EQ(s.Lowest(), 1u);
  EXPECT_EQ(s.RemoveRange(0, 1), 1u);
  EXPECT_THAT(Intervals(s), ElementsAre(Pair(2, 3)));
}

TEST(FreeSetTest, LargeRangesCostNothing) {
  FreeSet s;
  s.AddRange(0, (u128{1} << 80) - 1);
  for (u128 i = 0; i < 1000; ++i) ASSERT_TRUE(s.Take(i * 7919));
  EXPECT_EQ(s.count(), (u128{1} << 80) - 1000);
  EXPECT_EQ(s.count(), CountOfIntervals(s));
  EXPECT_EQ(s.interval_count(), 1000u);  // 0 was taken: 999 holes make 1000 intervals
}

// Every operation against a std::set model over a small universe, near the top of the space so that the
// boundary arithmetic is exercised too.
TEST(FreeSetTest, RandomizedAgainstModel) {
  for (const u128 base : {u128{0}, kMax - 199}) {
    std::mt19937_64 rng(20240611);
    FreeSet s;
    std::set<u128> model;
    auto rand_in = [&](uint64_t n) { return static_cast<u128>(rng() % n); };
    for (int step = 0; step < 20000; ++step) {
      const int op = static_cast<int>(rng() % 6);
      const u128 a = base + rand_in(200);
      switch (op) {
        case 0: {
          const u128 b = a + std::min<u128>(rand_in(12), base + 199 - a);
          s.AddRange(a, b);
          for (u128 v = a;; ++v) {
            model.insert(v);
            if (v == b) break;
          }
          break;
        }
        case 1: {
          const u128 b = a + std::min<u128>(rand_in(12), base + 199 - a);
          u128 expect = 0;
          for (u128 v = a;; ++v) {
            expect += model.erase(v);
            if (v == b) break;
          }
          ASSERT_EQ(s.RemoveRange(a, b), expect) << step;
          break;
        }
        case 2:
          ASSERT_EQ(s.Take(a), model.erase(a) == 1) << step;
          break;
        case 3:
          ASSERT_EQ(s.Give(a), model.insert(a).second) << step;
          break;
        case 4: {
          std::optional<u128> want;
          auto it = model.lower_bound(a);
          if (it != model.end()) {
            want = *it;
          } else if (!model.empty()) {
            want = *model.begin();
          }
          ASSERT_EQ(s.NextFrom(a), want) << step;
          break;
        }
        case 5:
          ASSERT_EQ(s.Contains(a), model.count(a) == 1) << step;
          break;
      }
      ASSERT_EQ(s.count(), static_cast<u128>(model.size())) << step;
      ASSERT_EQ(s.Lowest(), model.empty() ? std::nullopt : std::optional<u128>(*model.begin())) << step;
      if (step % 64 == 0) {
        // Intervals are disjoint, non-adjacent, and cover exactly the model.
        std::vector<std::pair<u128, u128>> want;
        for (u128 v : model) {
          if (!want.empty() && want.back().second + 1 == v) {
            want.back().second = v;
          } else {
            want.emplace_back(v, v);
          }
        }
        ASSERT_EQ(Intervals(s), want) << step;
      }
    }
  }
}

}  // namespace
}  // namespace abode::domain

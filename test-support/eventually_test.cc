#include "test-support/eventually.h"

#include <atomic>
#include <chrono>
#include <thread>

#include <gtest/gtest.h>

namespace abode::test_support {
namespace {

using std::chrono::milliseconds;

TEST(EventuallyTest, TrueAtOnceAsksOnce) {
  int asked = 0;
  EXPECT_TRUE(Eventually(
      [&] {
        ++asked;
        return true;
      },
      milliseconds(0)));
  EXPECT_EQ(asked, 1);
}

TEST(EventuallyTest, WaitsForAnotherThreadToMakeItTrue) {
  std::atomic<bool> done{false};
  std::thread setter([&] {
    std::this_thread::sleep_for(milliseconds(50));  // the other thread's work, not a wait for a result
    done = true;
  });
  EXPECT_TRUE(Eventually([&] { return done.load(); }, std::chrono::seconds(30), milliseconds(1)));
  setter.join();
}

TEST(EventuallyTest, FalseWhenItNeverHoldsAfterAskingPastTheDeadline) {
  int asked = 0;
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(Eventually(
      [&] {
        ++asked;
        return false;
      },
      milliseconds(30), milliseconds(5)));
  EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(30));
  EXPECT_GE(asked, 2);  // the first call and the one at the deadline
}

TEST(EventuallyTest, AConditionThatTurnsTrueAtTheDeadlineCounts) {
  int asked = 0;
  // True from the second call on; with a poll interval longer than the timeout, that is the call at the deadline.
  EXPECT_TRUE(Eventually([&] { return ++asked >= 2; }, milliseconds(1), milliseconds(10)));
  EXPECT_EQ(asked, 2);
}

}  // namespace
}  // namespace abode::test_support

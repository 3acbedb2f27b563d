// Tests only: waiting for a condition that another thread or process makes true, without a fixed sleep.
#ifndef ABODE_TEST_SUPPORT_EVENTUALLY_H_
#define ABODE_TEST_SUPPORT_EVENTUALLY_H_

#include <chrono>
#include <thread>

namespace abode::test_support {

// Calls `condition` until it returns true or `timeout` has passed, sleeping `poll` between calls; returns
// whether it became true. The condition is always asked at least once, and once more at the deadline, so a
// short timeout never reports false for a condition that already holds.
template <typename Condition>
bool Eventually(Condition&& condition, std::chrono::steady_clock::duration timeout,
                std::chrono::steady_clock::duration poll = std::chrono::milliseconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return condition();
    std::this_thread::sleep_for(poll);
  }
}

}  // namespace abode::test_support

#endif  // ABODE_TEST_SUPPORT_EVENTUALLY_H_

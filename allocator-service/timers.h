// Periodic timers behind an interface, so that tests fire them instead of waiting for real time.
#ifndef ABODE_ALLOCATOR_SERVICE_TIMERS_H_
#define ABODE_ALLOCATOR_SERVICE_TIMERS_H_

#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"

namespace abode::allocator {

// A running periodic timer; destroying it stops it, and once the destructor returns `tick` runs no more.
class PeriodicTimer {
 public:
  virtual ~PeriodicTimer() = default;
};

class Timers {
 public:
  virtual ~Timers() = default;
  // Runs `tick` every `interval_ms` (on a thread of the implementation's) until the timer is destroyed.
  // `tick` must not destroy its own timer.
  virtual std::unique_ptr<PeriodicTimer> Every(int64_t interval_ms, absl::AnyInvocable<void()> tick) = 0;
};

// Real time: one thread per timer. Thread-safe.
class ThreadTimers final : public Timers {
 public:
  std::unique_ptr<PeriodicTimer> Every(int64_t interval_ms, absl::AnyInvocable<void()> tick) override;
};

// For tests: timers fire only when the test says so. Thread-safe; Fire runs the ticks on the caller's
// thread.
class ManualTimers final : public Timers {
 public:
  std::unique_ptr<PeriodicTimer> Every(int64_t interval_ms, absl::AnyInvocable<void()> tick) override;
  // Runs every live timer's tick once. REQUIRES: not called from a tick.
  void Fire() ABSL_LOCKS_EXCLUDED(mu_);
  size_t live() ABSL_LOCKS_EXCLUDED(mu_);  // timers not yet destroyed

 private:
  class Manual;
  absl::Mutex mu_;  // held while a tick runs, so that a timer is never destroyed during its tick
  std::vector<Manual*> timers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace abode::allocator

#endif  // ABODE_ALLOCATOR_SERVICE_TIMERS_H_

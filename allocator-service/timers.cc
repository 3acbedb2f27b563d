#include "allocator-service/timers.h"

#include <algorithm>
#include <utility>

#include "absl/time/time.h"

namespace abode::allocator {
namespace {

class ThreadTimer final : public PeriodicTimer {
 public:
  ThreadTimer(int64_t interval_ms, absl::AnyInvocable<void()> tick)
      : interval_(absl::Milliseconds(interval_ms)), tick_(std::move(tick)), thread_([this] { Run(); }) {}
  ~ThreadTimer() override {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    thread_.join();
  }

 private:
  void Run() {
    absl::MutexLock lock(&mu_);
    while (!mu_.AwaitWithTimeout(absl::Condition(&stopping_), interval_)) {
      mu_.Unlock();
      tick_();
      mu_.Lock();
    }
  }

  const absl::Duration interval_;
  absl::AnyInvocable<void()> tick_;  // the timer thread's
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;  // last: starts once the rest is there
};

}  // namespace

std::unique_ptr<PeriodicTimer> ThreadTimers::Every(int64_t interval_ms, absl::AnyInvocable<void()> tick) {
  return std::make_unique<ThreadTimer>(interval_ms, std::move(tick));
}

class ManualTimers::Manual final : public PeriodicTimer {
 public:
  Manual(ManualTimers* owner, absl::AnyInvocable<void()> tick) : owner_(owner), tick_(std::move(tick)) {}
  ~Manual() override {
    absl::MutexLock lock(&owner_->mu_);
    auto& t = owner_->timers_;
    t.erase(std::remove(t.begin(), t.end(), this), t.end());
  }
  void Tick() { tick_(); }

 private:
  ManualTimers* const owner_;
  absl::AnyInvocable<void()> tick_;
};

std::unique_ptr<PeriodicTimer> ManualTimers::Every(int64_t /*interval_ms*/, absl::AnyInvocable<void()> tick) {
  auto timer = std::make_unique<Manual>(this, std::move(tick));
  absl::MutexLock lock(&mu_);
  timers_.push_back(timer.get());
  return timer;
}

void ManualTimers::Fire() {
  absl::MutexLock lock(&mu_);
  for (Manual* t : timers_) t->Tick();
}

size_t ManualTimers::live() {
  absl::MutexLock lock(&mu_);
  return timers_.size();
}

}  // namespace abode::allocator

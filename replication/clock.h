// Wall-clock time behind an interface, so tests drive time instead of sleeping.
#ifndef ABODE_REPLICATION_CLOCK_H_
#define ABODE_REPLICATION_CLOCK_H_

#include <atomic>
#include <chrono>
#include <cstdint>

namespace abode::replication {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t NowUnixMs() = 0;
};

class SystemClock final : public Clock {
 public:
  int64_t NowUnixMs() override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};

// Thread-safe manual clock for tests.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(int64_t start_ms) : now_(start_ms) {}
  int64_t NowUnixMs() override { return now_.load(); }
  void Advance(int64_t ms) { now_.fetch_add(ms); }
  void Set(int64_t ms) { now_.store(ms); }

 private:
  std::atomic<int64_t> now_;
};

}  // namespace abode::replication

#endif  // ABODE_REPLICATION_CLOCK_H_

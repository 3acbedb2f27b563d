// Capped, jittered exponential backoff: the n-th wait after consecutive failures is uniformly drawn from
// [d/2, d] with d = min(initial * 2^n, max) ("equal jitter"), so restarted controllers do not retry in step.
// The random source is injected (a seeded engine in tests).
#ifndef ABODE_KUBE_BACKOFF_H_
#define ABODE_KUBE_BACKOFF_H_

#include <algorithm>
#include <cstdint>
#include <random>

namespace abode::kube {

class Backoff {
 public:
  Backoff(int64_t initial_ms, int64_t max_ms, uint64_t seed) : initial_ms_(initial_ms), max_ms_(max_ms), rng_(seed) {}

  // The wait before the next attempt; each call doubles the ceiling up to the cap.
  int64_t NextMs() {
    int64_t ceiling = initial_ms_;
    for (int i = 0; i < failures_ && ceiling < max_ms_; ++i) ceiling *= 2;
    ceiling = std::min(ceiling, max_ms_);
    ++failures_;
    std::uniform_int_distribution<int64_t> pick(ceiling / 2, ceiling);
    return pick(rng_);
  }
  // After a success.
  void Reset() { failures_ = 0; }
  int failures() const { return failures_; }

 private:
  const int64_t initial_ms_;
  const int64_t max_ms_;
  std::mt19937_64 rng_;
  int failures_ = 0;
};

}  // namespace abode::kube

#endif  // ABODE_KUBE_BACKOFF_H_

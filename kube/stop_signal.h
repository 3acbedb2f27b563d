// A stop flag loops can sleep on: Sleep returns early once Stop is called. Thread-safe.
#ifndef ABODE_KUBE_STOP_SIGNAL_H_
#define ABODE_KUBE_STOP_SIGNAL_H_

#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace abode::kube {

class StopSignal {
 public:
  void Stop() {
    absl::MutexLock lock(&mu_);
    stopped_ = true;
  }
  bool stopped() const {
    absl::MutexLock lock(&mu_);
    return stopped_;
  }
  // Waits `ms` or until stopped; returns whether stopped.
  bool Sleep(int64_t ms) const {
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(&stopped_), absl::Milliseconds(ms));
    return stopped_;
  }

 private:
  mutable absl::Mutex mu_;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace abode::kube

#endif  // ABODE_KUBE_STOP_SIGNAL_H_

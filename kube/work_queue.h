// Keys to reconcile, each at most once in the queue, optionally not before a time (a retry's backoff).
// Thread-safe: handlers add from informer threads; one worker takes.
#ifndef ABODE_KUBE_WORK_QUEUE_H_
#define ABODE_KUBE_WORK_QUEUE_H_

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "replication/clock.h"

namespace abode::kube {

class WorkQueue {
 public:
  explicit WorkQueue(replication::Clock& clock) : clock_(clock) {}

  // Due now; a key already waiting becomes due now too.
  void Add(const std::string& key) { AddAt(key, 0); }
  // Due at `due_ms` (by the clock); a key already due earlier stays earlier.
  void AddAt(const std::string& key, int64_t due_ms) {
    absl::MutexLock lock(&mu_);
    auto it = due_.find(key);
    if (it != due_.end()) {
      if (it->second <= due_ms) return;
      by_time_.erase({it->second, key});
    }
    due_[key] = due_ms;
    by_time_.insert({due_ms, key});
  }
  // The next due key, waiting up to `wait_ms` for one; nullopt when none is due by then or on Close.
  std::optional<std::string> Take(int64_t wait_ms) {
    absl::MutexLock lock(&mu_);
    auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return closed_ || (!by_time_.empty() && by_time_.begin()->first <= clock_.NowUnixMs());
    };
    mu_.AwaitWithTimeout(absl::Condition(&ready), absl::Milliseconds(wait_ms));
    if (closed_ || !ready()) return std::nullopt;
    auto first = by_time_.begin();
    std::string key = first->second;
    due_.erase(key);
    by_time_.erase(first);
    return key;
  }
  void Close() {
    absl::MutexLock lock(&mu_);
    closed_ = true;
  }
  size_t size() const {
    absl::MutexLock lock(&mu_);
    return due_.size();
  }

 private:
  replication::Clock& clock_;
  mutable absl::Mutex mu_;
  std::map<std::string, int64_t> due_ ABSL_GUARDED_BY(mu_);
  std::set<std::pair<int64_t, std::string>> by_time_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace abode::kube

#endif  // ABODE_KUBE_WORK_QUEUE_H_

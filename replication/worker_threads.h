// A few threads that run posted tasks: the raft node's completion threads, which answer callers off the
// raft loop so that answering gRPC calls never holds up raft, and the service layer's read executor.
//
// Thread safety: Post is thread-safe. Tasks run in the order posted on each thread; tasks posted before
// destruction all run before the threads stop.
#ifndef ABODE_REPLICATION_WORKER_THREADS_H_
#define ABODE_REPLICATION_WORKER_THREADS_H_

#include <cstddef>
#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"

namespace abode::replication {

class WorkerThreads {
 public:
  using Task = absl::AnyInvocable<void() &&>;
  // `name` names the threads (at most 15 characters). `on_start`, if set, runs once on each new thread before
  // it takes any task (e.g. to lower the thread's priority); the constructor returns once it ran on all.
  WorkerThreads(size_t threads, const char* name, const std::function<void()>& on_start = nullptr);
  WorkerThreads(const WorkerThreads&) = delete;
  WorkerThreads& operator=(const WorkerThreads&) = delete;
  ~WorkerThreads();

  void Post(Task task) ABSL_LOCKS_EXCLUDED(mu_);
  size_t size() const { return threads_.size(); }

 private:
  void Run() ABSL_LOCKS_EXCLUDED(mu_);

  absl::Mutex mu_;
  std::deque<Task> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

// How the answers to one applied entry's callers are spread over the completion threads: chunk sizes, in
// order, summing to `answers`; at most `threads` chunks, never smaller than kMinAnswersPerChunk (one more
// thread's wake-up costs more than a few answers), sizes differing by at most one. Answering a caller is
// mostly gRPC's work (~8 µs), so one thread answering a 50-caller entry alone keeps the last of them waiting
// ~0.4 ms while the other thread idles, and the whole cohort comes back later with its next requests.
inline constexpr size_t kMinAnswersPerChunk = 8;
std::vector<size_t> AnswerChunks(size_t answers, size_t threads);

}  // namespace abode::replication

#endif  // ABODE_REPLICATION_WORKER_THREADS_H_

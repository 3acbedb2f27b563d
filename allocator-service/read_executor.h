// The read executor: the threads that run linearizable and stale reads' queries and the checksum dump, apart
// from the raft node's completion threads that answer writes, so that a long read never delays an Allocate
// acknowledgement.
//
// Thread safety: Post is thread-safe. Each task runs on one of the executor's threads, after the observer
// (if any) ran on that same thread.
#ifndef ABODE_ALLOCATOR_SERVICE_READ_EXECUTOR_H_
#define ABODE_ALLOCATOR_SERVICE_READ_EXECUTOR_H_

#include <cstddef>
#include <functional>
#include <utility>

#include "replication/worker_threads.h"

namespace abode::allocator {

class ReadExecutor {
 public:
  using Task = replication::WorkerThreads::Task;
  // `name` names the threads (at most 15 characters). `observer`, if set, runs on the executing thread before
  // every task (tests record where reads run with it); it must be thread-safe.
  ReadExecutor(size_t threads, const char* name, std::function<void()> observer = nullptr)
      : observer_(std::move(observer)), threads_(threads, name) {}

  void Post(Task task) {
    if (!observer_) {
      threads_.Post(std::move(task));
      return;
    }
    threads_.Post([this, task = std::move(task)]() mutable {
      observer_();
      std::move(task)();
    });
  }
  size_t size() const { return threads_.size(); }

 private:
  const std::function<void()> observer_;
  replication::WorkerThreads threads_;  // last: its threads stop before observer_ goes
};

}  // namespace abode::allocator

#endif  // ABODE_ALLOCATOR_SERVICE_READ_EXECUTOR_H_

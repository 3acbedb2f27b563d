#include "replication/worker_threads.h"

#include <algorithm>
#include <utility>

#include <pthread.h>

#include "absl/synchronization/blocking_counter.h"

namespace abode::replication {

WorkerThreads::WorkerThreads(size_t threads, const char* name, const std::function<void()>& on_start) {
  absl::BlockingCounter started(static_cast<int>(threads));
  for (size_t i = 0; i < threads; ++i) {
    threads_.emplace_back([this, name, &on_start, &started] {
      pthread_setname_np(pthread_self(), name);
      if (on_start) on_start();
      started.DecrementCount();
      Run();
    });
  }
  started.Wait();
}

WorkerThreads::~WorkerThreads() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (auto& t : threads_) t.join();
}

void WorkerThreads::Post(Task task) {
  absl::MutexLock lock(&mu_);
  tasks_.push_back(std::move(task));
}

void WorkerThreads::Run() {
  for (;;) {
    Task task;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](WorkerThreads* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
            return self->stopping_ || !self->tasks_.empty();
          },
          this));
      if (tasks_.empty()) return;
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    std::move(task)();
  }
}

std::vector<size_t> AnswerChunks(size_t answers, size_t threads) {
  if (answers == 0) return {};
  const size_t chunks = std::clamp<size_t>(answers / kMinAnswersPerChunk, 1, std::max<size_t>(threads, 1));
  std::vector<size_t> sizes(chunks, answers / chunks);
  for (size_t i = 0; i < answers % chunks; ++i) ++sizes[i];
  return sizes;
}

}  // namespace abode::replication

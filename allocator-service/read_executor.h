// The read executor: the threads that run linearizable and stale reads' queries and the checksum dump, apart
// from the raft node's completion threads that answer writes, so that a long read never delays an Allocate
// acknowledgement.
//
// Reads also yield the CPU to writes: the read threads run at a lower priority (`--read-sched`: SCHED_IDLE
// by default, or a higher nice value, `--read-nice`), so that a listing of 1,000,000 allocations takes only
// the CPU that the writers leave. SCHED_IDLE rather than nice 19 because the kernel's rule is that a thread
// waking up to carry a write takes the CPU from an idle-class thread at once (for a nice-19 thread that is
// left to the fair scheduler's arithmetic), because the scheduler places a waking thread on a CPU that runs
// only idle-class threads as on an idle one, and because the class weighs 3 against nice 19's 15. Within
// the process's CPU group only: see ThreadPriority::cgroup for the rest of the machine. Work on a read thread therefore never calls into gRPC: threads that gRPC starts from
// inside a call inherit the caller's policy and nice value, and would then answer writes at the readers'
// priority. Replies (Finish, which serialises the response) run on one reply thread at the priority of the
// thread that built the executor; a large response is serialised on the read thread beforehand (see
// AllocatorService).
//
// Thread safety: every method is thread-safe. Each posted read runs on one of the read threads, after the
// observer (if any) ran on that same thread; each reply runs on the reply thread.
#ifndef ABODE_ALLOCATOR_SERVICE_READ_EXECUTOR_H_
#define ABODE_ALLOCATOR_SERVICE_READ_EXECUTOR_H_

#include <cstddef>
#include <functional>
#include <utility>

#include "allocator-service/thread_priority.h"
#include "replication/worker_threads.h"

namespace abode::allocator {

class ReadExecutor {
 public:
  using Task = replication::WorkerThreads::Task;
  // `threads` read threads named `name` (at most 15 characters) at `priority` (kept at the process's own
  // when the kernel refuses it, with a warning). `observer`, if set, runs on the executing thread before
  // every read (tests record where reads run with it); it must be thread-safe.
  ReadExecutor(size_t threads, const char* name, ThreadPriority priority = {},
               std::function<void()> observer = nullptr);

  // Runs `task` on a read thread.
  void Post(Task task);
  // Runs `task` on the reply thread: where a read's answer goes back to gRPC.
  void Reply(Task task) { replies_.Post(std::move(task)); }
  size_t size() const { return reads_.size(); }

 private:
  const std::function<void()> observer_;
  replication::WorkerThreads replies_;
  replication::WorkerThreads reads_;  // last: its threads stop (their replies posted) before replies_ and observer_ go
};

}  // namespace abode::allocator

#endif  // ABODE_ALLOCATOR_SERVICE_READ_EXECUTOR_H_

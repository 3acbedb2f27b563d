// The CPU priority of single threads. On Linux a thread's nice value is its own: setpriority(PRIO_PROCESS)
// on a thread id changes that thread only, and threads it starts later inherit it.
#ifndef ABODE_ALLOCATOR_SERVICE_THREAD_PRIORITY_H_
#define ABODE_ALLOCATOR_SERVICE_THREAD_PRIORITY_H_

#include <sys/types.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace abode::allocator {

inline constexpr int kMinNice = -20;
inline constexpr int kMaxNice = 19;

// Sets the calling thread's nice value. Raising it (lower priority) needs no privilege; lowering it below
// the current value needs CAP_SYS_NICE.
absl::Status SetThisThreadNice(int nice);

// The nice value of thread `tid` of this process, as the kernel reports it (/proc/self/task/TID/stat).
absl::StatusOr<int> ThreadNice(pid_t tid);

}  // namespace abode::allocator

#endif  // ABODE_ALLOCATOR_SERVICE_THREAD_PRIORITY_H_

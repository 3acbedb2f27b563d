// The CPU priority of single threads. On Linux a thread's scheduling policy and nice value are its own:
// sched_setscheduler and setpriority(PRIO_PROCESS) on a thread id change that thread only, and threads it
// starts later inherit both.
#ifndef ABODE_ALLOCATOR_SERVICE_THREAD_PRIORITY_H_
#define ABODE_ALLOCATOR_SERVICE_THREAD_PRIORITY_H_

#include <sys/types.h>

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace abode::allocator {

inline constexpr int kMinNice = -20;
inline constexpr int kMaxNice = 19;

// Sets the calling thread's nice value. Raising it (lower priority) needs no privilege; lowering it below
// the current value needs CAP_SYS_NICE.
absl::Status SetThisThreadNice(int nice);

// Puts the calling thread in the SCHED_IDLE class: it runs only when no normal thread wants its CPU, a
// normal thread that wakes up takes the CPU from it at once, and the scheduler counts a CPU that runs only
// such threads as idle when it places a waking thread. No privilege is needed.
absl::Status SetThisThreadIdle();

// A thread's policy and nice value rank it only among the threads of its own CPU cgroup (with autogroups,
// its session): the group as a whole competes with the other groups for its share, and every thread's CPU
// time counts against that share. So on a busy machine an idle-class reader still takes CPU from the writers
// of its group. A thread in a cgroup of its own whose cpu.idle is 1 does not: that group gets only CPU that
// no other group wants.
//
// Moves the calling thread into the cgroup `dir` (a directory of the cpu controller's hierarchy): its tid
// is written to dir/cgroup.threads (cgroup v2, where `dir` must be a threaded child of the process's own
// cgroup) or else dir/tasks (cgroup v1).
absl::Status JoinCgroup(const std::string& dir);
// Whether `dir` is a cgroup this process can move threads into (the file JoinCgroup writes is writable).
absl::Status CheckCgroup(const std::string& dir);
// The path of thread `tid`'s cgroup in the cpu controller's hierarchy ("/" for the root), from
// /proc/self/task/TID/cgroup (the v1 line that names "cpu", else the v2 line).
absl::StatusOr<std::string> ThreadCpuCgroup(pid_t tid);

// How a group of threads yields the CPU to the rest of the process.
struct ThreadPriority {
  bool idle = false;   // SCHED_IDLE (then `nice` plays no part)
  int nice = 0;        // with the normal policy: the nice value (0: the process's own)
  std::string cgroup;  // a cgroup to join (see JoinCgroup); empty: the process's own
};
// Applies `priority` to the calling thread (the cgroup first; the policy and nice value even when the
// cgroup refuses it); a nice value of 0 leaves the nice value as it is.
absl::Status SetThisThreadPriority(const ThreadPriority& priority);

// The nice value of thread `tid` of this process, as the kernel reports it (/proc/self/task/TID/stat).
absl::StatusOr<int> ThreadNice(pid_t tid);
// The scheduling policy of thread `tid` of this process (SCHED_OTHER, SCHED_IDLE, ...), likewise.
absl::StatusOr<int> ThreadPolicy(pid_t tid);

}  // namespace abode::allocator

#endif  // ABODE_ALLOCATOR_SERVICE_THREAD_PRIORITY_H_

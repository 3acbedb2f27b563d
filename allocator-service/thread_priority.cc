#include "allocator-service/thread_priority.h"

#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"

namespace abode::allocator {

absl::Status SetThisThreadNice(int nice) {
  if (nice < kMinNice || nice > kMaxNice) {
    return absl::InvalidArgumentError(absl::StrCat("nice: ", nice, " is outside ", kMinNice, "..", kMaxNice));
  }
  if (setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), nice) != 0) {
    const int err = errno;
    return absl::ErrnoToStatus(err, absl::StrCat("setpriority(nice ", nice, ")"));
  }
  return absl::OkStatus();
}

absl::Status SetThisThreadIdle() {
  struct sched_param param {};
  if (sched_setscheduler(0, SCHED_IDLE, &param) != 0) {
    const int err = errno;
    return absl::ErrnoToStatus(err, "sched_setscheduler(SCHED_IDLE)");
  }
  return absl::OkStatus();
}

absl::Status SetThisThreadPriority(const ThreadPriority& priority) {
  if (priority.idle) return SetThisThreadIdle();
  if (priority.nice == 0) return absl::OkStatus();
  return SetThisThreadNice(priority.nice);
}

namespace {

// Field `n` (numbered as in proc_pid_stat(5), n >= 3) of /proc/self/task/TID/stat, as an integer.
absl::StatusOr<int> ThreadStatField(pid_t tid, int n) {
  const std::string path = absl::StrCat("/proc/self/task/", tid, "/stat");
  std::ifstream in(path);
  std::string stat;
  if (!in || !std::getline(in, stat)) return absl::NotFoundError(absl::StrCat(path, ": cannot be read"));
  // "TID (COMM) STATE ..." where COMM may hold spaces and parentheses: the fields start after the last ')'.
  // After it, STATE is field 3.
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return absl::DataLossError(absl::StrCat(path, ": no command name"));
  std::istringstream fields(stat.substr(close + 1));
  std::string field;
  for (int i = 3; i <= n; ++i) {
    if (!(fields >> field)) return absl::DataLossError(absl::StrCat(path, ": fewer than ", n, " fields"));
  }
  int value = 0;
  try {
    value = std::stoi(field);
  } catch (const std::exception&) {
    return absl::DataLossError(absl::StrCat(path, ": field ", n, " is ", field));
  }
  return value;
}

}  // namespace

absl::StatusOr<int> ThreadNice(pid_t tid) { return ThreadStatField(tid, 19); }

absl::StatusOr<int> ThreadPolicy(pid_t tid) { return ThreadStatField(tid, 41); }

}  // namespace abode::allocator

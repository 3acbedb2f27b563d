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

namespace {

// The file of `dir` that takes thread ids: cgroup.threads (v2) or tasks (v1).
std::string ThreadsFile(const std::string& dir) {
  const std::string v2 = dir + "/cgroup.threads";
  return access(v2.c_str(), F_OK) == 0 ? v2 : dir + "/tasks";
}

}  // namespace

absl::Status CheckCgroup(const std::string& dir) {
  const std::string file = ThreadsFile(dir);
  if (access(file.c_str(), W_OK) != 0) {
    const int err = errno;
    return absl::ErrnoToStatus(err, absl::StrCat(dir, ": not a cgroup this process can move threads into (",
                                                 file, ")"));
  }
  return absl::OkStatus();
}

absl::Status JoinCgroup(const std::string& dir) {
  const std::string file = ThreadsFile(dir);
  std::ofstream out(file);
  out << gettid() << std::flush;
  if (!out) return absl::PermissionDeniedError(absl::StrCat(file, ": the thread could not join the cgroup"));
  return absl::OkStatus();
}

absl::StatusOr<std::string> ThreadCpuCgroup(pid_t tid) {
  const std::string path = absl::StrCat("/proc/self/task/", tid, "/cgroup");
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot be read"));
  std::string line;
  std::string v2;
  // Lines are "ID:CONTROLLERS:PATH"; v2's is "0::PATH".
  while (std::getline(in, line)) {
    const size_t a = line.find(':');
    const size_t b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1);
    if (controllers.empty()) v2 = line.substr(b + 1);
    std::istringstream names(controllers);
    for (std::string name; std::getline(names, name, ',');) {
      if (name == "cpu") return line.substr(b + 1);
    }
  }
  if (v2.empty()) return absl::NotFoundError(absl::StrCat(path, ": no cpu cgroup"));
  return v2;
}

absl::Status SetThisThreadPriority(const ThreadPriority& priority) {
  // The policy applies even when the cgroup refuses the thread: the first error is the one returned.
  absl::Status joined = priority.cgroup.empty() ? absl::OkStatus() : JoinCgroup(priority.cgroup);
  absl::Status ranked = absl::OkStatus();
  if (priority.idle) {
    ranked = SetThisThreadIdle();
  } else if (priority.nice != 0) {
    ranked = SetThisThreadNice(priority.nice);
  }
  return joined.ok() ? ranked : joined;
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

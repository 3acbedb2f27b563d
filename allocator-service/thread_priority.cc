#include "allocator-service/thread_priority.h"

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

absl::StatusOr<int> ThreadNice(pid_t tid) {
  const std::string path = absl::StrCat("/proc/self/task/", tid, "/stat");
  std::ifstream in(path);
  std::string stat;
  if (!in || !std::getline(in, stat)) return absl::NotFoundError(absl::StrCat(path, ": cannot be read"));
  // "TID (COMM) STATE ..." where COMM may hold spaces and parentheses: the fields start after the last ')'.
  // After it, STATE is field 3 of stat(5) and the nice value field 19.
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return absl::DataLossError(absl::StrCat(path, ": no command name"));
  std::istringstream fields(stat.substr(close + 1));
  std::string field;
  for (int i = 3; i <= 19; ++i) {
    if (!(fields >> field)) return absl::DataLossError(absl::StrCat(path, ": fewer than 19 fields"));
  }
  int nice = 0;
  try {
    nice = std::stoi(field);
  } catch (const std::exception&) {
    return absl::DataLossError(absl::StrCat(path, ": nice field is ", field));
  }
  return nice;
}

}  // namespace abode::allocator

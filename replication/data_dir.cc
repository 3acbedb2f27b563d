#include "replication/data_dir.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace abode::replication {

absl::Status MakeDir(const std::string& path) {
  if (::mkdir(path.c_str(), 0750) != 0 && errno != EEXIST) {
    return absl::FailedPreconditionError(absl::StrCat("data dir: cannot create ", path, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

bool RaftLogIsPristine(const std::string& data_dir) {
  return ::access((data_dir + "/raft/metadata1").c_str(), F_OK) != 0 &&
         ::access((data_dir + "/raft/metadata2").c_str(), F_OK) != 0;
}

DirLock::~DirLock() {
  if (fd_ >= 0) ::close(fd_);
}

absl::Status DirLock::Acquire(const std::string& dir) {
  const std::string path = dir + "/LOCK";
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640);
  if (fd_ < 0) return absl::FailedPreconditionError(absl::StrCat("data dir: open ", path, ": ", std::strerror(errno)));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("data dir: ", dir, " is in use by another abode-allocator process"));
  }
  return absl::OkStatus();
}

}  // namespace abode::replication

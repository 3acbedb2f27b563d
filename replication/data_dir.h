// A replica's data directory: made on first use and locked for as long as one process uses it, so two
// processes never share one raft log.
#ifndef ABODE_REPLICATION_DATA_DIR_H_
#define ABODE_REPLICATION_DATA_DIR_H_

#include <string>

#include "absl/status/status.h"

namespace abode::replication {

// Creates `path` (mode 0750) unless it exists.
absl::Status MakeDir(const std::string& path);

// True when `data_dir` holds no raft log yet: c-raft writes its metadata files the first time it starts on a
// directory. Such a member has never started (or was wiped).
bool RaftLogIsPristine(const std::string& data_dir);

// An exclusive lock (flock) on DIR/LOCK, released when the object goes. Not thread-safe.
class DirLock {
 public:
  DirLock() = default;
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;
  ~DirLock();
  // FAILED_PRECONDITION when another process holds the lock.
  absl::Status Acquire(const std::string& dir);

 private:
  int fd_ = -1;
};

}  // namespace abode::replication

#endif  // ABODE_REPLICATION_DATA_DIR_H_

// Runs SQLite's WAL checkpoints on a thread of their own. By default the connection that commits the
// transaction which crosses the checkpoint threshold also copies the WAL back into the database file and
// syncs it, in the middle of the writer's work; for abode that is the raft loop thread, which then stalls
// every caller. The checkpointer turns that off on the writer and instead, after a commit leaves at least
// `threshold_pages` in the WAL, checkpoints from its own connection. Passive checkpoints never block the
// writer or readers; a checkpoint that could not copy everything (a reader still needs old frames) is
// retried after the next commit. The writer starts the WAL over once all of it has been copied.
#ifndef ABODE_STORAGE_WAL_CHECKPOINTER_H_
#define ABODE_STORAGE_WAL_CHECKPOINTER_H_

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "storage/sqlite.h"

namespace abode::storage {

class WalCheckpointer {
 public:
  // Attaches to `writer`, a connection in WAL mode to the database at `path`. `writer` must outlive the
  // checkpointer, and the checkpointer must be destroyed on the writer's thread (or while it is idle).
  static absl::StatusOr<std::unique_ptr<WalCheckpointer>> Start(Database& writer, const std::string& path,
                                                                int threshold_pages = 1000);
  ~WalCheckpointer();  // detaches (the writer checkpoints itself again, every 1000 pages) and stops the thread

  WalCheckpointer(const WalCheckpointer&) = delete;
  WalCheckpointer& operator=(const WalCheckpointer&) = delete;

  struct Stats {
    uint64_t checkpoints = 0;     // checkpoints run
    uint64_t pages_copied = 0;    // WAL frames copied into the database file
    uint64_t failures = 0;        // checkpoints that returned an error
  };
  Stats stats();

 private:
  WalCheckpointer(Database& writer, Database own, int threshold_pages);
  static int OnCommit(void* self, sqlite3* db, const char* schema, int wal_pages);
  void Run();

  Database& writer_;
  Database own_;
  const int threshold_pages_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool wanted_ = false;    // guarded by mu_
  bool stopping_ = false;  // guarded by mu_
  Stats stats_;            // guarded by mu_
  std::thread thread_;
};

}  // namespace abode::storage

#endif  // ABODE_STORAGE_WAL_CHECKPOINTER_H_

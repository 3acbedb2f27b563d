#include "storage/wal_checkpointer.h"

#include <utility>

#include "storage/thread_name.h"

namespace abode::storage {
namespace {

constexpr int kSqliteDefaultAutocheckpointPages = 1000;  // SQLITE_DEFAULT_WAL_AUTOCHECKPOINT

}  // namespace

absl::StatusOr<std::unique_ptr<WalCheckpointer>> WalCheckpointer::Start(Database& writer, const std::string& path,
                                                                        int threshold_pages) {
  auto own = Database::Open(path, /*read_only=*/false);
  if (!own.ok()) return own.status();
  // The same durability as the writer: a checkpoint syncs the WAL before copying and the database after.
  if (absl::Status s = own->Exec("PRAGMA synchronous = NORMAL"); !s.ok()) return s;
  std::unique_ptr<WalCheckpointer> c(new WalCheckpointer(writer, std::move(*own), threshold_pages));
  // Replaces the writer's automatic checkpoints (which SQLite implements with this same hook).
  sqlite3_wal_hook(writer.handle(), &WalCheckpointer::OnCommit, c.get());
  c->thread_ = std::thread([p = c.get()] {
    NameThisThread("abode-ckpt");
    p->Run();
  });
  return c;
}

WalCheckpointer::WalCheckpointer(Database& writer, Database own, int threshold_pages)
    : writer_(writer), own_(std::move(own)), threshold_pages_(threshold_pages) {}

WalCheckpointer::~WalCheckpointer() {
  sqlite3_wal_autocheckpoint(writer_.handle(), kSqliteDefaultAutocheckpointPages);
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

int WalCheckpointer::OnCommit(void* self, sqlite3* /*db*/, const char* /*schema*/, int wal_pages) {
  auto* c = static_cast<WalCheckpointer*>(self);
  if (wal_pages < c->threshold_pages_) return SQLITE_OK;
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(c->mu_);
    wake = !std::exchange(c->wanted_, true);
  }
  if (wake) c->cv_.notify_one();
  return SQLITE_OK;
}

void WalCheckpointer::Run() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || wanted_; });
      if (stopping_) return;
      wanted_ = false;
    }
    int wal_frames = 0;
    int copied = 0;
    const int rc = sqlite3_wal_checkpoint_v2(own_.handle(), "main", SQLITE_CHECKPOINT_PASSIVE, &wal_frames, &copied);
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.checkpoints;
    if (rc == SQLITE_OK) {
      stats_.pages_copied += static_cast<uint64_t>(copied > 0 ? copied : 0);
    } else {
      ++stats_.failures;
    }
  }
}

WalCheckpointer::Stats WalCheckpointer::stats() {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

}  // namespace abode::storage

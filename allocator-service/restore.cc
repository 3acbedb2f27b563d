#include "allocator-service/restore.h"

#include <filesystem>
#include <system_error>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "allocator-service/store_state_machine.h"
#include "replication/data_dir.h"
#include "replication/membership.h"
#include "replication/offline_tools.h"
#include "storage/backup_file.h"
#include "storage/snapshot.h"

namespace abode::allocator {
namespace {

namespace fs = std::filesystem;

// Whether `dir` holds anything but `except`.
bool HoldsAnything(const std::string& dir, const std::string& except = "") {
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
    if (e.path().filename() != except) return true;
  }
  return false;
}

// The store's state at the backup's, verified by its checksum.
absl::Status RestoreState(const std::string& db_path, const storage::Backup& backup) {
  auto store = StoreStateMachine::Open(db_path, /*reuse_existing=*/false, nullptr);
  if (!store.ok()) return store.status();
  // Index 1: the configuration entry the log starts with; every command after it applies on top.
  if (absl::Status s = (*store)->Restore(backup.snapshot, 1); !s.ok()) return s;
  auto pinned = (*store)->PinState();
  if (!pinned.ok()) return pinned.status();
  auto dump = (*pinned)->Dump();
  if (!dump.ok()) return dump.status();
  if (const uint64_t sum = storage::Fnv1a64(*dump); sum != backup.header.checksum()) {
    return absl::DataLossError(absl::StrFormat(
        "restore: the restored state's checksum is %016x, the backup's %016x", sum, backup.header.checksum()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<v1::BackupHeader> RestoreFromBackup(const std::string& file, const replication::RaftNodeOptions& raft) {
  const std::string& dir = raft.data_dir;
  std::vector<replication::Member> members;
  if (raft.peers.empty()) {
    replication::Member self;
    self.id = raft.id;
    self.raft_address = raft.raft_address;
    members.push_back(self);
  } else if (const replication::Member* self = replication::FindMember(raft.peers, raft.id); self != nullptr) {
    members.push_back(*self);
  } else {
    return absl::InvalidArgumentError(absl::StrCat("--peers: no entry for this member's id ", raft.id));
  }
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::is_directory(dir, ec)) {
    return absl::InvalidArgumentError(absl::StrCat("--data-dir: ", dir, " is not a folder"));
  }
  if (HoldsAnything(dir)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "--data-dir: ", dir, " is not empty; a restore makes a fresh store and never replaces one (move it aside)"));
  }
  auto backup = storage::ReadBackupFile(file);
  if (!backup.ok()) {
    return absl::Status(backup.status().code(), absl::StrCat("--restore-from: ", backup.status().message()));
  }

  if (absl::Status s = replication::MakeDir(dir); !s.ok()) return s;
  replication::DirLock lock;
  if (absl::Status s = lock.Acquire(dir); !s.ok()) return s;
  if (HoldsAnything(dir, "LOCK")) {
    return absl::FailedPreconditionError(absl::StrCat("--data-dir: ", dir, " was written to during the restore"));
  }
  absl::Status s = replication::MakeDir(dir + "/raft");
  if (s.ok()) s = RestoreState(dir + "/state.db", *backup);
  if (s.ok()) s = replication::BootstrapFromSnapshot(dir, raft.id, members, backup->snapshot);
  if (!s.ok()) {
    // The folder was empty: leave it so, for another attempt.
    for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
      if (e.path().filename() != "LOCK") fs::remove_all(e.path(), ec);
    }
    fs::remove(fs::path(dir) / "LOCK", ec);
    return s;
  }
  return backup->header;
}

}  // namespace abode::allocator

// Snapshot encoding of the state (format in proto/abode/v1/snapshot.proto).
#ifndef ABODE_STORAGE_SNAPSHOT_H_
#define ABODE_STORAGE_SNAPSHOT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"
#include "storage/sqlite.h"

namespace abode::storage {

inline constexpr char kSnapshotMagic[8] = {'A', 'B', 'O', 'D', 'E', 'S', 'N', 'P'};
inline constexpr uint32_t kSnapshotFormatVersion = 1;

// The version of the state a snapshot carries (its records and what they mean), in each snapshot's header.
// A snapshot of a newer state version is refused. It changes only when the state does, not with the SQLite
// indexes of the schema (schema version 4 dropped an index and kept the state of version 3), so that members
// of one cluster keep exchanging snapshots across a rolling upgrade.
inline constexpr uint32_t kStateVersion = 3;

// Serialises the database's state. Reads inside one read transaction of `db`, so it may run on a connection
// other than the writer's and see one consistent state while the writer goes on.
absl::StatusOr<std::string> DumpSnapshot(Database& db);
// The same inside a read transaction the caller already holds on `db`.
absl::StatusOr<std::string> DumpSnapshotInTransaction(Database& db);

// The state frozen at the moment it is pinned, on a connection of its own. The raft loop pins between two
// applies, which costs one read; another thread then serialises that state while the loop goes on
// applying (SQLite's WAL keeps the pinned pages until the pin is released). Not thread-safe: one thread at
// a time.
class PinnedState {
 public:
  static absl::StatusOr<std::unique_ptr<PinnedState>> Pin(const std::string& db_path);
  ~PinnedState();  // releases the pin
  PinnedState(const PinnedState&) = delete;
  PinnedState& operator=(const PinnedState&) = delete;

  absl::StatusOr<std::string> Dump();  // DumpSnapshot of the pinned state

 private:
  explicit PinnedState(Database db) : db_(std::move(db)) {}
  Database db_;
  bool open_ = false;
};

// Replaces the contents of `db` with the snapshot. REQUIRES: the caller holds a write transaction on `db`.
// Refuses unknown magic, format versions and truncated input with FAILED_PRECONDITION / DATA_LOSS.
absl::Status LoadSnapshot(Database& db, absl::string_view snapshot);

}  // namespace abode::storage

#endif  // ABODE_STORAGE_SNAPSHOT_H_

// Snapshot encoding of the state (format in proto/abode/v1/snapshot.proto).
#ifndef ABODE_STORAGE_SNAPSHOT_H_
#define ABODE_STORAGE_SNAPSHOT_H_

#include <cstdint>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"
#include "storage/sqlite.h"

namespace abode::storage {

inline constexpr char kSnapshotMagic[8] = {'A', 'B', 'O', 'D', 'E', 'S', 'N', 'P'};
inline constexpr uint32_t kSnapshotFormatVersion = 1;

// Serialises the database's state. Reads inside one read transaction of `db`, so it may run on a connection
// other than the writer's and see one consistent state while the writer goes on.
absl::StatusOr<std::string> DumpSnapshot(Database& db);

// Replaces the contents of `db` with the snapshot. REQUIRES: the caller holds a write transaction on `db`.
// Refuses unknown magic, format versions and truncated input with FAILED_PRECONDITION / DATA_LOSS.
absl::Status LoadSnapshot(Database& db, absl::string_view snapshot);

}  // namespace abode::storage

#endif  // ABODE_STORAGE_SNAPSHOT_H_

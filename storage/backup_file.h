// The backup file (abodectl backup, abode-allocator --restore-from): the 8-byte magic "ABODEBAK", a
// little-endian uint32 format version, a varint-length-delimited v1::BackupHeader, then the state snapshot
// (snapshot.proto's encoding) of header.size bytes. The header's checksum (FNV-1a 64 of the snapshot) is
// what Cluster.Checksum reports for the same state, so a restored store can be compared with the original.
#ifndef ABODE_STORAGE_BACKUP_FILE_H_
#define ABODE_STORAGE_BACKUP_FILE_H_

#include <cstdint>
#include <string>

#include "abode/v1/cluster.pb.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace abode::storage {

inline constexpr char kBackupMagic[8] = {'A', 'B', 'O', 'D', 'E', 'B', 'A', 'K'};
inline constexpr uint32_t kBackupFormatVersion = 1;

// FNV-1a, 64 bits: stable across processes and builds, unlike absl::Hash.
uint64_t Fnv1a64(absl::string_view data);

struct Backup {
  v1::BackupHeader header;
  std::string snapshot;
};

// Checks that `snapshot` is what `header` describes (size, checksum): DATA_LOSS naming the difference.
absl::Status VerifyBackup(const v1::BackupHeader& header, absl::string_view snapshot);

// Writes the backup to `path` atomically: a temporary file beside it (mode 0600), written, fsynced and
// renamed over `path`, then the folder fsynced. Refuses a snapshot its header does not describe. On failure
// `path` is untouched and the temporary file removed.
absl::Status WriteBackupFile(const std::string& path, const Backup& backup);

// Reads and verifies a backup file: NOT_FOUND / PERMISSION_DENIED when it cannot be read, FAILED_PRECONDITION
// for a file that is not a backup or of a newer format, DATA_LOSS when it is truncated or its checksum
// differs.
absl::StatusOr<Backup> ReadBackupFile(const std::string& path);

}  // namespace abode::storage

#endif  // ABODE_STORAGE_BACKUP_FILE_H_

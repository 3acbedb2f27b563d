// abode-allocator --restore-from FILE: a fresh store in an empty data dir from a backup (abodectl backup).
// state.db holds the backup's state, and the raft log starts with a snapshot of it whose configuration is this
// member alone, so the member starts as a one-member cluster with that state; with --peers the others then
// start empty, are added, and receive it by snapshot install (docs/replication.md, "Backup and restore").
#ifndef ABODE_ALLOCATOR_SERVICE_RESTORE_H_
#define ABODE_ALLOCATOR_SERVICE_RESTORE_H_

#include <string>

#include "abode/v1/cluster.pb.h"
#include "absl/status/statusor.h"
#include "replication/raft_node_options.h"

namespace abode::allocator {

// Restores `file` into raft.data_dir for member raft.id (its configuration address from raft.peers, or
// raft.raft_address for a single voter). Refuses a data dir that holds anything (FAILED_PRECONDITION) and a
// damaged or unknown file (DATA_LOSS, FAILED_PRECONDITION); checks that the restored store's checksum is the
// backup's. On failure the data dir is left empty. Returns the backup's header.
absl::StatusOr<v1::BackupHeader> RestoreFromBackup(const std::string& file, const replication::RaftNodeOptions& raft);

}  // namespace abode::allocator

#endif  // ABODE_ALLOCATOR_SERVICE_RESTORE_H_

// Tools that work on a member's raft log while the member is down (its data dir stays locked meanwhile):
// reading where the log stands, to pick the survivor to recover, and rewriting its configuration after a
// majority of the members is lost for good. See docs/replication.md.
#ifndef ABODE_REPLICATION_OFFLINE_TOOLS_H_
#define ABODE_REPLICATION_OFFLINE_TOOLS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "replication/membership.h"

namespace abode::replication {

// What a member's raft log holds, read while the member is down (to pick the survivor to recover).
struct RaftLogState {
  uint64_t term = 0;            // the member's current term
  uint64_t voted_for = 0;       // in that term; 0: none
  uint64_t last_index = 0;      // of the newest entry (or of the snapshot, when no entry follows it)
  uint64_t last_term = 0;       // the term of that entry
  uint64_t snapshot_index = 0;  // 0: no snapshot
};
absl::StatusOr<RaftLogState> ReadRaftLogState(const std::string& data_dir, uint64_t id);

// Disaster recovery after a majority of the members is lost for good: appends to the raft log in `data_dir`
// a configuration of `members` alone (c-raft's raft_recover), so that they can elect a leader without the
// lost ones. REQUIRES: no member is running; run it once, on the survivor with the newest log (highest term,
// then longest log), which must be among `members`. See docs/replication.md.
absl::Status RecoverConfiguration(const std::string& data_dir, uint64_t id, const std::vector<Member>& members);

// A new member's raft log that starts with a snapshot of `state` (a state snapshot, storage's encoding) at
// index 1, term 1, whose configuration is `members`; written without starting the member, as a follower
// installs a snapshot. A store restored from a backup (abode-allocator --restore-from) then starts as that
// configuration, and members added later receive the state by snapshot install. `members` holds `id`; a
// single voter's configuration address is its raft address alone (grpc_address empty). REQUIRES:
// `data_dir` holds no raft log, and the caller holds its lock (DirLock).
absl::Status BootstrapFromSnapshot(const std::string& data_dir, uint64_t id, const std::vector<Member>& members,
                                   const std::string& state);

}  // namespace abode::replication

#endif  // ABODE_REPLICATION_OFFLINE_TOOLS_H_

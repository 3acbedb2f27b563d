// A checksum of a replica's whole state at its applied index, to compare replicas (Cluster.Checksum).
// The state is pinned on the raft loop between two applies (one read) and serialised and hashed on the
// read executor, never on the raft loop or the threads that answer writes.
#ifndef ABODE_ALLOCATOR_SERVICE_STATE_CHECKSUM_H_
#define ABODE_ALLOCATOR_SERVICE_STATE_CHECKSUM_H_

#include <cstdint>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "allocator-service/service_calls.h"
#include "allocator-service/store_state_machine.h"
#include "replication/raft_node.h"
#include "storage/backup_file.h"

namespace abode::allocator {

struct StateChecksum {
  uint64_t applied_index = 0;
  uint64_t revision = 0;
  uint64_t checksum = 0;     // FNV-1a (64 bits) of the state's snapshot: equal states, equal checksums
  uint64_t allocations = 0;  // as the snapshot's trailer counts them
};

// The state's snapshot encoding at the applied index (Cluster.Backup).
struct StateSnapshot {
  uint64_t applied_index = 0;
  uint64_t revision = 0;
  std::string bytes;
};

// `done` runs once, on the read executor's reply thread (with UNAVAILABLE when the node stopped). All three
// outlive the call.
void TakeStateSnapshot(replication::RaftNode& node, StoreStateMachine& store, ReadExecutor& reads,
                       absl::AnyInvocable<void(absl::StatusOr<StateSnapshot>) &&> done);

// The same, hashed on the read thread: `done` runs like TakeStateSnapshot's.
void TakeStateChecksum(replication::RaftNode& node, StoreStateMachine& store, ReadExecutor& reads,
                       absl::AnyInvocable<void(absl::StatusOr<StateChecksum>) &&> done);

using storage::Fnv1a64;
// The allocation count from a state snapshot's trailer (its last record); 0 when it has none.
uint64_t SnapshotAllocations(absl::string_view snapshot);

}  // namespace abode::allocator

#endif  // ABODE_ALLOCATOR_SERVICE_STATE_CHECKSUM_H_

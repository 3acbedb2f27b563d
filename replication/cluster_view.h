// What a replica knows about its cluster, as the raft loop last published it.
#ifndef ABODE_REPLICATION_CLUSTER_VIEW_H_
#define ABODE_REPLICATION_CLUSTER_VIEW_H_

#include <cstdint>
#include <string>
#include <vector>

#include "replication/membership.h"
#include "replication/roles.h"

namespace abode::replication {

struct ClusterView {
  uint64_t id = 0;
  RaftRole role = RaftRole::kUnavailable;
  uint64_t term = 0;
  uint64_t leader_id = 0;
  std::string leader_grpc_address;
  uint64_t commit_index = 0;
  uint64_t applied_index = 0;
  uint64_t revision = 0;
  // A leader that applied its term's first entry, or a follower that knows a leader and caught up once.
  bool ready = false;
  std::vector<Member> members;  // with Member::role set
};

// What this replica's raft node has done.
struct ReplicationStats {
  uint64_t entries = 0;   // log entries proposed by this node
  uint64_t commands = 0;  // commands inside them
  uint64_t most_inflight_entries = 0;  // the most entries this node had proposed and not yet applied at once
  uint64_t applied_index = 0;
  uint64_t revision = 0;
};

// Where the service layer learns what the replica knows; implemented by RaftNode. Thread-safe: both
// return copies, refreshed by the raft loop every few milliseconds.
class ReplicaStatus {
 public:
  virtual ~ReplicaStatus() = default;
  virtual ClusterView view() = 0;
  virtual ReplicationStats stats() = 0;
};

}  // namespace abode::replication

#endif  // ABODE_REPLICATION_CLUSTER_VIEW_H_

// How a raft node is set up (raft_node.h).
#ifndef ABODE_REPLICATION_RAFT_NODE_OPTIONS_H_
#define ABODE_REPLICATION_RAFT_NODE_OPTIONS_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "replication/clock.h"
#include "replication/leader_link.h"
#include "replication/membership.h"
#include "tracing/tracer.h"

namespace abode::replication {

struct RaftNodeOptions {
  // Holds raft/ (log, snapshots). REQUIRES: the caller holds its DirLock (data_dir.h) while the node runs.
  std::string data_dir;
  uint64_t id = 1;                        // this member's raft id (> 0)
  // Where the raft transport listens (IPv4 HOST:PORT). With no peers it is also the member's address.
  std::string raft_address = "127.0.0.1:0";
  // The initial configuration, this member included. Empty: a single voter.
  std::vector<Member> peers;
  bool join = false;                      // never bootstrap: wait to be added to an existing cluster
  LeaderLink* leader_link = nullptr;      // required with peers; outlives the node
  unsigned election_timeout_ms = 1000;
  unsigned heartbeat_timeout_ms = 100;
  unsigned snapshot_threshold = 8192;     // least log entries between snapshots
  // Log bytes between snapshots per byte of the last snapshot (snapshot_pacer.h); 0: snapshot_threshold
  // entries exactly.
  double snapshot_log_ratio = 0.5;
  unsigned snapshot_trailing = 2048;      // entries kept after a snapshot
  size_t max_batch_commands = 2048;       // commands per log entry
  // Log entries the leader keeps proposed but not yet applied; proposals arriving meanwhile wait and go out
  // together in the next entry. 0: no limit (one entry per wake-up of the loop).
  size_t max_inflight_entries = 1;
  uint32_t command_format_version = 0;    // stamped into every batch; required (> 0)
  Clock* clock = nullptr;                 // stamps batch time; required; outlives the node
  // Records a span per proposed log entry (docs/tracing.md); null: none. Outlives the node.
  tracing::Tracer* tracer = nullptr;
};

}  // namespace abode::replication

#endif  // ABODE_REPLICATION_RAFT_NODE_OPTIONS_H_

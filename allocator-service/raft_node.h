// A replica's raft node: c-raft with its libuv disk and TCP I/O, running on one loop thread that also owns
// the state machine. Proposals from any thread are queued, and the loop drains the queue into one log
// entry per wake-up (group commit): many concurrent callers share one fsync and one SQLite transaction.
#ifndef ABODE_ALLOCATOR_SERVICE_RAFT_NODE_H_
#define ABODE_ALLOCATOR_SERVICE_RAFT_NODE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "allocator-service/clock.h"
#include "allocator-service/command_log.h"
#include "storage/state_reader.h"

namespace abode::allocator {

struct RaftNodeOptions {
  std::string data_dir;                   // holds raft/ (log, snapshots) and state.db (materialised state)
  uint64_t id = 1;                        // this member's raft id (> 0)
  std::string raft_address = "127.0.0.1:0";  // raft TCP address; port 0 is fine for a single voter
  unsigned election_timeout_ms = 1000;
  unsigned heartbeat_timeout_ms = 100;
  unsigned snapshot_threshold = 8192;     // entries between snapshots
  unsigned snapshot_trailing = 2048;      // entries kept after a snapshot
  size_t max_batch_commands = 2048;       // commands per log entry
  int64_t housekeeping_interval_ms = 1000;  // how often the leader looks for expired allocations
  int64_t history_retention_ms = int64_t{30} * 24 * 3600 * 1000;  // 0 keeps history forever
  Clock* clock = nullptr;                 // required; outlives the node
};

class RaftNode final : public CommandLog {
 public:
  // Opens the data dir, restores the snapshot, replays the log and returns once everything in the log is
  // applied and this node leads (a single voter). Bootstraps a fresh data dir exactly once.
  static absl::StatusOr<std::unique_ptr<RaftNode>> Start(const RaftNodeOptions& options);
  ~RaftNode() override;  // stops the loop; pending proposals fail with UNAVAILABLE

  void Propose(v1::Command command, Done done) override;

  storage::StateReader& reader() { return *reader_; }

  struct Stats {
    uint64_t entries = 0;   // log entries proposed by this node
    uint64_t commands = 0;  // commands inside them
    uint64_t applied_index = 0;
    uint64_t revision = 0;
  };
  Stats stats();  // thread-safe

  class Loop;  // the loop thread's state; defined in raft_node.cc

 private:
  explicit RaftNode(std::unique_ptr<Loop> loop);
  std::unique_ptr<Loop> loop_;
  std::unique_ptr<storage::StateReader> reader_;
};

}  // namespace abode::allocator

#endif  // ABODE_ALLOCATOR_SERVICE_RAFT_NODE_H_

// A replica's raft node: c-raft with its libuv disk and TCP I/O, running on one loop thread that also owns
// the state machine. Proposals from any thread are queued, and the loop drains the queue into one log
// entry per wake-up (group commit): many concurrent callers share one fsync and one SQLite transaction.
// On a follower the loop sends the drained queue to the leader as one forwarded group instead.
//
// Membership: with no peers the node is a single voter that bootstraps itself. With peers, every pristine
// member bootstraps the same initial configuration (c-raft refuses a second bootstrap once the log holds
// anything, so restarts never start a second cluster); a member started with `join` never bootstraps and
// waits to be added by AddMember. (abode-allocator starts a pristine member in join mode when its cluster
// already runs, see rejoin.h.)
#ifndef ABODE_ALLOCATOR_SERVICE_RAFT_NODE_H_
#define ABODE_ALLOCATOR_SERVICE_RAFT_NODE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "allocator-service/clock.h"
#include "allocator-service/command_log.h"
#include "allocator-service/membership.h"
#include "allocator-service/read_fence.h"
#include "storage/state_reader.h"

namespace abode::allocator {

// How a follower reaches the leader. Implemented over gRPC (leader_link.h); callbacks may run on any
// thread and must not block. A call gives up, UNAVAILABLE, shortly before `deadline` (the earliest deadline of
// the callers it serves) so that they hear why in time.
class LeaderLink {
 public:
  using Outcomes = std::vector<storage::CommandOutcome>;
  virtual ~LeaderLink() = default;
  // Proposes `commands` at the leader; `done` gets one outcome per command, or one error for all.
  virtual void Forward(const std::string& leader_grpc_address, std::vector<v1::Command> commands,
                       Deadline deadline, absl::AnyInvocable<void(absl::StatusOr<Outcomes>) &&> done) = 0;
  // Asks the leader for a read index (see ReadIndexResponse in cluster.proto).
  virtual void ReadIndex(const std::string& leader_grpc_address, Deadline deadline,
                         absl::AnyInvocable<void(absl::StatusOr<uint64_t>) &&> done) = 0;
};

struct RaftNodeOptions {
  std::string data_dir;                   // holds raft/ (log, snapshots) and state.db (materialised state)
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
  int64_t housekeeping_interval_ms = 1000;  // how often the leader looks for expired allocations
  int64_t history_retention_ms = int64_t{30} * 24 * 3600 * 1000;  // 0 keeps history forever
  Clock* clock = nullptr;                 // required; outlives the node
  // Told of the node-state changes (assignments, nodes and addresses) after every apply and restore, on the
  // loop thread. Optional; outlives the node.
  storage::NodeStateSink* node_state_sink = nullptr;
};

// What a replica knows about the cluster, published by the loop thread.
struct ClusterView {
  uint64_t id = 0;
  std::string role;  // leader | follower | candidate | unavailable
  uint64_t term = 0;
  uint64_t leader_id = 0;
  std::string leader_grpc_address;
  uint64_t commit_index = 0;
  uint64_t applied_index = 0;
  uint64_t revision = 0;
  bool ready = false;
  std::vector<Member> members;  // Member::role: leader | voter | standby | spare
};

struct StateChecksum {
  uint64_t applied_index = 0;
  uint64_t revision = 0;
  uint64_t checksum = 0;
  uint64_t allocations = 0;
};

// How the answers to one applied entry's callers are spread over the completion threads: chunk sizes, in
// order, summing to `answers`; at most `threads` chunks, never smaller than kMinAnswersPerChunk (one more
// thread's wake-up costs more than a few answers), sizes differing by at most one. Answering a caller is
// mostly gRPC's work (~8 µs), so one thread answering a 50-caller entry alone keeps the last of them waiting
// ~0.4 ms while the other thread idles, and the whole cohort comes back later with its next requests.
inline constexpr size_t kMinAnswersPerChunk = 8;
std::vector<size_t> AnswerChunks(size_t answers, size_t threads);

// True when `data_dir` holds no raft log yet: c-raft writes its metadata files the first time it starts on a
// directory. Such a member has never started (or was wiped).
bool RaftLogIsPristine(const std::string& data_dir);

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

class RaftNode final : public CommandLog, public ReadFence {
 public:
  // Opens the data dir, restores the snapshot and starts raft. A single voter returns once everything in
  // its log is applied and it leads; a cluster member returns once raft runs (it serves as soon as it
  // knows a leader and has caught up).
  static absl::StatusOr<std::unique_ptr<RaftNode>> Start(const RaftNodeOptions& options);
  ~RaftNode() override;  // stops the loop; pending proposals fail with UNAVAILABLE

  // CommandLog. The leader proposes; a follower forwards to the leader; with no leader known: UNAVAILABLE.
  void Propose(v1::Command command, Deadline deadline, Done done) override;
  // Proposes commands at this node only (the leader's side of forwarding); together in one entry when
  // they fit. UNAVAILABLE if this node does not lead.
  void ProposeLocal(std::vector<v1::Command> commands, std::vector<Done> dones);

  // ReadFence.
  void Await(ReadConsistency consistency, Deadline deadline, absl::AnyInvocable<void(absl::Status) &&> done) override;

  // Leader side of ReadIndex: confirms leadership with a barrier, then yields the applied index.
  void LocalReadIndex(absl::AnyInvocable<void(absl::StatusOr<uint64_t>) &&> done);

  // Membership and leadership; run by the leader (FAILED_PRECONDITION with the leader's address elsewhere).
  using ChangeDone = absl::AnyInvocable<void(absl::Status) &&>;
  void AddMember(const Member& member, bool voter, ChangeDone done);
  void RemoveMember(uint64_t id, ChangeDone done);
  void TransferLeadership(uint64_t id, ChangeDone done);

  // Checksum of the state at the applied index, taken on the loop thread between two applies.
  void Checksum(absl::AnyInvocable<void(absl::StatusOr<StateChecksum>) &&> done);

  ClusterView view();  // thread-safe; refreshed by the loop every few milliseconds
  storage::StateReader& reader() { return *reader_; }

  struct Stats {
    uint64_t entries = 0;   // log entries proposed by this node
    uint64_t commands = 0;  // commands inside them
    uint64_t most_inflight_entries = 0;  // the most entries this node had proposed and not yet applied at once
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

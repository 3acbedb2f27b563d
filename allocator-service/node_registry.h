// Node liveness: heartbeats, open streams and reported assignment status live in memory and are never
// replicated. Only readiness transitions become commands, and only the raft leader decides them: when a
// ready node's lease runs out it proposes MarkNodeNotReady (and the state machine moves what the node
// served); when a node that is not ready is heard from again it proposes RegisterNode.
//
// Nodes stream to any replica. A follower relays what its streams hear (heartbeats, connections, status
// reports) to the leader in one batch per sweep interval, so the leader knows every node. A replica that
// becomes leader starts every node with a full lease from that moment (or from the node's registration,
// if later) before it expires anything.
//
// Thread safety: thread-safe. Expiry decisions read the injected Clock; a sweep (expiry on the leader, the
// relay on a follower) runs every sweep_interval_ms on the injected Timers (ticks on the timer's thread), so
// tests fire sweeps and advance the clock instead of waiting for real time.
#ifndef ABODE_ALLOCATOR_SERVICE_NODE_REGISTRY_H_
#define ABODE_ALLOCATOR_SERVICE_NODE_REGISTRY_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "abode/v1/cluster.pb.h"
#include "abode/v1/nodes.pb.h"
#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "allocator-service/leader_liveness.h"
#include "allocator-service/node_liveness.h"
#include "allocator-service/node_view_source.h"
#include "allocator-service/timers.h"
#include "replication/clock.h"
#include "replication/command_log.h"

namespace abode::allocator {

struct NodeRegistryOptions {
  int64_t lease_ms = 5000;           // a node not heard from for this long is not ready
  int64_t sweep_interval_ms = 200;   // timer interval between lease checks (and between a follower's relays)
  replication::Clock* clock = nullptr;            // required; outlives the registry
  Timers* timers = nullptr;                       // required; runs the sweeps; outlives the registry
  // Opt-in reclaim: the leader releases the allocations made through a node that has not been ready for
  // this long (ReclaimNodeAllocations). 0: never.
  int64_t reclaim_not_ready_after_ms = 0;
  LeaderLiveness* leadership = nullptr;  // null: this replica always leads; else outlives the registry
};

// Reads the nodes from `views` (the watch hub), which shows a command's outcome by the time the command log
// runs its `done`.
class NodeRegistry final : public NodeLiveness {
 public:
  NodeRegistry(replication::CommandLog& log, NodeViewSource& views, NodeRegistryOptions options);
  ~NodeRegistry() override;  // Stop()
  void Stop();               // stops sweeping and waits for a relay in flight; idempotent

  // NodeLiveness (node_liveness.h).
  int64_t lease_ms() const override { return options_.lease_ms; }
  // This replica leads, or its last relay reached the leader within lease_ms / 2 (so the leader hears of
  // the heartbeat soon, or hears from this replica last at most that long before it).
  bool VouchesForLeases() override;
  LeaderLiveness::Leader leader() override;
  void Connect(const v1::NodeSpec& spec) override;
  void Disconnect(const std::string& node) override;
  void Heartbeat(const std::string& node) override;
  void ReportStatus(const std::string& node, const v1::AssignmentStatusReport& report) override;
  void Fill(v1::Node* node) override;

  // The leader's side of a follower's relay.
  void Relayed(const v1::RelayLivenessRequest& relay);

  // On the leader, proposes the readiness transitions that are due now; on a follower, relays what its
  // streams heard since the last relay.
  void Sweep();

 private:
  struct Entry {
    v1::NodeSpec spec;
    bool has_spec = false;
    int64_t last_heartbeat_ms = 0;
    int streams = 0;       // open on this replica
    bool pending = false;  // a readiness command is in flight
    bool recheck = false;  // heard from while it was: decide again once it is applied
    std::map<std::string, v1::AssignmentStatus> statuses;
    // A follower's relay state: what the leader has not been told yet.
    bool heard_unrelayed = false;
    std::set<std::string> unrelayed_statuses;
    bool relayed_connected = false;
    // The not-ready period (its start) whose allocations the leader proposed to reclaim.
    int64_t reclaimed_since_ms = -1;
    // The leader's knowledge of streams on other replicas: member id -> connected there.
    std::map<uint64_t, bool> remote_connected;
  };

  void Propose(const std::string& node, v1::Command command) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RegisterIfNotReady(const std::string& node, Entry& entry, const domain::NodeStateView& view)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Proposes what Propose queued; releases mu_ first.
  void SendOutbox() ABSL_UNLOCK_FUNCTION(mu_);
  void Expire(const domain::NodeStateView& view, int64_t now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Proposes the reclaim of a node lost for longer than reclaim_not_ready_after_ms, once per lost period.
  void ReclaimIfLost(const std::string& name, const v1::Node& node, int64_t now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A follower's next relay (marked in flight), or nothing to send now.
  std::optional<v1::RelayLivenessRequest> TakeRelay(const LeaderLiveness::Leader& leader, int64_t now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool Connected(const Entry& e, int64_t now) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  replication::CommandLog& log_;
  NodeViewSource& views_;
  const NodeRegistryOptions options_;

  absl::Mutex mu_;  // taken last: nothing is called while it is held (views_ and the log are called without it)
  std::map<std::string, Entry, std::less<>> entries_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::pair<std::string, v1::Command>> outbox_ ABSL_GUARDED_BY(mu_);
  // Leadership as the last sweep saw it.
  bool leading_ ABSL_GUARDED_BY(mu_) = false;
  int64_t lead_since_ms_ ABSL_GUARDED_BY(mu_) = 0;  // leases run at least from here
  std::map<uint64_t, int64_t> member_seen_ms_ ABSL_GUARDED_BY(mu_);  // leader: last relay per member
  // Follower: the leader the last successful relay went to (empty: resend everything next time).
  std::string relayed_to_ ABSL_GUARDED_BY(mu_);
  bool relaying_ ABSL_GUARDED_BY(mu_) = false;
  int64_t last_relay_ms_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t last_relay_ok_ms_ ABSL_GUARDED_BY(mu_) = 0;  // when a relay last succeeded
  std::unique_ptr<PeriodicTimer> timer_;  // last: destroyed first
};

}  // namespace abode::allocator

#endif  // ABODE_ALLOCATOR_SERVICE_NODE_REGISTRY_H_

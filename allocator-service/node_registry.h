// Node liveness on the replica that hears from the nodes: heartbeats, open streams and reported assignment
// status live in memory here and are never replicated. Only readiness transitions become commands: when a
// ready node's lease runs out the registry proposes MarkNodeNotReady (and the state machine moves what it
// served); when a node that is not ready is heard from again it proposes RegisterNode.
//
// Today every node streams to the one replica, which leads. With several replicas, followers forward
// Heartbeat / ReportStatus to the leader (the same calls), and a new leader starts every ready node with
// a full lease from the moment it took over.
//
// Thread safety: thread-safe. Expiry decisions read the injected Clock; a sweep runs every
// sweep_interval_ms of real time and can be run directly (Sweep) by tests.
#ifndef ABODE_ALLOCATOR_SERVICE_NODE_REGISTRY_H_
#define ABODE_ALLOCATOR_SERVICE_NODE_REGISTRY_H_

#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "abode/v1/nodes.pb.h"
#include "absl/base/thread_annotations.h"
#include "allocator-service/clock.h"
#include "allocator-service/command_log.h"
#include "allocator-service/watch_hub.h"

namespace abode::allocator {

struct NodeRegistryOptions {
  int64_t lease_ms = 5000;           // a node not heard from for this long is not ready
  int64_t sweep_interval_ms = 200;   // real time between lease checks
  Clock* clock = nullptr;            // required; outlives the registry
};

class NodeRegistry {
 public:
  NodeRegistry(CommandLog& log, WatchHub& hub, NodeRegistryOptions options);
  ~NodeRegistry();  // Stop()
  void Stop();      // stops sweeping; idempotent

  int64_t lease_ms() const { return options_.lease_ms; }

  // A node client opened its stream: registers it (labels, interfaces) and starts its lease.
  void Connect(const v1::NodeSpec& spec);
  void Disconnect(const std::string& node);
  void Heartbeat(const std::string& node);
  void ReportStatus(const std::string& node, const v1::AssignmentStatusReport& report);

  // Adds what only this replica knows (heartbeat, connection, statuses) to a node from the view.
  void Fill(v1::Node* node);

  // Proposes the readiness transitions that are due now.
  void Sweep();

 private:
  struct Entry {
    v1::NodeSpec spec;
    bool has_spec = false;
    int64_t last_heartbeat_ms = 0;
    int streams = 0;
    bool pending = false;  // a readiness command is in flight
    std::map<std::string, v1::AssignmentStatus> statuses;
  };

  void Propose(const std::string& node, v1::Command command) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RegisterIfNotReady(const std::string& node, Entry& entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Proposes what Propose queued; unlocks `lock` first.
  void SendOutbox(std::unique_lock<std::mutex>& lock);

  CommandLog& log_;
  WatchHub& hub_;
  const NodeRegistryOptions options_;
  const int64_t start_ms_;

  std::mutex mu_;
  std::map<std::string, Entry, std::less<>> entries_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::pair<std::string, v1::Command>> outbox_ ABSL_GUARDED_BY(mu_);
  std::condition_variable cv_;
  std::thread thread_;
};

}  // namespace abode::allocator

#endif  // ABODE_ALLOCATOR_SERVICE_NODE_REGISTRY_H_

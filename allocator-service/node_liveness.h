// What a node's stream and the node reads tell and ask of node liveness (heartbeats, open streams, reported
// status), which lives in memory and is never replicated. Implemented by the node registry
// (node_registry.h).
#ifndef ABODE_ALLOCATOR_SERVICE_NODE_LIVENESS_H_
#define ABODE_ALLOCATOR_SERVICE_NODE_LIVENESS_H_

#include <cstdint>
#include <string>

#include "abode/v1/nodes.pb.h"
#include "allocator-service/leader_liveness.h"

namespace abode::allocator {

// Thread-safe.
class NodeLiveness {
 public:
  virtual ~NodeLiveness() = default;

  virtual int64_t lease_ms() const = 0;
  // Whether this replica may tell a node that its lease runs from a heartbeat it heard now.
  virtual bool VouchesForLeases() = 0;
  virtual LeaderLiveness::Leader leader() = 0;

  // A node client opened its stream here: registers it (labels, interfaces) and starts its lease.
  virtual void Connect(const v1::NodeSpec& spec) = 0;
  virtual void Disconnect(const std::string& node) = 0;
  virtual void Heartbeat(const std::string& node) = 0;
  virtual void ReportStatus(const std::string& node, const v1::AssignmentStatusReport& report) = 0;

  // Adds what is known in memory (last heartbeat, connection, statuses) to a node from the view.
  virtual void Fill(v1::Node* node) = 0;
};

}  // namespace abode::allocator

#endif  // ABODE_ALLOCATOR_SERVICE_NODE_LIVENESS_H_

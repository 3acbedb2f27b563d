// Where the node-state updates of applied batches go (the watch hub).
#ifndef ABODE_DOMAIN_NODE_STATE_SINK_H_
#define ABODE_DOMAIN_NODE_STATE_SINK_H_

#include "domain/node_state_view.h"

namespace abode::domain {

// Receives every NodeStateUpdate, on the thread that applies batches. Must not block.
class NodeStateSink {
 public:
  virtual ~NodeStateSink() = default;
  virtual void Publish(NodeStateUpdate update) = 0;
};

}  // namespace abode::domain

#endif  // ABODE_DOMAIN_NODE_STATE_SINK_H_

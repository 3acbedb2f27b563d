// Where the latest view of nodes and their addresses comes from: what the address services and the node
// registry read. Implemented by the watch hub (watch_hub.h), which publishes the view every applied batch
// derives, and by fakes in tests.
#ifndef ABODE_ALLOCATOR_SERVICE_NODE_VIEW_SOURCE_H_
#define ABODE_ALLOCATOR_SERVICE_NODE_VIEW_SOURCE_H_

#include <memory>

#include "domain/node_state_view.h"

namespace abode::allocator {

class NodeViewSource {
 public:
  virtual ~NodeViewSource() = default;
  // The latest view; never null. Thread-safe.
  virtual std::shared_ptr<const domain::NodeStateView> view() = 0;
};

}  // namespace abode::allocator

#endif  // ABODE_ALLOCATOR_SERVICE_NODE_VIEW_SOURCE_H_

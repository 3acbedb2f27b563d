// What the node-state part of the domain publishes: an immutable view of the node objects, and the
// assignment changes of each applied batch.
#ifndef ABODE_DOMAIN_NODE_STATE_VIEW_H_
#define ABODE_DOMAIN_NODE_STATE_VIEW_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "abode/v1/nodes.pb.h"

namespace abode::domain {

// Objects by name, shared copy-on-write between the state machine's memory and the views it publishes.
template <typename T>
using Objects = std::map<std::string, std::shared_ptr<const T>, std::less<>>;

// An immutable copy of the node-state objects for readers (the gRPC layer), published after each batch that
// changed them. Publishing is cheap: the objects are shared.
struct NodeStateView {
  uint64_t revision = 0;
  Objects<v1::Node> nodes;
  Objects<v1::ExternalAddress> externals;
  Objects<v1::ElasticAddress> elastics;  // with their derived targets
  Objects<v1::MagicAddress> magics;
};

// What one applied batch changed, for the watch hub.
struct NodeStateUpdate {
  uint64_t revision = 0;
  std::vector<v1::AssignmentChange> changes;  // in apply order
  std::shared_ptr<const NodeStateView> view;  // null when the objects did not change
};

}  // namespace abode::domain

#endif  // ABODE_DOMAIN_NODE_STATE_VIEW_H_

// Checks of the node commands' specs that need no state. Errors are INVALID_ARGUMENT naming the field.
#ifndef ABODE_DOMAIN_NODE_SPECS_H_
#define ABODE_DOMAIN_NODE_SPECS_H_

#include <map>
#include <string>

#include "abode/v1/nodes.pb.h"
#include "absl/status/statusor.h"
#include "domain/address.h"
#include "domain/validation.h"

namespace abode::domain {

// Owner keys under which external and elastic addresses hold their address in an external pool.
inline constexpr absl::string_view kExternalOwner = "abode:external/";
inline constexpr absl::string_view kElasticOwner = "abode:elastic/";

absl::Status CheckNodeSpec(const v1::NodeSpec& spec);

// The labels node selectors match: what the node client reports (spec.labels) overlaid by the labels set
// through SetNodeLabels (set_labels), which win on a shared key: they are the cluster's intent (Kubernetes
// Node labels), while a node client reports what it was started with.
std::map<std::string, std::string> NodeLabels(const v1::Node& node);

// A magic address spec as it is stored (canonical address, default policy and target ports), with its
// parsed selector.
struct CheckedMagicSpec {
  v1::MagicAddressSpec spec;
  IpAddress address;
  LabelSelector selector;
};
absl::StatusOr<CheckedMagicSpec> CheckMagicSpec(const v1::MagicAddressSpec& spec);

// The selector of an elastic association (empty when it names an owner).
absl::StatusOr<LabelSelector> CheckAssociation(const v1::ElasticAssociation& association);

// 169.254.0.0/16 or fe80::/10.
bool IsLinkLocal(const IpAddress& a);

}  // namespace abode::domain

#endif  // ABODE_DOMAIN_NODE_SPECS_H_

// Stateless checks of request fields. Every error is INVALID_ARGUMENT and names the offending field, so a
// caller can tell at a glance what to fix. The state machine runs the same checks on apply.
#ifndef ABODE_DOMAIN_VALIDATION_H_
#define ABODE_DOMAIN_VALIDATION_H_

#include <map>
#include <string>
#include "absl/strings/string_view.h"
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "google/protobuf/map.h"

namespace abode::domain {

inline constexpr size_t kMaxOwnerBytes = 253;
inline constexpr size_t kMaxLabels = 64;

// Pool and network names: lowercase DNS-label style, at most 63 bytes.
absl::Status ValidateName(absl::string_view name, absl::string_view field, bool allow_empty);
// Owner keys are opaque: 1 to 253 bytes, no control characters.
absl::Status ValidateOwner(absl::string_view owner, absl::string_view field);
// Node names: empty or up to 253 bytes of [a-z0-9.-] (Kubernetes node names are DNS subdomains).
absl::Status ValidateNodeName(absl::string_view node, absl::string_view field);
// Kubernetes label syntax: [prefix/]name keys, values of at most 63 characters.
absl::Status ValidateLabels(const google::protobuf::Map<std::string, std::string>& labels, absl::string_view field);

using LabelSelector = std::vector<std::pair<std::string, std::string>>;
// "k=v,k2=v2": every pair must match. Empty text selects everything.
absl::StatusOr<LabelSelector> ParseLabelSelector(absl::string_view text, absl::string_view field);
bool SelectorMatches(const LabelSelector& selector, const std::map<std::string, std::string>& labels);

// Canonical storage form of labels: sorted "k=v" lines joined by '\n' (keys and values never hold '\n' or '=').
std::string EncodeLabels(const google::protobuf::Map<std::string, std::string>& labels);
std::map<std::string, std::string> DecodeLabels(absl::string_view text);

}  // namespace abode::domain

#endif  // ABODE_DOMAIN_VALIDATION_H_

// YAML (and so JSON) text to nlohmann::json, through libyaml's document API: enough for kubeconfig files.
// Scalars become strings, except plain (unquoted) true/false/null and numbers, which become JSON booleans,
// null and numbers. Anchors and aliases are followed; tags are ignored.
#ifndef ABODE_KUBE_YAML_JSON_H_
#define ABODE_KUBE_YAML_JSON_H_

#include "absl/strings/string_view.h"

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"

namespace abode::kube {

// The first document of `text`. INVALID_ARGUMENT with the line and column of a syntax error.
absl::StatusOr<nlohmann::json> ParseYaml(absl::string_view text);

}  // namespace abode::kube

#endif  // ABODE_KUBE_YAML_JSON_H_

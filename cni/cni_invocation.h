// The runtime's side of a plugin call: CNI_* environment variables and CNI_ARGS, checked as the CNI
// specification asks (errors are code 4, naming the variable), and the owner key and labels abode records.
#ifndef ABODE_CNI_CNI_INVOCATION_H_
#define ABODE_CNI_CNI_INVOCATION_H_

#include <map>
#include <string>
#include <string_view>

#include "cni/cni_error.h"

namespace abode::cni {

struct Invocation {
  std::string command;       // ADD, DEL, CHECK, VERSION, GC, STATUS
  std::string container_id;
  std::string netns;
  std::string ifname;
  std::map<std::string, std::string> args;  // CNI_ARGS, K=V;K2=V2
};

// `env` holds the process environment (only CNI_* keys are read).
Result<Invocation> ParseInvocation(const std::map<std::string, std::string>& env);

// The allocation owner of one attachment. The container id is unique per pod sandbox, so a StatefulSet pod
// that comes back under the same name is a different owner and never releases its predecessor's address.
std::string OwnerKey(std::string_view container_id, std::string_view ifname);
// Inverse of OwnerKey; false when `owner` is not an attachment's key.
bool ParseOwnerKey(std::string_view owner, std::string* container_id, std::string* ifname);

// Label keys recorded on every allocation made through the plugin.
inline constexpr char kLabelPodNamespace[] = "k8s-pod-namespace";
inline constexpr char kLabelPodName[] = "k8s-pod-name";
inline constexpr char kLabelPodUid[] = "k8s-pod-uid";
inline constexpr char kLabelNetwork[] = "cni-network";
// A label value (Kubernetes syntax, at most 63 characters): `value` if valid, otherwise a valid
// deterministic form (invalid characters replaced, long values cut and suffixed with a hash).
std::string LabelValue(std::string_view value);
// K8S_POD_* from CNI_ARGS and the network configuration's name, as labels.
std::map<std::string, std::string> AttachmentLabels(const Invocation& invocation, std::string_view network);

}  // namespace abode::cni

#endif  // ABODE_CNI_CNI_INVOCATION_H_

#include "domain/node_specs.h"

#include <set>
#include <utility>

#include "absl/strings/str_cat.h"

namespace abode::domain {
namespace {

constexpr size_t kMaxInterfaces = 64;
constexpr size_t kMaxPorts = 64;

}  // namespace

bool IsLinkLocal(const IpAddress& a) {
  if (a.family() == Family::kV4) return (a.value() >> 16) == 0xa9fe;  // 169.254.0.0/16
  return (a.value() >> 118) == (u128{0xfe80} >> 6);                 // fe80::/10
}

std::map<std::string, std::string> NodeLabels(const v1::Node& node) {
  std::map<std::string, std::string> out(node.spec().labels().begin(), node.spec().labels().end());
  for (const auto& [k, v] : node.set_labels()) out[k] = v;
  return out;
}

absl::Status CheckNodeSpec(const v1::NodeSpec& spec) {
  if (spec.name().empty()) return absl::InvalidArgumentError("node.name: must not be empty");
  if (absl::Status s = ValidateNodeName(spec.name(), "node.name"); !s.ok()) return s;
  if (absl::Status s = ValidateLabels(spec.labels(), "node.labels"); !s.ok()) return s;
  if (static_cast<size_t>(spec.interfaces_size()) > kMaxInterfaces) {
    return absl::InvalidArgumentError(absl::StrCat("node.interfaces: at most ", kMaxInterfaces, " interfaces"));
  }
  return absl::OkStatus();
}

absl::StatusOr<CheckedMagicSpec> CheckMagicSpec(const v1::MagicAddressSpec& in) {
  v1::MagicAddressSpec spec = in;
  if (absl::Status s = ValidateName(spec.name(), "address.name", false); !s.ok()) return s;
  if (spec.address().empty()) return absl::InvalidArgumentError("address.address: must not be empty");
  auto ip = IpAddress::Parse(spec.address(), "address.address");
  if (!ip.ok()) return ip.status();
  if (!IsLinkLocal(*ip)) {
    return absl::InvalidArgumentError(absl::StrCat("address.address: ", ip->ToString(),
                                                   " is not link-local (169.254.0.0/16 or fe80::/10)"));
  }
  spec.set_address(ip->ToString());
  if (spec.ports().empty()) return absl::InvalidArgumentError("address.ports: at least one port mapping is required");
  if (static_cast<size_t>(spec.ports_size()) > kMaxPorts) {
    return absl::InvalidArgumentError(absl::StrCat("address.ports: at most ", kMaxPorts, " port mappings"));
  }
  std::set<std::pair<int, uint32_t>> seen;
  for (int i = 0; i < spec.ports_size(); ++i) {
    v1::PortMapping& p = *spec.mutable_ports(i);
    const std::string field = absl::StrCat("address.ports[", i, "]");
    if (p.protocol() == v1::PROTOCOL_UNSPECIFIED || !v1::Protocol_IsValid(p.protocol())) {
      return absl::InvalidArgumentError(absl::StrCat(field, ".protocol: must be tcp, udp or sctp"));
    }
    if (p.port() == 0 || p.port() > 65535) {
      return absl::InvalidArgumentError(absl::StrCat(field, ".port: ", p.port(), " is outside 1..65535"));
    }
    if (p.target_port() > 65535) {
      return absl::InvalidArgumentError(absl::StrCat(field, ".target_port: ", p.target_port(), " is outside 1..65535"));
    }
    if (p.target_port() == 0) p.set_target_port(p.port());
    if (!seen.emplace(p.protocol(), p.port()).second) {
      return absl::InvalidArgumentError(absl::StrCat(field, ": port ", p.port(), " is mapped twice"));
    }
  }
  auto sel = ParseLabelSelector(spec.label_selector(), "address.label_selector");
  if (!sel.ok()) return sel.status();
  if (sel->empty()) return absl::InvalidArgumentError("address.label_selector: must have at least one term");
  if (spec.policy() == v1::MAGIC_POLICY_UNSPECIFIED) spec.set_policy(v1::MAGIC_POLICY_DROP);
  if (!v1::MagicPolicy_IsValid(spec.policy())) return absl::InvalidArgumentError("address.policy: must be drop or fallback");
  return CheckedMagicSpec{std::move(spec), *ip, std::move(*sel)};
}

absl::StatusOr<LabelSelector> CheckAssociation(const v1::ElasticAssociation& assoc) {
  if (assoc.owner().empty() == assoc.label_selector().empty()) {
    return absl::InvalidArgumentError("association: set exactly one of owner or label_selector");
  }
  if (!assoc.owner().empty()) {
    if (absl::Status s = ValidateOwner(assoc.owner(), "association.owner"); !s.ok()) return s;
    return LabelSelector{};
  }
  auto parsed = ParseLabelSelector(assoc.label_selector(), "association.label_selector");
  if (!parsed.ok()) return parsed.status();
  if (parsed->empty()) return absl::InvalidArgumentError("association.label_selector: must have at least one term");
  return parsed;
}

}  // namespace abode::domain

// The kernel-facing model of what abode-node makes real on its node: addresses it owns on interfaces and the
// NAT mappings it programs. Plain values with total ordering so that desired and observed state can be diffed.
#ifndef ABODE_NODE_CLIENT_KERNEL_MODEL_H_
#define ABODE_NODE_CLIENT_KERNEL_MODEL_H_

#include <array>
#include <compare>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace abode::node {

enum class IpFamily : uint8_t { kIpv4, kIpv6 };
enum class L4Protocol : uint8_t { kTcp, kUdp };

absl::string_view IpFamilyName(IpFamily family);        // "ip" / "ip6", as nftables names the families
absl::string_view L4ProtocolName(L4Protocol protocol);  // "tcp" / "udp"
uint8_t L4ProtocolNumber(L4Protocol protocol);          // IPPROTO_TCP / IPPROTO_UDP

// An IP address in network byte order. Only the first ByteLength() bytes are meaningful; the rest are zero so
// that the defaulted comparisons are exact.
struct IpAddress {
  IpFamily family = IpFamily::kIpv4;
  std::array<uint8_t, 16> bytes{};

  // Accepts the textual forms of inet_pton (no prefix, no zone).
  static absl::StatusOr<IpAddress> Parse(absl::string_view text);
  // REQUIRES: bytes.size() == 4 or 16.
  static IpAddress FromBytes(const uint8_t* bytes, size_t length);
  size_t ByteLength() const { return family == IpFamily::kIpv4 ? 4 : 16; }
  // Canonical text (inet_ntop), e.g. "2001:db8::1".
  std::string ToString() const;

  auto operator<=>(const IpAddress&) const = default;
};

// Returns the canonical text of `text`, or InvalidArgument naming it.
absl::StatusOr<std::string> CanonicalAddress(absl::string_view text);

// An address abode-node places on one of the node's interfaces.
struct OwnedAddress {
  std::string interface;
  std::string address;  // canonical IP text
  int prefix_len = 0;

  std::string ToString() const;  // "192.0.2.1/32 on eth0"
  auto operator<=>(const OwnedAddress&) const = default;
};

// Checks the interface name, that `address` parses and is canonical, and the prefix length for its family.
absl::Status ValidateOwnedAddress(const OwnedAddress& address);

// Traffic for magic_address:port/protocol is sent to target_address:target_port (e.g. a metadata service on a
// link-local address). Applies to forwarded and locally originated traffic.
struct MagicDnat {
  IpFamily family = IpFamily::kIpv4;
  std::string magic_address;  // canonical IP text
  L4Protocol protocol = L4Protocol::kTcp;
  uint16_t port = 0;
  std::string target_address;  // canonical IP text
  uint16_t target_port = 0;

  std::string ToString() const;
  auto operator<=>(const MagicDnat&) const = default;
};

// Traffic for magic_address:port/protocol is dropped before it reaches anything on the node (a magic address
// whose mapping has no target: policy drop). Counted by the kernel.
struct MagicDrop {
  IpFamily family = IpFamily::kIpv4;
  std::string magic_address;  // canonical IP text
  L4Protocol protocol = L4Protocol::kTcp;
  uint16_t port = 0;

  std::string ToString() const;
  auto operator<=>(const MagicDrop&) const = default;
};

// An elastic address bound to a workload: all inbound traffic to elastic_address is DNATed to
// workload_address, and traffic the workload originates leaves with source elastic_address (SNAT).
struct ElasticNat {
  std::string elastic_address;   // canonical IP text
  std::string workload_address;  // canonical IP text, same family

  std::string ToString() const;
  auto operator<=>(const ElasticNat&) const = default;
};

// Every NAT mapping of a node, both families.
struct NatRuleset {
  std::set<MagicDnat> magic_dnat;
  std::set<ElasticNat> elastic_nat;
  std::set<MagicDrop> magic_drop;

  bool operator==(const NatRuleset&) const = default;
};

// Checks that every address parses, is canonical and matches its family, ports are non-zero, and that no two
// mappings claim the same key: one (family, magic address, protocol, port) per MagicDnat or MagicDrop, one elastic
// address and one workload address per ElasticNat. Returns InvalidArgument naming the first offending mapping.
absl::Status ValidateNatRuleset(const NatRuleset& ruleset);

// The parts of ValidateNatRuleset, for callers that validate a change incrementally: one mapping on its own, and
// the key conflicts across a whole ruleset (cheap: no address is parsed).
absl::Status ValidateMapping(const MagicDnat& mapping);
absl::Status ValidateMapping(const ElasticNat& mapping);
absl::Status ValidateMapping(const MagicDrop& mapping);
absl::Status CheckNatRulesetConflicts(const NatRuleset& ruleset);

// Family of an ElasticNat, from its elastic address. REQUIRES: the mapping is valid.
IpFamily FamilyOf(const ElasticNat& mapping);

// What must change to turn `current` into `desired`.
template <typename T>
struct SetDiff {
  std::vector<T> to_add;
  std::vector<T> to_remove;

  bool empty() const { return to_add.empty() && to_remove.empty(); }
};

template <typename T>
SetDiff<T> Diff(const std::set<T>& current, const std::set<T>& desired) {
  SetDiff<T> diff;
  auto c = current.begin();
  auto d = desired.begin();
  while (c != current.end() || d != desired.end()) {
    if (d == desired.end() || (c != current.end() && *c < *d)) {
      diff.to_remove.push_back(*c++);
    } else if (c == current.end() || *d < *c) {
      diff.to_add.push_back(*d++);
    } else {
      ++c;
      ++d;
    }
  }
  return diff;
}

struct NatRulesetDiff {
  SetDiff<MagicDnat> magic_dnat;
  SetDiff<ElasticNat> elastic_nat;
  SetDiff<MagicDrop> magic_drop;

  bool empty() const { return magic_dnat.empty() && elastic_nat.empty() && magic_drop.empty(); }
};

NatRulesetDiff Diff(const NatRuleset& current, const NatRuleset& desired);

}  // namespace abode::node

#endif  // ABODE_NODE_CLIENT_KERNEL_MODEL_H_

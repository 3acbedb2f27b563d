#include "kernel_model.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace abode::node {

absl::string_view IpFamilyName(IpFamily family) { return family == IpFamily::kIpv4 ? "ip" : "ip6"; }

absl::string_view L4ProtocolName(L4Protocol protocol) { return protocol == L4Protocol::kTcp ? "tcp" : "udp"; }

uint8_t L4ProtocolNumber(L4Protocol protocol) { return protocol == L4Protocol::kTcp ? IPPROTO_TCP : IPPROTO_UDP; }

absl::StatusOr<IpAddress> IpAddress::Parse(absl::string_view text) {
  std::string copy(text);  // inet_pton needs a terminated string
  IpAddress address;
  if (inet_pton(AF_INET, copy.c_str(), address.bytes.data()) == 1) {
    address.family = IpFamily::kIpv4;
    return address;
  }
  if (inet_pton(AF_INET6, copy.c_str(), address.bytes.data()) == 1) {
    address.family = IpFamily::kIpv6;
    return address;
  }
  return absl::InvalidArgumentError(absl::StrCat("'", text, "' is not an IP address"));
}

IpAddress IpAddress::FromBytes(const uint8_t* bytes, size_t length) {
  IpAddress address;
  address.family = length == 4 ? IpFamily::kIpv4 : IpFamily::kIpv6;
  std::memcpy(address.bytes.data(), bytes, length);
  return address;
}

std::string IpAddress::ToString() const {
  char text[INET6_ADDRSTRLEN] = {};
  inet_ntop(family == IpFamily::kIpv4 ? AF_INET : AF_INET6, bytes.data(), text, sizeof(text));
  return text;
}

absl::StatusOr<std::string> CanonicalAddress(absl::string_view text) {
  absl::StatusOr<IpAddress> address = IpAddress::Parse(text);
  if (!address.ok()) return address.status();
  return address->ToString();
}

std::string OwnedAddress::ToString() const { return absl::StrCat(address, "/", prefix_len, " on ", interface); }

absl::Status ValidateOwnedAddress(const OwnedAddress& address) {
  if (address.interface.empty() || address.interface.size() >= IFNAMSIZ ||
      address.interface.find_first_of("/ \t\n") != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("'", address.interface, "' is not an interface name"));
  }
  absl::StatusOr<IpAddress> parsed = IpAddress::Parse(address.address);
  if (!parsed.ok()) return parsed.status();
  if (parsed->ToString() != address.address) {
    return absl::InvalidArgumentError(
        absl::StrCat("address '", address.address, "' is not canonical (expected ", parsed->ToString(), ")"));
  }
  const int max_prefix = static_cast<int>(parsed->ByteLength() * 8);
  if (address.prefix_len < 0 || address.prefix_len > max_prefix) {
    return absl::InvalidArgumentError(
        absl::StrCat("prefix length ", address.prefix_len, " is out of range for ", address.address));
  }
  return absl::OkStatus();
}

std::string MagicDnat::ToString() const {
  const bool v6 = family == IpFamily::kIpv6;
  return absl::StrCat(IpFamilyName(family), " ", L4ProtocolName(protocol), " ", v6 ? "[" : "", magic_address,
                      v6 ? "]" : "", ":", port, " -> ", v6 ? "[" : "", target_address, v6 ? "]" : "", ":", target_port);
}

std::string MagicDrop::ToString() const {
  const bool v6 = family == IpFamily::kIpv6;
  return absl::StrCat(IpFamilyName(family), " ", L4ProtocolName(protocol), " ", v6 ? "[" : "", magic_address,
                      v6 ? "]" : "", ":", port, " dropped");
}

std::string ElasticNat::ToString() const { return absl::StrCat(elastic_address, " <-> ", workload_address); }

IpFamily FamilyOf(const ElasticNat& mapping) {
  return mapping.elastic_address.find(':') == std::string::npos ? IpFamily::kIpv4 : IpFamily::kIpv6;
}

namespace {

// `mapping` names the mapping in the error; it is only called when there is one.
template <typename Mapping>
absl::Status CheckAddress(absl::string_view what, const std::string& text, IpFamily family, const Mapping& mapping) {
  absl::StatusOr<IpAddress> parsed = IpAddress::Parse(text);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(what, " of ", mapping.ToString(), ": ", parsed.status().message()));
  }
  if (parsed->family != family) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " of ", mapping.ToString(), " is not an ", IpFamilyName(family), " address"));
  }
  if (parsed->ToString() != text) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " of ", mapping.ToString(), " is not canonical (expected ", parsed->ToString(), ")"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateMapping(const MagicDnat& m) {
  if (absl::Status s = CheckAddress("magic address", m.magic_address, m.family, m); !s.ok()) return s;
  if (absl::Status s = CheckAddress("target address", m.target_address, m.family, m); !s.ok()) return s;
  if (m.port == 0 || m.target_port == 0) {
    return absl::InvalidArgumentError(absl::StrCat("port 0 in magic mapping ", m.ToString()));
  }
  return absl::OkStatus();
}

absl::Status ValidateMapping(const MagicDrop& m) {
  if (absl::Status s = CheckAddress("magic address", m.magic_address, m.family, m); !s.ok()) return s;
  if (m.port == 0) return absl::InvalidArgumentError(absl::StrCat("port 0 in magic drop ", m.ToString()));
  return absl::OkStatus();
}

absl::Status ValidateMapping(const ElasticNat& e) {
  absl::StatusOr<IpAddress> elastic = IpAddress::Parse(e.elastic_address);
  if (!elastic.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("elastic address of ", e.ToString(), ": ", elastic.status().message()));
  }
  if (absl::Status s = CheckAddress("elastic address", e.elastic_address, elastic->family, e); !s.ok()) return s;
  return CheckAddress("workload address", e.workload_address, elastic->family, e);
}

absl::Status CheckNatRulesetConflicts(const NatRuleset& ruleset) {
  // The sets order magic mappings by (family, magic address, protocol, port) first and elastic mappings by
  // elastic address first, so two mappings claiming one key are neighbours.
  const MagicDnat* previous_magic = nullptr;
  for (const MagicDnat& m : ruleset.magic_dnat) {
    if (previous_magic != nullptr && previous_magic->family == m.family &&
        previous_magic->magic_address == m.magic_address && previous_magic->protocol == m.protocol &&
        previous_magic->port == m.port) {
      return absl::InvalidArgumentError(absl::StrCat("magic mappings ", previous_magic->ToString(), " and ",
                                                     m.ToString(), " claim the same address and port"));
    }
    previous_magic = &m;
  }
  for (const MagicDrop& d : ruleset.magic_drop) {
    // A key is either mapped or dropped.
    auto mapped = ruleset.magic_dnat.lower_bound(MagicDnat{d.family, d.magic_address, d.protocol, d.port, "", 0});
    if (mapped != ruleset.magic_dnat.end() && mapped->family == d.family &&
        mapped->magic_address == d.magic_address && mapped->protocol == d.protocol && mapped->port == d.port) {
      return absl::InvalidArgumentError(
          absl::StrCat("magic mapping ", mapped->ToString(), " and ", d.ToString(),
                       " claim the same address and port"));
    }
  }
  const ElasticNat* previous_elastic = nullptr;
  std::vector<const ElasticNat*> by_workload;
  by_workload.reserve(ruleset.elastic_nat.size());
  for (const ElasticNat& e : ruleset.elastic_nat) {
    if (previous_elastic != nullptr && previous_elastic->elastic_address == e.elastic_address) {
      return absl::InvalidArgumentError(absl::StrCat("elastic address ", e.elastic_address, " is mapped twice: ",
                                                     previous_elastic->ToString(), " and ", e.ToString()));
    }
    previous_elastic = &e;
    by_workload.push_back(&e);
  }
  std::sort(by_workload.begin(), by_workload.end(),
            [](const ElasticNat* a, const ElasticNat* b) { return a->workload_address < b->workload_address; });
  for (size_t i = 1; i < by_workload.size(); ++i) {
    if (by_workload[i - 1]->workload_address == by_workload[i]->workload_address) {
      return absl::InvalidArgumentError(absl::StrCat("workload address ", by_workload[i]->workload_address,
                                                     " is mapped twice: ", by_workload[i - 1]->ToString(), " and ",
                                                     by_workload[i]->ToString()));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateNatRuleset(const NatRuleset& ruleset) {
  for (const MagicDnat& m : ruleset.magic_dnat) {
    if (absl::Status s = ValidateMapping(m); !s.ok()) return s;
  }
  for (const ElasticNat& e : ruleset.elastic_nat) {
    if (absl::Status s = ValidateMapping(e); !s.ok()) return s;
  }
  for (const MagicDrop& d : ruleset.magic_drop) {
    if (absl::Status s = ValidateMapping(d); !s.ok()) return s;
  }
  return CheckNatRulesetConflicts(ruleset);
}

NatRulesetDiff Diff(const NatRuleset& current, const NatRuleset& desired) {
  return {Diff(current.magic_dnat, desired.magic_dnat), Diff(current.elastic_nat, desired.elastic_nat),
          Diff(current.magic_drop, desired.magic_drop)};
}

}  // namespace abode::node

// The network configuration an IPAM plugin gets on stdin, read the way whereabouts reads its `ipam` section,
// so that a whereabouts configuration works unchanged with "type": "abode". Every range becomes an abode pool:
// named by the configuration (`pool`) or derived from the network name and the range exactly as whereabouts
// names its IPPool objects ("10.1.0.0-16", "mynet-fd00---64"), so the same range from every node is one pool.
#ifndef ABODE_CNI_IPAM_CONFIG_H_
#define ABODE_CNI_IPAM_CONFIG_H_

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cni/cni_error.h"
#include "cni/ip_text.h"

namespace abode::cni {

inline constexpr char kDefaultSocketPath[] = "/run/abode/cni.sock";
inline constexpr int kDefaultTimeoutMs = 10'000;

// One abode pool the configuration draws from.
struct PoolRequest {
  std::string name;
  // False for a bare `pool` reference: the pool must exist and is used as it is.
  bool has_spec = true;
  Prefix cidr;  // network address form
  std::string range_start;
  std::string range_end;
  std::vector<std::string> exclude;
  std::string gateway;
  std::string network;

  bool operator==(const PoolRequest&) const = default;
};

// A static address request: `addresses` entries and CNI_ARGS IP=/GATEWAY=.
struct StaticAddress {
  Prefix address;
  std::string gateway;
};

struct IpamConfig {
  std::string cni_version;
  std::string name;  // the network configuration's name
  std::string type;  // ipam.type
  std::vector<PoolRequest> pools;
  std::vector<StaticAddress> addresses;
  nlohmann::json routes = nlohmann::json::array();
  nlohmann::json dns = nlohmann::json::object();
  std::string network_name;
  bool enable_overlapping_ranges = true;
  std::string log_file;
  std::string log_level;
  std::string socket_path = kDefaultSocketPath;
  int timeout_ms = kDefaultTimeoutMs;
  // Keys understood by whereabouts that do not apply to abode, and keys nobody knows; both are logged.
  std::vector<std::string> ignored_keys;
  std::vector<std::string> unknown_keys;
  nlohmann::json prev_result;  // null unless given
  // GC: the attachments to keep. Empty optional: no list was given (GC then releases nothing).
  std::optional<std::vector<std::pair<std::string, std::string>>> valid_attachments;
};

// Versions whose result format abode writes.
const std::vector<std::string>& SupportedVersions();
bool IsSupportedVersion(std::string_view version);
// "a.b.c" compared numerically; an unparsable version compares as 0.0.0.
int CompareVersions(std::string_view a, std::string_view b);

// Parses the whole stdin configuration. Errors: 6 (not JSON), 7 (a field is wrong; the message names it),
// 1 (a cniVersion abode does not speak).
Result<IpamConfig> ParseNetworkConfig(std::string_view text);

// whereabouts' IPPool name for a range in a network ("" for whereabouts' unnamed network), made a valid abode
// pool name: lowercase [a-z0-9.-], at most 63 bytes (longer names keep a hash of the whole).
std::string PoolNameFor(std::string_view network_name, const Prefix& cidr);
// 8 hex digits of a 64-bit FNV-1a hash of `text`: the deterministic suffix of names cut to fit.
std::string ShortHash(std::string_view text);
// A whereabouts network name as an abode network name (same rules as pool names); "" stays "".
std::string AbodeNetworkName(std::string_view network_name);

}  // namespace abode::cni

#endif  // ABODE_CNI_IPAM_CONFIG_H_

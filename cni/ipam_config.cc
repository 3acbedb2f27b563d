#include "cni/ipam_config.h"

#include <algorithm>
#include <set>

namespace abode::cni {
namespace {

using nlohmann::json;

CniError Invalid(const std::string& field, const std::string& why) {
  return CniError{kInvalidConfig, field + ": " + why, ""};
}

// Optional string field; wrong type is an error naming the field.
Outcome GetString(const json& object, const char* key, const std::string& path, std::string& out) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) return Invalid(path + key, "must be a string");
  out = it->get<std::string>();
  return std::nullopt;
}

Outcome GetStringList(const json& object, const char* key, const std::string& path, std::vector<std::string>& out) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return std::nullopt;
  if (!it->is_array()) return Invalid(path + key, "must be an array of strings");
  for (size_t i = 0; i < it->size(); ++i) {
    if (!(*it)[i].is_string()) return Invalid(path + key + "[" + std::to_string(i) + "]", "must be a string");
    out.push_back((*it)[i].get<std::string>());
  }
  return std::nullopt;
}

// Keys whereabouts reads that have no meaning for abode: accepted, logged as ignored.
const std::set<std::string>& IgnoredWhereaboutsKeys() {
  static const std::set<std::string> keys = {
      "kubernetes", "datastore", "etcd_host", "etcd_username", "etcd_password", "etcd_key_file", "etcd_cert_file",
      "etcd_ca_cert_file", "configuration_path", "node_slice_size", "leader_lease_duration",
      "leader_renew_deadline", "leader_retry_period", "reconciler_cron_expression", "sleep_for_race",
      "optimistic_ipam"};
  return keys;
}

const std::set<std::string>& KnownKeys() {
  static const std::set<std::string> keys = {
      "type", "range", "range_start", "range_end", "exclude", "ipRanges", "gateway", "routes", "dns",
      "network_name", "addresses", "enable_overlapping_ranges", "log_file", "log_level", "pool", "socket_path",
      "timeout_ms"};
  return keys;
}

std::string Sanitize(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-';
    out.push_back(ok ? c : '-');
  }
  while (!out.empty() && (out.back() == '-' || out.back() == '.')) out.pop_back();
  size_t first = 0;
  while (first < out.size() && (out[first] == '-' || out[first] == '.')) ++first;
  out.erase(0, first);
  if (out.size() > 63) {
    const std::string suffix = "-" + ShortHash(text);
    out = out.substr(0, 63 - suffix.size());
    while (!out.empty() && (out.back() == '-' || out.back() == '.')) out.pop_back();
    out += suffix;
  }
  return out;
}

// One range: `range` (CIDR or first-last/prefix) with range_start, range_end, exclude.
Result<PoolRequest> ParseRange(const json& object, const std::string& path) {
  PoolRequest pool;
  std::string range, start, end, named;
  if (auto e = GetString(object, "range", path, range)) return *e;
  if (auto e = GetString(object, "range_start", path, start)) return *e;
  if (auto e = GetString(object, "range_end", path, end)) return *e;
  if (auto e = GetString(object, "pool", path, named)) return *e;
  // An ipRanges entry may name its own gateway (abode's addition); the top-level gateway goes to the range
  // of its family below.
  if (path != "ipam.") {
    if (auto e = GetString(object, "gateway", path, pool.gateway)) return *e;
  }
  if (auto e = GetStringList(object, "exclude", path, pool.exclude)) return *e;
  if (range.empty()) {
    if (named.empty()) return Invalid(path + "range", "required (or name an existing abode pool with \"pool\")");
    pool.name = named;
    pool.has_spec = false;
    return pool;
  }
  // whereabouts' short form: "192.168.2.225-192.168.2.230/28".
  const size_t dash = range.find('-');
  const size_t slash = range.find('/');
  if (dash != std::string::npos && slash != std::string::npos && dash < slash) {
    auto first = Ip::Parse(std::string_view(range).substr(0, dash));
    auto last = Ip::Parse(std::string_view(range).substr(dash + 1, slash - dash - 1));
    if (!first || !last) return Invalid(path + "range", "\"" + range + "\" is not first-last/prefix");
    if (start.empty()) start = first->ToString();
    if (end.empty()) end = last->ToString();
    range = first->ToString() + range.substr(slash);
  }
  auto prefix = Prefix::Parse(range);
  if (!prefix) return Invalid(path + "range", "\"" + range + "\" is not a CIDR");
  pool.cidr = Prefix{prefix->Network(), prefix->length};
  for (auto [value, key] : {std::pair{&start, "range_start"}, std::pair{&end, "range_end"}}) {
    if (value->empty()) continue;
    auto ip = Ip::Parse(*value);
    if (!ip || !pool.cidr.Contains(*ip)) {
      return Invalid(path + key, "\"" + *value + "\" is not an address inside " + pool.cidr.ToString());
    }
    *value = ip->ToString();
  }
  pool.range_start = start;
  pool.range_end = end;
  for (size_t i = 0; i < pool.exclude.size(); ++i) {
    auto p = Prefix::Parse(pool.exclude[i], true);
    if (!p || p->ip.version != pool.cidr.ip.version) {
      return Invalid(path + "exclude[" + std::to_string(i) + "]",
                     "\"" + pool.exclude[i] + "\" is not a CIDR of the range's family");
    }
    pool.exclude[i] = Prefix{p->Network(), p->length}.ToString();
  }
  if (!pool.gateway.empty()) {
    auto gw = Ip::Parse(pool.gateway);
    if (!gw || !pool.cidr.Contains(*gw)) {
      return Invalid(path + "gateway", "\"" + pool.gateway + "\" is not an address inside " + pool.cidr.ToString());
    }
    pool.gateway = gw->ToString();
  }
  pool.name = named;
  return pool;
}

Outcome ParseAddresses(const json& ipam, IpamConfig& config) {
  auto it = ipam.find("addresses");
  if (it == ipam.end() || it->is_null()) return std::nullopt;
  if (!it->is_array()) return Invalid("ipam.addresses", "must be an array");
  for (size_t i = 0; i < it->size(); ++i) {
    const std::string path = "ipam.addresses[" + std::to_string(i) + "].";
    const json& entry = (*it)[i];
    if (!entry.is_object()) return Invalid("ipam.addresses[" + std::to_string(i) + "]", "must be an object");
    std::string address, gateway;
    if (auto e = GetString(entry, "address", path, address)) return e;
    if (auto e = GetString(entry, "gateway", path, gateway)) return e;
    auto prefix = Prefix::Parse(address);
    if (!prefix) return Invalid(path + "address", "\"" + address + "\" is not an address/prefix");
    if (!gateway.empty() && !Ip::Parse(gateway)) return Invalid(path + "gateway", "\"" + gateway + "\" is not an address");
    config.addresses.push_back(StaticAddress{*prefix, gateway});
  }
  return std::nullopt;
}

Outcome ParseAttachments(const json& root, IpamConfig& config) {
  for (const char* key : {"cni.dev/valid-attachments", "cni.dev/attachments"}) {
    auto it = root.find(key);
    if (it == root.end() || it->is_null()) continue;
    if (!it->is_array()) return Invalid(key, "must be an array");
    std::vector<std::pair<std::string, std::string>> list;
    for (size_t i = 0; i < it->size(); ++i) {
      const json& a = (*it)[i];
      const std::string path = std::string(key) + "[" + std::to_string(i) + "].";
      std::string id, ifname;
      if (!a.is_object()) return Invalid(std::string(key) + "[" + std::to_string(i) + "]", "must be an object");
      if (auto e = GetString(a, "containerID", path, id)) return e;
      if (auto e = GetString(a, "ifname", path, ifname)) return e;
      if (id.empty() || ifname.empty()) return Invalid(path + "containerID", "containerID and ifname are required");
      list.emplace_back(id, ifname);
    }
    config.valid_attachments = std::move(list);
    return std::nullopt;
  }
  return std::nullopt;
}

}  // namespace

std::string ShortHash(std::string_view text) {
  uint64_t hash = 1469598103934665603ull;  // FNV-1a
  for (char c : text) hash = (hash ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < 8; ++i) out.push_back(kHex[(hash >> (60 - 4 * i)) & 0xf]);
  return out;
}

const std::vector<std::string>& SupportedVersions() {
  static const std::vector<std::string> versions = {"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"};
  return versions;
}

bool IsSupportedVersion(std::string_view version) {
  const auto& v = SupportedVersions();
  return std::find(v.begin(), v.end(), version) != v.end();
}

int CompareVersions(std::string_view a, std::string_view b) {
  auto parts = [](std::string_view s) {
    std::vector<int> out(3, 0);
    size_t i = 0;
    for (char c : s) {
      if (c == '.') {
        if (++i == 3) break;
      } else if (c >= '0' && c <= '9') {
        out[i] = out[i] * 10 + (c - '0');
      } else {
        return std::vector<int>(3, 0);
      }
    }
    return out;
  };
  const auto x = parts(a), y = parts(b);
  return x < y ? -1 : (x > y ? 1 : 0);
}

std::string AbodeNetworkName(std::string_view network_name) { return Sanitize(network_name); }

std::string PoolNameFor(std::string_view network_name, const Prefix& cidr) {
  std::string range = cidr.Network().ToString() + "/" + std::to_string(cidr.length);
  std::replace(range.begin(), range.end(), ':', '-');
  std::replace(range.begin(), range.end(), '/', '-');
  return Sanitize(network_name.empty() ? range : std::string(network_name) + "-" + range);
}

Result<IpamConfig> ParseNetworkConfig(std::string_view text) {
  const json root = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) return CniError{kDecodeFailure, "network configuration on stdin is not JSON", ""};
  if (!root.is_object()) return CniError{kDecodeFailure, "network configuration must be a JSON object", ""};
  IpamConfig config;
  if (auto e = GetString(root, "cniVersion", "", config.cni_version)) return *e;
  if (config.cni_version.empty()) return Invalid("cniVersion", "required");
  if (!IsSupportedVersion(config.cni_version)) {
    return CniError{kIncompatibleVersion, "cniVersion: " + config.cni_version + " is not supported",
                    "abode speaks 0.3.0, 0.3.1, 0.4.0, 1.0.0 and 1.1.0"};
  }
  if (auto e = GetString(root, "name", "", config.name)) return *e;
  if (auto e = ParseAttachments(root, config)) return *e;
  if (auto it = root.find("prevResult"); it != root.end() && !it->is_null()) {
    if (!it->is_object()) return Invalid("prevResult", "must be an object");
    config.prev_result = *it;
  }
  auto ipam_it = root.find("ipam");
  if (ipam_it == root.end() || !ipam_it->is_object()) return Invalid("ipam", "required object");
  const json& ipam = *ipam_it;
  const std::string p = "ipam.";
  if (auto e = GetString(ipam, "type", p, config.type)) return *e;
  if (auto e = GetString(ipam, "network_name", p, config.network_name)) return *e;
  if (auto e = GetString(ipam, "log_file", p, config.log_file)) return *e;
  if (auto e = GetString(ipam, "log_level", p, config.log_level)) return *e;
  if (auto e = GetString(ipam, "socket_path", p, config.socket_path)) return *e;
  if (config.socket_path.empty()) config.socket_path = kDefaultSocketPath;
  if (auto it = ipam.find("enable_overlapping_ranges"); it != ipam.end() && !it->is_null()) {
    if (!it->is_boolean()) return Invalid("ipam.enable_overlapping_ranges", "must be true or false");
    config.enable_overlapping_ranges = it->get<bool>();
  }
  if (auto it = ipam.find("timeout_ms"); it != ipam.end() && !it->is_null()) {
    if (!it->is_number_integer() || it->get<int64_t>() < 100 || it->get<int64_t>() > 600'000) {
      return Invalid("ipam.timeout_ms", "must be an integer from 100 to 600000");
    }
    config.timeout_ms = static_cast<int>(it->get<int64_t>());
  }
  if (auto it = ipam.find("routes"); it != ipam.end() && !it->is_null()) {
    if (!it->is_array()) return Invalid("ipam.routes", "must be an array");
    for (size_t i = 0; i < it->size(); ++i) {
      const json& r = (*it)[i];
      const std::string path = "ipam.routes[" + std::to_string(i) + "]";
      if (!r.is_object() || !r.contains("dst") || !r["dst"].is_string() || !Prefix::Parse(r["dst"].get<std::string>())) {
        return Invalid(path + ".dst", "must be a CIDR");
      }
      if (r.contains("gw") && (!r["gw"].is_string() || !Ip::Parse(r["gw"].get<std::string>()))) {
        return Invalid(path + ".gw", "must be an address");
      }
    }
    config.routes = *it;
  }
  if (auto it = ipam.find("dns"); it != ipam.end() && !it->is_null()) {
    if (!it->is_object()) return Invalid("ipam.dns", "must be an object");
    config.dns = *it;
  }
  if (auto e = ParseAddresses(ipam, config)) return *e;

  // Ranges: the top-level range (if any) and every ipRanges entry.
  if (ipam.contains("range") || ipam.contains("pool")) {
    auto pool = ParseRange(ipam, p);
    if (!pool.ok()) return pool.error();
    config.pools.push_back(*pool);
  }
  if (auto it = ipam.find("ipRanges"); it != ipam.end() && !it->is_null()) {
    if (!it->is_array()) return Invalid("ipam.ipRanges", "must be an array");
    for (size_t i = 0; i < it->size(); ++i) {
      const std::string path = "ipam.ipRanges[" + std::to_string(i) + "]";
      if (!(*it)[i].is_object()) return Invalid(path, "must be an object");
      auto pool = ParseRange((*it)[i], path + ".");
      if (!pool.ok()) return pool.error();
      config.pools.push_back(*pool);
    }
  }
  if (config.pools.empty() && config.addresses.empty()) {
    return Invalid("ipam.range", "no range: give range, ipRanges, pool or addresses");
  }
  std::string gateway;
  if (auto e = GetString(ipam, "gateway", p, gateway)) return *e;
  std::optional<Ip> gateway_ip;
  if (!gateway.empty()) {
    gateway_ip = Ip::Parse(gateway);
    if (!gateway_ip) return Invalid("ipam.gateway", "\"" + gateway + "\" is not an address");
  }
  // enable_overlapping_ranges (whereabouts' default true): addresses are unique across every range of the
  // network, which is what an abode network is. false: each range is a network of its own, so overlapping
  // ranges may hand out the same address, as whereabouts then does.
  const std::string network = AbodeNetworkName(config.network_name);
  std::set<std::string> names;
  for (PoolRequest& pool : config.pools) {
    if (!pool.has_spec) {
      names.insert(pool.name);
      continue;
    }
    if (pool.name.empty()) pool.name = PoolNameFor(config.network_name, pool.cidr);
    pool.network = config.enable_overlapping_ranges ? network : pool.name;
    if (pool.gateway.empty() && gateway_ip && pool.cidr.Contains(*gateway_ip)) pool.gateway = gateway_ip->ToString();
    if (!names.insert(pool.name).second) {
      return Invalid("ipam.ipRanges", "range " + pool.cidr.ToString() + " is given twice (pool " + pool.name + ")");
    }
  }
  for (const auto& [key, value] : ipam.items()) {
    if (IgnoredWhereaboutsKeys().count(key) > 0) {
      config.ignored_keys.push_back(key);
    } else if (KnownKeys().count(key) == 0) {
      config.unknown_keys.push_back(key);
    }
  }
  return config;
}

}  // namespace abode::cni

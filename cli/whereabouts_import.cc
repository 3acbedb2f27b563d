#include "cli/whereabouts_import.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "cni/cni_invocation.h"
#include "cni/ipam_config.h"

namespace abode::cli {
namespace {

using nlohmann::json;

std::string Str(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::map<std::string, std::string> PodrefLabels(const std::string& podref) {
  std::map<std::string, std::string> labels;
  const size_t slash = podref.find('/');
  if (slash == std::string::npos) return labels;
  const std::string ns = cni::LabelValue(podref.substr(0, slash));
  const std::string name = cni::LabelValue(podref.substr(slash + 1));
  if (!ns.empty()) labels[cni::kLabelPodNamespace] = ns;
  if (!name.empty()) labels[cni::kLabelPodName] = name;
  labels["imported-from"] = "whereabouts";
  return labels;
}

// The owner of a whereabouts allocation; entries of old whereabouts versions carry no interface: eth0.
std::string OwnerOf(const json& entry, const std::string& id_key) {
  std::string ifname = Str(entry, "ifname");
  if (ifname.empty()) ifname = "eth0";
  return cni::OwnerKey(Str(entry, id_key.c_str()), ifname);
}

absl::Status ReadPool(const json& object, const std::string& where, WhereaboutsImport& into) {
  const std::string name = Str(object["metadata"], "name");
  const json& spec = object.contains("spec") ? object["spec"] : json::object();
  auto cidr = cni::Prefix::Parse(Str(spec, "range"));
  if (!cidr) return absl::InvalidArgumentError(absl::StrCat(where, ": spec.range: \"", Str(spec, "range"), "\" is not a CIDR"));
  const cni::Prefix network_cidr{cidr->Network(), cidr->length};
  // The name is whereabouts' NormalizeRange of the range, prefixed by "NETWORK-" for a named network.
  const std::string unnamed = cni::PoolNameFor("", network_cidr);
  std::string network_name;
  if (name != unnamed) {
    if (name.size() > unnamed.size() + 1 && name.compare(name.size() - unnamed.size(), unnamed.size(), unnamed) == 0 &&
        name[name.size() - unnamed.size() - 1] == '-') {
      network_name = name.substr(0, name.size() - unnamed.size() - 1);
    } else {
      into.notes.push_back(absl::StrCat(where, ": the name does not end in its range (", unnamed,
                                        "), so it is taken as the network name (node slice pools are not imported)"));
      network_name = name;
    }
  }
  ImportedPool pool;
  pool.source = where;
  pool.spec.set_name(cni::PoolNameFor(network_name, network_cidr));
  pool.spec.set_cidr(network_cidr.ToString());
  pool.spec.set_network(cni::AbodeNetworkName(network_name));
  pool.spec.set_purpose(v1::POOL_PURPOSE_WORKLOAD);
  if (auto it = spec.find("allocations"); it != spec.end() && it->is_object()) {
    for (const auto& [offset, entry] : it->items()) {
      const std::string at = absl::StrCat(where, "[", offset, "]");
      cni::u128 value = 0;
      bool valid = !offset.empty() && offset.size() <= 39;
      for (char c : offset) {
        if (c < '0' || c > '9') valid = false;
        value = value * 10 + static_cast<cni::u128>(c - '0');
      }
      const cni::Ip ip{network_cidr.ip.version, network_cidr.ip.value + value};
      if (!valid || !entry.is_object() || !network_cidr.Contains(ip) || ip.value < network_cidr.ip.value) {
        into.conflicts.push_back(absl::StrCat(at, ": not an offset inside ", network_cidr.ToString(), " with an id"));
        continue;
      }
      if (Str(entry, "id").empty()) {
        into.conflicts.push_back(absl::StrCat(at, ": no container id"));
        continue;
      }
      pool.allocations.push_back(
          ImportedAllocation{ip.ToString(), OwnerOf(entry, "id"), PodrefLabels(Str(entry, "podref")), at});
    }
  }
  into.pools.push_back(std::move(pool));
  return absl::OkStatus();
}

// An OverlappingRangeIPReservation is named by its address (IPv6 with '-' for ':'), prefixed by "NETWORK-"
// for a named network.
absl::Status ReadReservation(const json& object, const std::string& where, WhereaboutsImport& into) {
  const std::string name = Str(object["metadata"], "name");
  const json& spec = object.contains("spec") ? object["spec"] : json::object();
  for (size_t start = 0; start <= name.size(); start = name.find('-', start) + 1) {
    std::string candidate = name.substr(start);
    auto ip = cni::Ip::Parse(candidate);
    if (!ip) {
      std::replace(candidate.begin(), candidate.end(), '-', ':');
      ip = cni::Ip::Parse(candidate);
    }
    if (ip) {
      const std::string network = start == 0 ? "" : name.substr(0, start - 1);
      into.reservations.emplace_back(
          network, ImportedAllocation{ip->ToString(), OwnerOf(spec, "containerid"), PodrefLabels(Str(spec, "podref")), where});
      return absl::OkStatus();
    }
    if (name.find('-', start) == std::string::npos) break;
  }
  return absl::InvalidArgumentError(absl::StrCat(where, ": metadata.name does not end in an address"));
}

}  // namespace

absl::Status ReadWhereaboutsExport(std::string_view text, const std::string& file, WhereaboutsImport& into) {
  const json root = json::parse(text, nullptr, false);
  if (root.is_discarded() || !root.is_object()) return absl::InvalidArgumentError(absl::StrCat(file, ": not a JSON object"));
  std::vector<json> objects;
  if (root.contains("items")) {
    if (!root["items"].is_array()) return absl::InvalidArgumentError(absl::StrCat(file, ": items: must be an array"));
    objects.assign(root["items"].begin(), root["items"].end());
  } else {
    objects.push_back(root);
  }
  for (size_t i = 0; i < objects.size(); ++i) {
    const json& object = objects[i];
    if (!object.is_object() || !object.contains("metadata") || !object["metadata"].is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(file, ": items[", i, "]: not a Kubernetes object"));
    }
    const std::string kind = Str(object, "kind");
    const std::string where = absl::StrCat(file, ": ", kind, " ", Str(object["metadata"], "name"));
    if (kind == "IPPool") {
      if (absl::Status s = ReadPool(object, where, into); !s.ok()) return s;
    } else if (kind == "OverlappingRangeIPReservation") {
      if (absl::Status s = ReadReservation(object, where, into); !s.ok()) return s;
    } else {
      into.notes.push_back(absl::StrCat(file, ": items[", i, "]: kind \"", kind, "\" skipped"));
    }
  }
  return absl::OkStatus();
}

absl::Status ApplyNetworkConfig(std::string_view text, const std::string& file, WhereaboutsImport& into) {
  // A bare config, or a NetworkAttachmentDefinition whose spec.config holds it as a string.
  std::string config(text);
  const json root = json::parse(text, nullptr, false);
  if (root.is_object() && root.contains("spec") && root["spec"].is_object() && root["spec"].contains("config") &&
      root["spec"]["config"].is_string()) {
    config = root["spec"]["config"].get<std::string>();
  }
  auto parsed = cni::ParseNetworkConfig(config);
  if (!parsed.ok()) return absl::InvalidArgumentError(absl::StrCat(file, ": ", parsed.error().msg));
  for (const cni::PoolRequest& request : parsed->pools) {
    for (ImportedPool& pool : into.pools) {
      if (pool.spec.name() != request.name) continue;
      pool.spec.set_range_start(request.range_start);
      pool.spec.set_range_end(request.range_end);
      pool.spec.mutable_exclude()->Assign(request.exclude.begin(), request.exclude.end());
      pool.spec.set_gateway(request.gateway);
      pool.spec.set_network(request.network);
    }
  }
  return absl::OkStatus();
}

void ResolveReservations(WhereaboutsImport& import) {
  for (const auto& [network, reservation] : import.reservations) {
    const auto ip = cni::Ip::Parse(reservation.address);
    ImportedPool* home = nullptr;
    for (ImportedPool& pool : import.pools) {
      const auto cidr = cni::Prefix::Parse(pool.spec.cidr());
      if (cidr && cidr->Contains(*ip) && pool.spec.network() == cni::AbodeNetworkName(network)) home = &pool;
    }
    if (home == nullptr) {
      import.notes.push_back(absl::StrCat(reservation.source, ": no imported IPPool holds ", reservation.address,
                                          "; skipped"));
      continue;
    }
    auto listed = std::find_if(home->allocations.begin(), home->allocations.end(),
                               [&](const ImportedAllocation& a) { return a.address == reservation.address; });
    if (listed == home->allocations.end()) {
      home->allocations.push_back(reservation);
    } else if (listed->owner != reservation.owner) {
      import.conflicts.push_back(absl::StrCat(reservation.address, ": ", listed->source, " says ", listed->owner, ", ",
                                              reservation.source, " says ", reservation.owner));
      home->allocations.erase(listed);
    }
  }
  import.reservations.clear();
}

}  // namespace abode::cli

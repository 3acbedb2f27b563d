#include "cni/cni_result.h"

#include <nlohmann/json.hpp>

namespace abode::cni {

using nlohmann::json;

std::string ErrorJson(const CniError& error, const std::string& cni_version) {
  json j = {{"cniVersion", cni_version.empty() ? SupportedVersions().back() : cni_version},
            {"code", error.code},
            {"msg", error.msg}};
  if (!error.details.empty()) j["details"] = error.details;
  return j.dump(2) + "\n";
}

std::string AddResultJson(const IpamConfig& config, const std::vector<AllocatedIp>& ips) {
  const bool with_version = CompareVersions(config.cni_version, "1.0.0") < 0;
  json out = {{"cniVersion", config.cni_version}, {"ips", json::array()}};
  for (const AllocatedIp& ip : ips) {
    json entry = {{"address", ip.address + "/" + std::to_string(ip.prefix_length)}};
    if (!ip.gateway.empty()) entry["gateway"] = ip.gateway;
    if (with_version) entry["version"] = ip.address.find(':') == std::string::npos ? "4" : "6";
    out["ips"].push_back(std::move(entry));
  }
  if (!config.routes.empty()) out["routes"] = config.routes;
  if (!config.dns.empty()) out["dns"] = config.dns;
  return out.dump(2) + "\n";
}

std::string VersionJson(const std::string& requested) {
  return json{{"cniVersion", requested.empty() ? SupportedVersions().back() : requested},
              {"supportedVersions", SupportedVersions()}}
             .dump(2) +
         "\n";
}

Result<std::vector<std::string>> PrevResultAddresses(const json& prev_result) {
  std::vector<std::string> out;
  if (!prev_result.is_object()) return CniError{kInvalidConfig, "prevResult: required for CHECK", ""};
  auto it = prev_result.find("ips");
  if (it == prev_result.end() || it->is_null()) return out;
  if (!it->is_array()) return CniError{kInvalidConfig, "prevResult.ips: must be an array", ""};
  for (size_t i = 0; i < it->size(); ++i) {
    const json& ip = (*it)[i];
    const std::string field = "prevResult.ips[" + std::to_string(i) + "].address";
    if (!ip.is_object() || !ip.contains("address") || !ip["address"].is_string()) {
      return CniError{kInvalidConfig, field + ": required string", ""};
    }
    auto prefix = Prefix::Parse(ip["address"].get<std::string>());
    if (!prefix) return CniError{kInvalidConfig, field + ": not address/prefix", ""};
    out.push_back(prefix->ToString());
  }
  return out;
}

}  // namespace abode::cni

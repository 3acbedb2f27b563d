// What the plugin prints: ADD results in the format of the requested cniVersion, the VERSION answer, and
// the addresses of a CHECK's prevResult.
#ifndef ABODE_CNI_CNI_RESULT_H_
#define ABODE_CNI_CNI_RESULT_H_

#include <string>
#include <vector>

#include "cni/cni_error.h"
#include "cni/ipam_config.h"
#include "cni/local_protocol.h"

namespace abode::cni {

// The IPAM result: ips (with "version" for 0.3.x and 0.4.0), routes and dns from the configuration.
// `ips` are the allocated addresses followed by static addresses outside every range.
std::string AddResultJson(const IpamConfig& config, const std::vector<AllocatedIp>& ips);
// {"cniVersion": ..., "supportedVersions": [...]}. An empty `requested` answers with the newest version.
std::string VersionJson(const std::string& requested);
// "address/prefix" of every entry of prevResult.ips (canonical form). Error 7 naming the field.
Result<std::vector<std::string>> PrevResultAddresses(const nlohmann::json& prev_result);

}  // namespace abode::cni

#endif  // ABODE_CNI_CNI_RESULT_H_

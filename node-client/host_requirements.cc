#include "host_requirements.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"

namespace abode::node {

std::string ProcSysctls::Path(const std::string& name) const {
  return absl::StrCat(root_, "/", absl::StrReplaceAll(name, {{".", "/"}}));
}

absl::StatusOr<std::string> ProcSysctls::Read(const std::string& name) {
  std::ifstream in(Path(name));
  if (!in) return absl::NotFoundError(absl::StrCat(name, " does not exist"));
  std::string value;
  std::getline(in, value);
  return std::string(absl::StripAsciiWhitespace(value));
}

absl::Status ProcSysctls::Write(const std::string& name, const std::string& value) {
  std::ofstream out(Path(name));
  if (!out) return absl::NotFoundError(absl::StrCat(name, " cannot be opened: ", std::strerror(errno)));
  out << value << "\n";
  out.flush();
  if (!out) return absl::PermissionDeniedError(absl::StrCat("cannot set ", name, ": ", std::strerror(errno)));
  return absl::OkStatus();
}

std::string HostRequirement::ToString() const { return absl::StrCat(sysctl, "=", value, " (", why, ")"); }

std::vector<HostRequirement> RequirementsOf(IpFamily family, bool translates, bool magic_on_bridge) {
  std::vector<HostRequirement> out;
  const bool v4 = family == IpFamily::kIpv4;
  if (translates) {
    out.push_back({v4 ? "net.ipv4.ip_forward" : "net.ipv6.conf.all.forwarding", "1",
                   "translated traffic is forwarded to the workload"});
  }
  if (magic_on_bridge) {
    out.push_back({v4 ? "net.bridge.bridge-nf-call-iptables" : "net.bridge.bridge-nf-call-ip6tables", "1",
                   "with br_netfilter loaded: a workload's replies to a neighbour on the magic interface's bridge "
                   "pass netfilter to be translated back"});
  }
  return out;
}

HostRequirements::HostRequirements(SysctlAccess* sysctls, bool manage) : sysctls_(sysctls), manage_(manage) {}

std::vector<HostRequirement> HostRequirements::Check(const std::set<HostRequirement>& requirements) {
  std::vector<HostRequirement> unmet;
  for (const HostRequirement& r : requirements) {
    absl::StatusOr<std::string> value = sysctls_->Read(r.sysctl);
    if ((!value.ok() || *value != r.value) && manage_) {
      if (absl::Status set = sysctls_->Write(r.sysctl, r.value); !set.ok()) {
        spdlog::error("--manage-sysctls: {}", set.ToString());
      } else {
        spdlog::info("--manage-sysctls: set {}={}", r.sysctl, r.value);
      }
      value = sysctls_->Read(r.sysctl);
    }
    const bool met = value.ok() && *value == r.value;
    if (!met) unmet.push_back(r);
    std::lock_guard<std::mutex> lock(mu_);
    bool& was_unmet = unmet_[r.sysctl];
    if (!met && !was_unmet) {
      spdlog::error("host requirement not met: set {} (now {}; --manage-sysctls sets it)", r.ToString(),
                    value.ok() ? *value : std::string(value.status().message()));
    }
    was_unmet = !met;
  }
  return unmet;
}

std::map<std::string, bool> HostRequirements::unmet() const {
  std::lock_guard<std::mutex> lock(mu_);
  return unmet_;
}

bool IsBridge(const std::string& interface) {
  struct stat st;
  return !interface.empty() && ::stat(("/sys/class/net/" + interface + "/bridge").c_str(), &st) == 0;
}

}  // namespace abode::node

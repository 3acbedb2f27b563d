// What abode-node's assignments need from the host's kernel settings, checked and said (or set, with
// --manage-sysctls): forwarding for each family whose magic or elastic addresses are translated to workloads
// (a translated packet is routed on to the workload), and, where the magic interface is a bridge, bridged
// traffic passing netfilter (br_netfilter, net.bridge.bridge-nf-call-iptables / -ip6tables), without which a
// workload's reply to a neighbour on the same bridge bypasses the translation back and is lost.
//
// Thread safety: HostRequirements is used by one thread at a time (the reconciler's); unmet() may be read from
// any thread.
#ifndef ABODE_NODE_CLIENT_HOST_REQUIREMENTS_H_
#define ABODE_NODE_CLIENT_HOST_REQUIREMENTS_H_

#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kernel_model.h"

namespace abode::node {

// The kernel's settings, by sysctl name ("net.ipv4.ip_forward").
class SysctlAccess {
 public:
  virtual ~SysctlAccess() = default;
  // The value without its trailing newline; NotFound when the setting does not exist (e.g. br_netfilter is not
  // loaded).
  virtual absl::StatusOr<std::string> Read(const std::string& name) = 0;
  virtual absl::Status Write(const std::string& name, const std::string& value) = 0;
};

// /proc/sys of the calling process's network namespace.
class ProcSysctls final : public SysctlAccess {
 public:
  // `root` holds the settings as /proc/sys does: net.ipv4.ip_forward is root/net/ipv4/ip_forward. A container
  // whose /proc/sys is read-only reaches the host's through a mount elsewhere (--sysctl-dir).
  explicit ProcSysctls(std::string root = "/proc/sys") : root_(std::move(root)) {}
  absl::StatusOr<std::string> Read(const std::string& name) override;
  absl::Status Write(const std::string& name, const std::string& value) override;

 private:
  std::string Path(const std::string& name) const;
  std::string root_;
};

// One setting an assignment needs.
struct HostRequirement {
  std::string sysctl;  // e.g. "net.ipv4.ip_forward"
  std::string value;   // e.g. "1"
  std::string why;

  std::string ToString() const;  // "net.ipv4.ip_forward=1 (...why...)"
  auto operator<=>(const HostRequirement&) const = default;
};

// What an assignment of `family` needs: forwarding when it translates to workloads; bridged traffic through
// netfilter when it is a magic address on a bridge.
std::vector<HostRequirement> RequirementsOf(IpFamily family, bool translates, bool magic_on_bridge);

class HostRequirements {
 public:
  // `sysctls` is not owned and must outlive this. `manage`: set unmet requirements instead of only saying them.
  HostRequirements(SysctlAccess* sysctls, bool manage);

  // Checks each of `requirements` (and sets it when managing); returns those unmet. Each newly unmet
  // requirement is logged once.
  std::vector<HostRequirement> Check(const std::set<HostRequirement>& requirements);

  // Every requirement checked so far and whether it is unmet now (for metrics).
  std::map<std::string, bool> unmet() const;

 private:
  SysctlAccess* const sysctls_;
  const bool manage_;
  mutable std::mutex mu_;
  std::map<std::string, bool> unmet_ ABSL_GUARDED_BY(mu_);  // by sysctl
};

// Whether `interface` is a bridge (sysfs of the calling process's mount namespace).
bool IsBridge(const std::string& interface);

}  // namespace abode::node

#endif  // ABODE_NODE_CLIENT_HOST_REQUIREMENTS_H_

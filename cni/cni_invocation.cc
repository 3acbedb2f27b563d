#include "cni/cni_invocation.h"

#include "cni/ipam_config.h"

namespace abode::cni {
namespace {

CniError BadEnv(const std::string& variable, const std::string& why) {
  return CniError{kInvalidEnvironment, variable + ": " + why, ""};
}

bool ValidContainerId(std::string_view id) {
  if (id.empty() || id.size() > 200) return false;
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                    c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}

bool ValidIfname(std::string_view name) {
  if (name.empty() || name.size() > 15 || name == "." || name == "..") return false;
  for (char c : name) {
    if (c == '/' || c == ':' || c <= ' ' || c == 0x7f) return false;
  }
  return true;
}

std::string Lookup(const std::map<std::string, std::string>& env, const std::string& key) {
  auto it = env.find(key);
  return it == env.end() ? std::string() : it->second;
}

}  // namespace

Result<Invocation> ParseInvocation(const std::map<std::string, std::string>& env) {
  Invocation inv;
  inv.command = Lookup(env, "CNI_COMMAND");
  if (inv.command.empty()) return BadEnv("CNI_COMMAND", "not set");
  const bool attach = inv.command == "ADD" || inv.command == "DEL" || inv.command == "CHECK";
  if (!attach && inv.command != "VERSION" && inv.command != "GC" && inv.command != "STATUS") {
    return BadEnv("CNI_COMMAND", "unknown command \"" + inv.command + "\"");
  }
  if (!attach) return inv;
  inv.container_id = Lookup(env, "CNI_CONTAINERID");
  if (!ValidContainerId(inv.container_id)) {
    return BadEnv("CNI_CONTAINERID", inv.container_id.empty() ? "not set" : "must be 1-200 of [A-Za-z0-9_.-]");
  }
  inv.ifname = Lookup(env, "CNI_IFNAME");
  if (!ValidIfname(inv.ifname)) {
    return BadEnv("CNI_IFNAME", inv.ifname.empty() ? "not set" : "\"" + inv.ifname + "\" is not an interface name");
  }
  inv.netns = Lookup(env, "CNI_NETNS");
  if (inv.netns.empty() && inv.command != "DEL") return BadEnv("CNI_NETNS", "not set");
  const std::string args = Lookup(env, "CNI_ARGS");
  size_t start = 0;
  while (start < args.size()) {
    size_t end = args.find(';', start);
    if (end == std::string::npos) end = args.size();
    const std::string pair = args.substr(start, end - start);
    start = end + 1;
    if (pair.empty()) continue;
    const size_t eq = pair.find('=');
    if (eq == std::string::npos || eq == 0) return BadEnv("CNI_ARGS", "\"" + pair + "\" is not KEY=VALUE");
    inv.args[pair.substr(0, eq)] = pair.substr(eq + 1);
  }
  return inv;
}

std::string OwnerKey(std::string_view container_id, std::string_view ifname) {
  return "cni/" + std::string(container_id) + "/" + std::string(ifname);
}

bool ParseOwnerKey(std::string_view owner, std::string* container_id, std::string* ifname) {
  if (owner.substr(0, 4) != "cni/") return false;
  owner.remove_prefix(4);
  const size_t slash = owner.rfind('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == owner.size()) return false;
  *container_id = std::string(owner.substr(0, slash));
  *ifname = std::string(owner.substr(slash + 1));
  return true;
}

std::string LabelValue(std::string_view value) {
  std::string out;
  for (char c : value) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                    c == '.' || c == '-';
    out.push_back(ok ? c : '_');
  }
  if (out.size() > 63) {
    out.resize(54);
    out += "-" + ShortHash(value);
  }
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); };
  while (!out.empty() && !alnum(out.back())) out.pop_back();
  size_t first = 0;
  while (first < out.size() && !alnum(out[first])) ++first;
  return out.substr(first);
}

std::map<std::string, std::string> AttachmentLabels(const Invocation& invocation, std::string_view network) {
  std::map<std::string, std::string> labels;
  for (auto [arg, label] : {std::pair{"K8S_POD_NAMESPACE", kLabelPodNamespace}, std::pair{"K8S_POD_NAME", kLabelPodName},
                            std::pair{"K8S_POD_UID", kLabelPodUid}}) {
    auto it = invocation.args.find(arg);
    if (it == invocation.args.end()) continue;
    std::string value = LabelValue(it->second);
    if (!value.empty()) labels[label] = value;
  }
  if (std::string value = LabelValue(network); !value.empty()) labels[kLabelNetwork] = value;
  return labels;
}

}  // namespace abode::cni

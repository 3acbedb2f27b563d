#include "cni/installer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <utility>

#include "cni/ip_text.h"
#include "cni/ipam_config.h"

namespace abode::cni {
namespace {

using nlohmann::json;

// Owns one file descriptor.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  // Closes now, reporting the result (a delayed write error shows here).
  int Close() { return ::close(std::exchange(fd_, -1)); }

 private:
  int fd_;
};

CniError Invalid(const std::string& field, const std::string& why) {
  return CniError{kInvalidConfig, field + ": " + why, ""};
}

CniError Io(const std::string& what, const std::string& path, int err) {
  return CniError{kIoFailure, what + " " + path + ": " + std::strerror(err), ""};
}

std::string Directory(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

Outcome CheckAbsolute(const std::string& path, const std::string& field) {
  if (path.empty() || path.front() != '/') return Invalid(field, "\"" + path + "\" must be an absolute path");
  return std::nullopt;
}

Result<std::string> ReadFile(const std::string& path, const std::string& field) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return Io(field + ": cannot open", path, errno);
  std::string text;
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Io(field + ": cannot read", path, errno);
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  return text;
}

// A bridge network whose IPAM is abode, drawing from one range.
std::string MakeConflist(const InstallOptions& o) {
  json plugin = {{"type", "bridge"},
                 {"bridge", o.bridge},
                 {"isGateway", true},
                 {"ipMasq", false},
                 {"ipam", {{"type", "abode"}, {"range", o.range}}}};
  json list = {{"cniVersion", "1.0.0"}, {"name", o.network}, {"plugins", json::array({plugin})}};
  return list.dump(2) + "\n";
}

}  // namespace

Outcome CheckConflist(const std::string& text, const std::string& field) {
  const json root = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded() || !root.is_object()) return Invalid(field, "not a JSON object");
  auto version = root.find("cniVersion");
  if (version == root.end() || !version->is_string() || !IsSupportedVersion(version->get<std::string>())) {
    return Invalid(field, "cniVersion: missing, or a version abode does not speak");
  }
  auto name = root.find("name");
  if (name == root.end() || !name->is_string() || name->get<std::string>().empty()) {
    return Invalid(field, "name: required");
  }
  auto plugins = root.find("plugins");
  if (plugins == root.end() || !plugins->is_array() || plugins->empty()) {
    return Invalid(field, "plugins: a non-empty array is required");
  }
  int abode_plugins = 0;
  for (size_t i = 0; i < plugins->size(); ++i) {
    const json& p = (*plugins)[i];
    const std::string at = field + ": plugins[" + std::to_string(i) + "]";
    if (!p.is_object() || !p.contains("type") || !p["type"].is_string()) return Invalid(at, "type: required");
    auto ipam = p.find("ipam");
    if (ipam == p.end() || !ipam->is_object() || ipam->value("type", "") != "abode") continue;
    ++abode_plugins;
    // What the runtime hands the plugin: the plugin's own section with the list's version and name.
    json config = p;
    config["cniVersion"] = *version;
    config["name"] = *name;
    Result<IpamConfig> parsed = ParseNetworkConfig(config.dump());
    if (!parsed.ok()) return Invalid(at, parsed.error().msg);
  }
  if (abode_plugins != 1) {
    return Invalid(field, "plugins: exactly one plugin must have \"ipam\": {\"type\": \"abode\"}");
  }
  return std::nullopt;
}

Result<InstallPlan> PlanInstall(const InstallOptions& o) {
  InstallPlan plan;
  if (auto e = CheckAbsolute(o.plugin, "--plugin")) return *e;
  struct stat st {};
  if (::stat(o.plugin.c_str(), &st) != 0) return Io("--plugin: cannot read", o.plugin, errno);
  if (!S_ISREG(st.st_mode) || (st.st_mode & S_IXUSR) == 0) {
    return Invalid("--plugin", o.plugin + " is not an executable file");
  }
  if (auto e = CheckAbsolute(o.cni_bin_dir, "--cni-bin-dir")) return *e;
  plan.plugin_destination = o.cni_bin_dir + "/abode";

  const bool from_flags = !o.network.empty() || !o.range.empty();
  if (!o.conflist_file.empty() && from_flags) {
    return Invalid("--conflist-file", "give either a file or --network/--range, not both");
  }
  if (o.conflist_file.empty() && !from_flags) return plan;
  if (o.conflist_name.empty() || o.conflist_name.find('/') != std::string::npos ||
      o.conflist_name.front() == '.' || o.conflist_name.size() < 9 ||
      o.conflist_name.compare(o.conflist_name.size() - 9, 9, ".conflist") != 0) {
    return Invalid("--conflist-name", "\"" + o.conflist_name + "\" must be a file name ending in .conflist");
  }
  if (auto e = CheckAbsolute(o.cni_conf_dir, "--cni-conf-dir")) return *e;
  if (!o.conflist_file.empty()) {
    Result<std::string> text = ReadFile(o.conflist_file, "--conflist-file");
    if (!text.ok()) return text.error();
    if (auto e = CheckConflist(*text, "--conflist-file " + o.conflist_file)) return *e;
    plan.conflist = *text;
  } else {
    if (o.network.empty()) return Invalid("--network", "required with --range");
    if (o.range.empty()) return Invalid("--range", "required with --network");
    if (o.bridge.empty()) return Invalid("--bridge", "required with --network");
    plan.conflist = MakeConflist(o);
    // The flags' values reach the message: "--network/--range: ipam.range: ..." names the culprit.
    if (auto e = CheckConflist(plan.conflist, "--network/--bridge/--range")) return *e;
  }
  plan.conflist_destination = o.cni_conf_dir + "/" + o.conflist_name;
  if (!o.overwrite_conflist && ::access(plan.conflist_destination.c_str(), F_OK) == 0) {
    Result<std::string> existing = ReadFile(plan.conflist_destination, "--conflist-name");
    if (!existing.ok()) return existing.error();
    if (CheckConflist(*existing, plan.conflist_destination)) {
      return Invalid("--conflist-name", plan.conflist_destination +
                                            " exists and is not an abode configuration; it is left alone (pick "
                                            "another --conflist-name, or replace it with --overwrite-conflist)");
    }
  }
  return plan;
}

Outcome WriteFileAtomically(const std::string& path, const std::string& content, unsigned mode) {
  const std::string dir = Directory(path);
  const std::string tmp = dir + "/." + path.substr(dir.size() + (dir == "/" ? 0 : 1)) + ".tmp" +
                          std::to_string(::getpid());
  Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (fd.get() < 0) return Io("cannot create", tmp, errno);
  auto fail = [&](const std::string& what, int err) {
    ::unlink(tmp.c_str());
    return Io(what, tmp, err);
  };
  for (size_t done = 0; done < content.size();) {
    const ssize_t n = ::write(fd.get(), content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail("cannot write", errno);
    done += static_cast<size_t>(n);
  }
  if (::fchmod(fd.get(), mode) != 0) return fail("cannot chmod", errno);
  if (::fsync(fd.get()) != 0) return fail("cannot sync", errno);
  if (fd.Close() != 0) return fail("cannot close", errno);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return fail("cannot rename to " + path + ":", errno);
  Fd dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir_fd.get() < 0 || ::fsync(dir_fd.get()) != 0) return Io("cannot sync", dir, errno);
  return std::nullopt;
}

Outcome Install(const InstallOptions& options, const InstallPlan& plan) {
  Result<std::string> binary = ReadFile(options.plugin, "--plugin");
  if (!binary.ok()) return binary.error();
  if (auto e = WriteFileAtomically(plan.plugin_destination, *binary, 0755)) return e;
  if (plan.conflist_destination.empty()) return std::nullopt;
  return WriteFileAtomically(plan.conflist_destination, plan.conflist, 0644);
}

}  // namespace abode::cni

#include "cni/plugin.h"

#include <errno.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <ctime>

#include "cni/cni_invocation.h"
#include "cni/cni_result.h"
#include "cni/ipam_config.h"
#include "node-client/unique_fd.h"
#include "tracing/trace_context.h"

namespace abode::cni {
namespace {

using Clock = std::chrono::steady_clock;

int64_t NowUnixNs() {
  timespec ts;
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}


// The cniVersion of stdin, if it has one, for error JSON written before the configuration is parsed.
std::string VersionOf(const std::string& text) {
  const auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_object() && j.contains("cniVersion") && j["cniVersion"].is_string()) {
    return j["cniVersion"].get<std::string>();
  }
  return "";
}

PluginOutput Fail(const CniError& error, const std::string& version, std::string log = "") {
  return PluginOutput{1, ErrorJson(error, version), std::move(log), ""};
}

bool LevelEnabled(const std::string& configured, const std::string& level) {
  auto rank = [](const std::string& l) {
    if (l == "debug" || l == "verbose") return 0;
    if (l == "" || l == "info") return 1;
    if (l == "error") return 2;
    return 3;  // panic
  };
  return rank(level) >= rank(configured);
}

}  // namespace

std::string NewTraceparent(const std::string& parent) {
  return tracing::FormatTraceparent(tracing::ChildOf(parent));
}

Result<LocalResponse> CallNodeOverSocket(const std::string& socket_path, const LocalRequest& request,
                                         Clock::time_point deadline) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof address.sun_path) {
    return CniError{kInvalidConfig, "ipam.socket_path: longer than " + std::to_string(sizeof address.sun_path - 1), ""};
  }
  std::memcpy(address.sun_path, socket_path.c_str(), socket_path.size() + 1);
  node::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return CniError{kIoFailure, std::string("socket: ") + std::strerror(errno), ""};
  // A full listen backlog makes a blocking connect wait, for at most the send timeout, then fail with EAGAIN:
  // abode-node is busy, keep trying until the deadline.
  const auto left = std::chrono::duration_cast<std::chrono::microseconds>(deadline - Clock::now()).count();
  const timeval wait{static_cast<time_t>(std::max<int64_t>(left, 1000) / 1'000'000),
                     static_cast<suseconds_t>(std::max<int64_t>(left, 1000) % 1'000'000)};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &wait, sizeof wait);
  while (::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    if (errno == EINTR) continue;
    if (errno == EAGAIN && Clock::now() < deadline) {
      ::usleep(1000);
      continue;
    }
    return CniError{kTryAgainLater, "abode-node is not reachable at " + socket_path + ": " + std::strerror(errno),
                    "start abode-node (its --cni-socket) on this node"};
  }
  // abode-node may refuse (peer credentials) before reading: its answer is still there to read.
  const Outcome sent = WriteFrame(fd.get(), EncodeRequest(request), deadline);
  auto answer = ReadFrame(fd.get(), deadline);
  if (sent && !answer.ok()) return *sent;
  if (!answer.ok()) {
    CniError e = answer.error();
    if (e.code == kIoFailure) e = CniError{kTryAgainLater, "abode-node closed the connection: " + e.msg, ""};
    return e;
  }
  auto response = DecodeResponse(*answer);
  // The plugin's end as abode-node should record it; a failure to send it changes nothing for the caller.
  WriteFrame(fd.get(), EncodeClosing(NowUnixNs()), Clock::now() + std::chrono::milliseconds(50));
  return response;
}

namespace {

PluginOutput Run(const PluginEnvironment& environment, const NodeCall& call_node, std::string* log_file) {
  const Clock::time_point started = Clock::now();
  auto invocation = ParseInvocation(environment.env);
  if (!invocation.ok()) return Fail(invocation.error(), VersionOf(environment.stdin_text));
  if (invocation->command == "VERSION") return PluginOutput{0, VersionJson(VersionOf(environment.stdin_text)), "", ""};

  auto config = ParseNetworkConfig(environment.stdin_text);
  if (!config.ok()) return Fail(config.error(), VersionOf(environment.stdin_text));
  *log_file = config->log_file;
  std::string log;
  auto note = [&](const std::string& level, const std::string& line) {
    if (!config->log_file.empty() && LevelEnabled(config->log_level, level)) {
      log += "[" + level + "] " + invocation->command + " " + invocation->container_id + " " + line + "\n";
    }
  };
  for (const std::string& key : config->ignored_keys) note("debug", "ignoring whereabouts key ipam." + key);
  for (const std::string& key : config->unknown_keys) note("info", "ignoring unknown key ipam." + key);
  const std::string& version = config->cni_version;
  const std::string& command = invocation->command;
  if ((command == "GC" || command == "STATUS") && CompareVersions(version, "1.1.0") < 0) {
    return Fail(CniError{kIncompatibleVersion, command + " needs cniVersion 1.1.0, the configuration has " + version,
                         ""},
                version, log);
  }
  if (command == "CHECK" && CompareVersions(version, "0.4.0") < 0) {
    return Fail(CniError{kIncompatibleVersion, "CHECK needs cniVersion 0.4.0 or later", ""}, version, log);
  }

  LocalRequest request;
  request.verb = command;
  request.container_id = invocation->container_id;
  request.ifname = invocation->ifname;
  request.network = config->name;
  request.pools = config->pools;
  request.labels = AttachmentLabels(*invocation, config->name);
  request.valid_attachments = config->valid_attachments;
  request.timeout_ms = config->timeout_ms;
  request.plugin_start_unix_ns = environment.start_unix_ns;
  auto parent = environment.env.find("TRACEPARENT");
  if (parent != environment.env.end() && tracing::ParseTraceparent(parent->second)) {
    request.parent_traceparent = parent->second;
  }
  request.traceparent = NewTraceparent(request.parent_traceparent);

  // Static requests: the configuration's addresses and CNI_ARGS IP= (comma separated) with GATEWAY=.
  std::vector<AllocatedIp> unmanaged;
  if (command == "ADD") {
    std::vector<StaticAddress> statics = config->addresses;
    if (auto ip = invocation->args.find("IP"); ip != invocation->args.end()) {
      auto gw = invocation->args.find("GATEWAY");
      size_t start = 0;
      while (start <= ip->second.size()) {
        size_t end = ip->second.find(',', start);
        if (end == std::string::npos) end = ip->second.size();
        const std::string one = ip->second.substr(start, end - start);
        start = end + 1;
        if (one.empty()) continue;
        auto prefix = Prefix::Parse(one, true);
        if (!prefix) return Fail(CniError{kInvalidEnvironment, "CNI_ARGS IP: \"" + one + "\" is not an address", ""}, version, log);
        statics.push_back(StaticAddress{*prefix, gw == invocation->args.end() ? "" : gw->second});
      }
    }
    for (const StaticAddress& s : statics) {
      bool in_pool = false;
      for (const PoolRequest& p : config->pools) in_pool = in_pool || (p.has_spec && p.cidr.Contains(s.address.ip));
      if (in_pool) {
        request.static_addresses.push_back(s.address.ip.ToString());
      } else {
        note("info", "static address " + s.address.ToString() + " is outside every range: returned, not reserved");
        unmanaged.push_back(AllocatedIp{s.address.ip.ToString(), s.address.length, s.gateway, ""});
      }
    }
    if (config->pools.empty()) return PluginOutput{0, AddResultJson(*config, unmanaged), log, ""};
  }
  if (command == "CHECK") {
    auto prev = PrevResultAddresses(config->prev_result);
    if (!prev.ok()) return Fail(prev.error(), version, log);
    request.prev_ips = *prev;
  }
  if (command == "GC" && !config->valid_attachments) note("info", "GC without an attachment list releases nothing");

  auto response = call_node(config->socket_path, request, started + std::chrono::milliseconds(config->timeout_ms));
  if (!response.ok()) {
    CniError e = response.error();
    if (command == "STATUS") e.code = kNotAvailable;
    note("error", e.msg);
    return Fail(e, version, log);
  }
  if (response->error) {
    note("error", response->error->msg);
    return Fail(*response->error, version, log);
  }
  if (command != "ADD") {
    note("debug", "ok");
    return PluginOutput{0, "", log, ""};
  }
  std::vector<AllocatedIp> ips = response->ips;
  for (AllocatedIp& ip : ips) {
    // GATEWAY= overrides the pool's gateway for a static address of the pool's family.
    if (auto gw = invocation->args.find("GATEWAY"); gw != invocation->args.end() && !request.static_addresses.empty()) {
      auto g = Ip::Parse(gw->second);
      if (g && (g->version == 6) == (ip.address.find(':') != std::string::npos)) ip.gateway = g->ToString();
    }
    note("info", "allocated " + ip.address + "/" + std::to_string(ip.prefix_length) + " from pool " + ip.pool);
  }
  for (StaticAddress& s : config->addresses) {
    for (AllocatedIp& ip : ips) {
      if (!s.gateway.empty() && ip.address == s.address.ip.ToString()) ip.gateway = s.gateway;
    }
  }
  ips.insert(ips.end(), unmanaged.begin(), unmanaged.end());
  return PluginOutput{0, AddResultJson(*config, ips), log, ""};
}

}  // namespace

PluginOutput RunPlugin(const PluginEnvironment& environment, const NodeCall& call_node) {
  std::string log_file;
  PluginOutput output = Run(environment, call_node, &log_file);
  output.log_file = log_file;
  return output;
}

}  // namespace abode::cni

#include "cni/local_protocol.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include <nlohmann/json.hpp>

namespace abode::cni {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

CniError Malformed(const std::string& why) { return CniError{kDecodeFailure, "local request: " + why, ""}; }

json PoolToJson(const PoolRequest& p) {
  json j = {{"name", p.name}, {"has_spec", p.has_spec}};
  if (p.has_spec) {
    j["cidr"] = p.cidr.ToString();
    j["range_start"] = p.range_start;
    j["range_end"] = p.range_end;
    j["exclude"] = p.exclude;
    j["gateway"] = p.gateway;
    j["network"] = p.network;
  }
  return j;
}

std::string Str(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

int64_t Int(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number_integer() ? it->get<int64_t>() : 0;
}

Result<PoolRequest> PoolFromJson(const json& j) {
  if (!j.is_object()) return Malformed("pools: entries must be objects");
  PoolRequest p;
  p.name = Str(j, "name");
  p.has_spec = !j.contains("has_spec") || (j["has_spec"].is_boolean() && j["has_spec"].get<bool>());
  if (p.name.empty()) return Malformed("pools[].name: required");
  if (!p.has_spec) return p;
  auto cidr = Prefix::Parse(Str(j, "cidr"));
  if (!cidr) return Malformed("pools[].cidr: not a CIDR");
  p.cidr = *cidr;
  p.range_start = Str(j, "range_start");
  p.range_end = Str(j, "range_end");
  p.gateway = Str(j, "gateway");
  p.network = Str(j, "network");
  if (auto it = j.find("exclude"); it != j.end() && it->is_array()) {
    for (const json& e : *it) {
      if (!e.is_string()) return Malformed("pools[].exclude: strings only");
      p.exclude.push_back(e.get<std::string>());
    }
  }
  return p;
}

Outcome WaitFor(int fd, short events, Clock::time_point deadline) {
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return CniError{kTryAgainLater, "abode-node did not answer in time", ""};
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 60'000)));
    if (n > 0) return std::nullopt;
    if (n < 0 && errno != EINTR) return CniError{kIoFailure, std::string("poll: ") + strerror(errno), ""};
  }
}

void PutU32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xff));
}

void PutBytes(std::string& out, std::string_view bytes) {
  PutU32(out, static_cast<uint32_t>(bytes.size()));
  out.append(bytes);
}

// Reads the relay frames front to back; any short read leaves it failed.
class FrameReader {
 public:
  explicit FrameReader(std::string_view frame) : rest_(frame) {}
  bool Skip(std::string_view magic) {
    ok_ = ok_ && rest_.substr(0, magic.size()) == magic;
    if (ok_) rest_.remove_prefix(magic.size());
    return ok_;
  }
  uint64_t Number(int bytes) {
    uint64_t v = 0;
    if (!ok_ || rest_.size() < static_cast<size_t>(bytes)) {
      ok_ = false;
      return 0;
    }
    for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<unsigned char>(rest_[i]);
    rest_.remove_prefix(bytes);
    return v;
  }
  std::string_view Bytes() {
    const uint64_t size = Number(4);
    if (!ok_ || rest_.size() < size) {
      ok_ = false;
      return {};
    }
    std::string_view out = rest_.substr(0, size);
    rest_.remove_prefix(size);
    return out;
  }
  std::string_view Rest() { return ok_ ? std::exchange(rest_, {}) : std::string_view(); }
  bool ok() const { return ok_; }
  bool at_end() const { return ok_ && rest_.empty(); }

 private:
  std::string_view rest_;
  bool ok_ = true;
};

constexpr std::string_view kInvocation(kInvocationMagic, kInvocationMagicSize);
constexpr std::string_view kOutput(kOutputMagic, kOutputMagicSize);

}  // namespace

bool IsInvocation(std::string_view frame) { return frame.substr(0, kInvocation.size()) == kInvocation; }

std::string EncodeInvocation(const PluginEnvironment& e) {
  std::string out(kInvocation);
  const auto start = static_cast<uint64_t>(e.start_unix_ns);
  PutU32(out, static_cast<uint32_t>(start >> 32));
  PutU32(out, static_cast<uint32_t>(start));
  PutU32(out, static_cast<uint32_t>(e.env.size()));
  for (const auto& [k, v] : e.env) PutBytes(out, k + "=" + v);
  out += e.stdin_text;
  return out;
}

Result<PluginEnvironment> DecodeInvocation(std::string_view frame) {
  FrameReader in(frame);
  PluginEnvironment e;
  in.Skip(kInvocation);
  e.start_unix_ns = static_cast<int64_t>(in.Number(8));
  const uint64_t n = in.Number(4);
  for (uint64_t i = 0; i < n && in.ok(); ++i) {
    const std::string_view entry = in.Bytes();
    const size_t eq = entry.find('=');
    if (!in.ok() || eq == std::string_view::npos || eq == 0) return Malformed("invocation: a malformed environment entry");
    const std::string_view key = entry.substr(0, eq);
    if (key.substr(0, 4) == "CNI_" || key == "TRACEPARENT") e.env[std::string(key)] = std::string(entry.substr(eq + 1));
  }
  e.stdin_text = std::string(in.Rest());
  if (!in.ok()) return Malformed("invocation: truncated");
  return e;
}

std::string EncodeOutput(const PluginOutput& o) {
  std::string out(kOutput);
  PutU32(out, static_cast<uint32_t>(o.exit_code));
  PutBytes(out, o.stdout_text);
  PutBytes(out, o.log_file);
  PutBytes(out, o.log_text);
  return out;
}

Result<PluginOutput> DecodeOutput(std::string_view frame) {
  FrameReader in(frame);
  PluginOutput o;
  in.Skip(kOutput);
  o.exit_code = static_cast<int>(in.Number(4));
  o.stdout_text = std::string(in.Bytes());
  o.log_file = std::string(in.Bytes());
  o.log_text = std::string(in.Bytes());
  if (!in.at_end()) return CniError{kDecodeFailure, "abode-node's answer is not a plugin output", ""};
  return o;
}

std::string EncodeRequest(const LocalRequest& r) {
  json j = {{"verb", r.verb},
            {"container_id", r.container_id},
            {"ifname", r.ifname},
            {"network", r.network},
            {"pools", json::array()},
            {"static_addresses", r.static_addresses},
            {"labels", r.labels},
            {"prev_ips", r.prev_ips},
            {"traceparent", r.traceparent},
            {"parent_traceparent", r.parent_traceparent},
            {"plugin_start_unix_ns", r.plugin_start_unix_ns},
            {"timeout_ms", r.timeout_ms}};
  for (const PoolRequest& p : r.pools) j["pools"].push_back(PoolToJson(p));
  if (r.valid_attachments) {
    json list = json::array();
    for (const auto& [id, ifname] : *r.valid_attachments) list.push_back({{"containerID", id}, {"ifname", ifname}});
    j["valid_attachments"] = list;
  }
  return j.dump();
}

Result<LocalRequest> DecodeRequest(const std::string& text) {
  const json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Malformed("not a JSON object");
  LocalRequest r;
  r.verb = Str(j, "verb");
  if (r.verb != "ADD" && r.verb != "DEL" && r.verb != "CHECK" && r.verb != "GC" && r.verb != "STATUS") {
    return Malformed("verb: \"" + r.verb + "\" is not ADD, DEL, CHECK, GC or STATUS");
  }
  r.container_id = Str(j, "container_id");
  r.ifname = Str(j, "ifname");
  if ((r.verb == "ADD" || r.verb == "DEL" || r.verb == "CHECK") && (r.container_id.empty() || r.ifname.empty())) {
    return Malformed("container_id, ifname: required for " + r.verb);
  }
  r.network = Str(j, "network");
  r.traceparent = Str(j, "traceparent");
  r.parent_traceparent = Str(j, "parent_traceparent");
  r.plugin_start_unix_ns = Int(j, "plugin_start_unix_ns");
  r.timeout_ms = Int(j, "timeout_ms");
  if (r.timeout_ms <= 0) r.timeout_ms = kDefaultTimeoutMs;
  if (auto it = j.find("pools"); it != j.end()) {
    if (!it->is_array()) return Malformed("pools: must be an array");
    for (const json& p : *it) {
      auto pool = PoolFromJson(p);
      if (!pool.ok()) return pool.error();
      r.pools.push_back(*pool);
    }
  }
  for (const char* key : {"static_addresses", "prev_ips"}) {
    auto it = j.find(key);
    if (it == j.end()) continue;
    if (!it->is_array()) return Malformed(std::string(key) + ": must be an array");
    auto& out = std::string(key) == "prev_ips" ? r.prev_ips : r.static_addresses;
    for (const json& s : *it) {
      if (!s.is_string()) return Malformed(std::string(key) + ": strings only");
      out.push_back(s.get<std::string>());
    }
  }
  if (auto it = j.find("labels"); it != j.end()) {
    if (!it->is_object()) return Malformed("labels: must be an object");
    for (const auto& [k, v] : it->items()) {
      if (!v.is_string()) return Malformed("labels." + k + ": must be a string");
      r.labels[k] = v.get<std::string>();
    }
  }
  if (auto it = j.find("valid_attachments"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) return Malformed("valid_attachments: must be an array");
    r.valid_attachments.emplace();
    for (const json& a : *it) {
      if (!a.is_object()) return Malformed("valid_attachments: objects only");
      r.valid_attachments->emplace_back(Str(a, "containerID"), Str(a, "ifname"));
    }
  }
  return r;
}

std::string EncodeResponse(const LocalResponse& r) {
  json j = json::object();
  if (r.error) {
    j["error"] = {{"code", r.error->code}, {"msg", r.error->msg}, {"details", r.error->details}};
    return j.dump();
  }
  j["ips"] = json::array();
  for (const AllocatedIp& ip : r.ips) {
    j["ips"].push_back(
        {{"address", ip.address}, {"prefix_length", ip.prefix_length}, {"gateway", ip.gateway}, {"pool", ip.pool}});
  }
  j["released"] = r.released;
  return j.dump();
}

Result<LocalResponse> DecodeResponse(const std::string& text) {
  const json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return CniError{kDecodeFailure, "abode-node's answer is not JSON", ""};
  LocalResponse r;
  if (auto it = j.find("error"); it != j.end() && it->is_object()) {
    r.error = CniError{static_cast<int>(Int(*it, "code")), Str(*it, "msg"), Str(*it, "details")};
    if (r.error->code == 0) r.error->code = kNodeInternal;
    return r;
  }
  if (auto it = j.find("ips"); it != j.end() && it->is_array()) {
    for (const json& ip : *it) {
      if (!ip.is_object()) return CniError{kDecodeFailure, "abode-node's answer: ips holds a non-object", ""};
      r.ips.push_back(AllocatedIp{Str(ip, "address"), static_cast<int>(Int(ip, "prefix_length")), Str(ip, "gateway"),
                                  Str(ip, "pool")});
    }
  }
  r.released = static_cast<int>(Int(j, "released"));
  return r;
}

std::string EncodeClosing(int64_t plugin_end_unix_ns) {
  return json{{"plugin_end_unix_ns", plugin_end_unix_ns}}.dump();
}

int64_t DecodeClosing(const std::string& text) {
  const json j = json::parse(text, nullptr, false);
  return j.is_object() ? Int(j, "plugin_end_unix_ns") : 0;
}

Outcome WriteFrame(int fd, const std::string& payload, Clock::time_point deadline) {
  if (payload.size() > kMaxFrameBytes) return CniError{kDecodeFailure, "frame too large", ""};
  std::string buffer(4, '\0');
  const uint32_t n = static_cast<uint32_t>(payload.size());
  for (int i = 0; i < 4; ++i) buffer[i] = static_cast<char>((n >> (24 - 8 * i)) & 0xff);
  buffer += payload;
  size_t sent = 0;
  while (sent < buffer.size()) {
    const ssize_t w = ::send(fd, buffer.data() + sent, buffer.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) {
      sent += static_cast<size_t>(w);
    } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (auto e = WaitFor(fd, POLLOUT, deadline)) return e;
    } else if (w < 0 && errno != EINTR) {
      return CniError{kIoFailure, std::string("send: ") + strerror(errno), ""};
    }
  }
  return std::nullopt;
}

Result<std::string> ReadFrame(int fd, Clock::time_point deadline) {
  std::string buffer;
  size_t want = 4;
  bool have_header = false;
  while (true) {
    while (buffer.size() < want) {
      char chunk[65536];
      const ssize_t r = ::recv(fd, chunk, std::min(sizeof chunk, want - buffer.size()), MSG_DONTWAIT);
      if (r > 0) {
        buffer.append(chunk, static_cast<size_t>(r));
      } else if (r == 0) {
        return CniError{kIoFailure, "connection closed mid-message", ""};
      } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (auto e = WaitFor(fd, POLLIN, deadline)) return *e;
      } else if (errno != EINTR) {
        return CniError{kIoFailure, std::string("recv: ") + strerror(errno), ""};
      }
    }
    if (have_header) return buffer.substr(4);
    uint32_t n = 0;
    for (int i = 0; i < 4; ++i) n = (n << 8) | static_cast<unsigned char>(buffer[i]);
    if (n > kMaxFrameBytes) return CniError{kDecodeFailure, "frame of " + std::to_string(n) + " bytes is too large", ""};
    want = 4 + n;
    have_header = true;
  }
}

}  // namespace abode::cni

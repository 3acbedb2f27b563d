// The plugin's conversation with abode-node over its local Unix socket. Each message is one frame: a 4-byte
// big-endian length, then that many bytes. The plugin sends a request, reads the response, then sends a
// closing frame (JSON) with its own end time (so abode-node can record the plugin's whole span) and hangs up.
//
// A request is either the plugin's whole invocation, relayed unparsed (relay_format.h; abode-node runs the
// plugin's logic and answers with its output), or a JSON LocalRequest (the plugin parsed its configuration
// itself and asks for the allocator's part only; the JSON LocalResponse answers).
#ifndef ABODE_CNI_LOCAL_PROTOCOL_H_
#define ABODE_CNI_LOCAL_PROTOCOL_H_

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cni/cni_error.h"
#include "cni/ipam_config.h"
#include "cni/relay_format.h"

namespace abode::cni {

struct LocalRequest {
  std::string verb;  // ADD, DEL, CHECK, GC, STATUS
  std::string container_id;
  std::string ifname;
  std::string network;  // the configuration's name
  std::vector<PoolRequest> pools;
  std::vector<std::string> static_addresses;  // exact addresses to reserve, one per pool at most
  std::map<std::string, std::string> labels;
  std::vector<std::string> prev_ips;  // CHECK: "address/prefix" from prevResult
  std::optional<std::vector<std::pair<std::string, std::string>>> valid_attachments;  // GC
  std::string traceparent;         // the plugin's own span (abode-node records it as service abode-cni)
  std::string parent_traceparent;  // the plugin's parent: TRACEPARENT from its environment, if valid
  int64_t plugin_start_unix_ns = 0;
  int64_t timeout_ms = kDefaultTimeoutMs;
};

struct AllocatedIp {
  std::string address;  // no prefix
  int prefix_length = 0;
  std::string gateway;
  std::string pool;
  bool operator==(const AllocatedIp&) const = default;
};

struct LocalResponse {
  Outcome error;
  std::vector<AllocatedIp> ips;
  int released = 0;  // DEL and GC: allocations released
};

// What the runtime gave the plugin.
struct PluginEnvironment {
  std::map<std::string, std::string> env;  // CNI_* and TRACEPARENT
  std::string stdin_text;
  int64_t start_unix_ns = 0;
};

// What the plugin answers the runtime with.
struct PluginOutput {
  int exit_code = 0;
  std::string stdout_text;
  std::string log_text;  // lines for `log_file`
  std::string log_file;  // ipam.log_file, "" when the configuration names none
};

// Whether a request frame is a relayed invocation (else it is JSON).
bool IsInvocation(std::string_view frame);
// The relay's frames (relay_format.h). Decoding keeps only CNI_* and TRACEPARENT of the environment.
std::string EncodeInvocation(const PluginEnvironment& environment);
Result<PluginEnvironment> DecodeInvocation(std::string_view frame);
std::string EncodeOutput(const PluginOutput& output);
Result<PluginOutput> DecodeOutput(std::string_view frame);

std::string EncodeRequest(const LocalRequest& request);
Result<LocalRequest> DecodeRequest(const std::string& text);
std::string EncodeResponse(const LocalResponse& response);
Result<LocalResponse> DecodeResponse(const std::string& text);
std::string EncodeClosing(int64_t plugin_end_unix_ns);
// The end time from a closing frame, 0 if it holds none.
int64_t DecodeClosing(const std::string& text);

// Framing over a connected stream socket, bounded by `deadline` (steady clock). Errors: kTryAgainLater on
// timeout, kIoFailure on a closed or failed socket, kDecodeFailure on a frame over kMaxFrameBytes.
Outcome WriteFrame(int fd, const std::string& payload, std::chrono::steady_clock::time_point deadline);
Result<std::string> ReadFrame(int fd, std::chrono::steady_clock::time_point deadline);

}  // namespace abode::cni

#endif  // ABODE_CNI_LOCAL_PROTOCOL_H_

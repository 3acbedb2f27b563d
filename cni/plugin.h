// The abode IPAM plugin from environment and stdin to stdout and exit code, with abode-node behind a
// function so that everything but the socket is tested in-process.
#ifndef ABODE_CNI_PLUGIN_H_
#define ABODE_CNI_PLUGIN_H_

#include <chrono>
#include <functional>
#include <map>
#include <string>

#include "cni/cni_error.h"
#include "cni/local_protocol.h"

namespace abode::cni {

// Sends `request` to abode-node at `socket_path` and returns its answer, before `deadline`. Errors are the
// plugin's: kTryAgainLater when abode-node is not there or too slow.
using NodeCall = std::function<Result<LocalResponse>(const std::string& socket_path, const LocalRequest& request,
                                                     std::chrono::steady_clock::time_point deadline)>;

// Over the Unix socket; sends the closing frame with the plugin's end time after the answer.
Result<LocalResponse> CallNodeOverSocket(const std::string& socket_path, const LocalRequest& request,
                                         std::chrono::steady_clock::time_point deadline);

PluginOutput RunPlugin(const PluginEnvironment& environment, const NodeCall& call_node);

// The plugin's own span context: a child of `parent` (a traceparent; its trace id and sampled flag) when it
// is valid, else the root of a new, sampled trace.
std::string NewTraceparent(const std::string& parent);

}  // namespace abode::cni

#endif  // ABODE_CNI_PLUGIN_H_

// abode: the CNI IPAM plugin. A runtime (or a main plugin such as bridge) execs it once per attachment; it
// reads the environment and the network configuration, asks abode-node over its local socket, and prints
// the result or CNI error JSON. It links no gRPC: the warm channel to the allocator lives in abode-node.
// Most calls never reach main(): the relay entry (relay_entry.h) hands them to abode-node whole.
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <exception>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <string>

#include "cni/cni_result.h"
#include "cni/plugin.h"
#include "cni/relay_entry.h"

extern char** environ;

namespace {

// What main() answers in place of asking abode-node again, after the relay entry sent the request and got
// no usable answer (the same errors CallNodeOverSocket gives).
abode::cni::CniError RelayError(int failure) {
  using namespace abode::cni;
  if (failure == kRelayTimedOut) return CniError{kTryAgainLater, "abode-node did not answer in time", ""};
  if (failure == kRelayClosed) {
    return CniError{kTryAgainLater, "abode-node closed the connection: connection closed mid-message", ""};
  }
  return CniError{kDecodeFailure, "abode-node's answer is not a plugin output", ""};
}

}  // namespace

int main() {
  const abode::cni::RelayState& relay = abode_cni_relay;
  abode::cni::PluginEnvironment environment;
  if (relay.start_unix_ns != 0) {
    environment.start_unix_ns = relay.start_unix_ns;
  } else {
    timespec ts;
    ::clock_gettime(CLOCK_REALTIME, &ts);
    environment.start_unix_ns = static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
  }
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    const size_t eq = entry.find('=');
    if (eq == std::string::npos) continue;
    const std::string key = entry.substr(0, eq);
    if (key.rfind("CNI_", 0) == 0 || key == "TRACEPARENT") environment.env[key] = entry.substr(eq + 1);
  }
  abode::cni::PluginOutput output;
  try {
    // The relay entry may have read stdin already, or its beginning.
    if (relay.stdin_prefix_size > 0) environment.stdin_text.assign(relay.stdin_prefix, relay.stdin_prefix_size);
    if (relay.stdin_complete == 0) {
      environment.stdin_text.append(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    }
    abode::cni::NodeCall call = &abode::cni::CallNodeOverSocket;
    if (relay.failure != abode::cni::kRelayNone) {
      call = [&relay](const std::string&, const abode::cni::LocalRequest&, std::chrono::steady_clock::time_point) {
        return abode::cni::Result<abode::cni::LocalResponse>(RelayError(relay.failure));
      };
    }
    output = abode::cni::RunPlugin(environment, call);
  } catch (const std::exception& e) {
    // The code paths above do not throw by design; this keeps even an allocation failure a CNI error.
    output.exit_code = 1;
    output.stdout_text = abode::cni::ErrorJson({abode::cni::kNodeInternal, e.what(), ""}, "");
  }
  std::fwrite(output.stdout_text.data(), 1, output.stdout_text.size(), stdout);
  std::fflush(stdout);
  if (!output.log_text.empty() && !output.log_file.empty()) {
    std::ofstream(output.log_file, std::ios::app) << output.log_text;
  }
  return output.exit_code;
}

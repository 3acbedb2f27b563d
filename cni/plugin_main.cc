// abode: the CNI IPAM plugin. A runtime (or a main plugin such as bridge) execs it once per attachment; it
// reads the environment and the network configuration, asks abode-node over its local socket, and prints
// the result or CNI error JSON. It links no gRPC: the warm channel to the allocator lives in abode-node.
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

extern char** environ;

int main() {
  timespec ts;
  ::clock_gettime(CLOCK_REALTIME, &ts);
  abode::cni::PluginEnvironment environment;
  environment.start_unix_ns = static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    const size_t eq = entry.find('=');
    if (eq == std::string::npos) continue;
    const std::string key = entry.substr(0, eq);
    if (key.rfind("CNI_", 0) == 0 || key == "TRACEPARENT") environment.env[key] = entry.substr(eq + 1);
  }
  abode::cni::PluginOutput output;
  try {
    environment.stdin_text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    output = abode::cni::RunPlugin(environment, &abode::cni::CallNodeOverSocket);
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

// The plugin's relay entry: the executable's entry point (x86-64 builds), run before the C and C++ runtimes
// start. Starting the static C library costs more than the rest of a pod's ADD on a virtual machine (its
// start-up reads the CPU's cache layout with dozens of CPUID instructions, each a trap to the hypervisor;
// ~0.25 ms here, against ~0.07 ms for a whole exec of a binary without it), so the common case skips it:
// for ADD, DEL, CHECK, GC and STATUS the entry reads the environment and stdin with plain system calls,
// relays them unparsed to abode-node (relay_format.h), which runs the plugin's logic (cni/plugin.h) with
// the allocator at hand, prints abode-node's answer, appends its log lines and exits.
//
// Everything else falls through to the ordinary start-up and main() (plugin_main.cc), which does what it
// always did: VERSION; abode-node not reachable (its error JSON and log lines need the configuration
// parsed); an abode-node that does not know the relay (it is asked the old way); a configuration whose
// socket path or timeout the entry cannot read; anything larger than a frame. What the entry did is left
// in `abode_cni_relay` for main(): the start time, the stdin it already read, and a failure that main()
// reports without asking again (a relay that timed out after sending does not wait a second timeout).
#ifndef ABODE_CNI_RELAY_ENTRY_H_
#define ABODE_CNI_RELAY_ENTRY_H_

#include <cstdint>

namespace abode::cni {

enum RelayFailure : int {
  kRelayNone = 0,
  kRelayTimedOut = 1,  // sent, no whole answer before the timeout
  kRelayClosed = 2,    // sent, abode-node closed the connection before a whole answer
  kRelayBadAnswer = 3, // a relay answer that does not decode
};

struct RelayState {
  int64_t start_unix_ns;  // 0: the entry did not run
  const char* stdin_prefix;  // what the entry read from stdin (main reads on after it unless complete)
  uint64_t stdin_prefix_size;
  int stdin_complete;
  int failure;  // RelayFailure
};

}  // namespace abode::cni

// Zero until the entry runs; written by it only, before main() starts.
extern "C" abode::cni::RelayState abode_cni_relay;

#endif  // ABODE_CNI_RELAY_ENTRY_H_

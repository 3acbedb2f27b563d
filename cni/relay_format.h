// The relay frames: the plugin passes its invocation (environment and stdin, unparsed) to abode-node, which
// runs the plugin's logic (cni/plugin.h) and answers with what the plugin prints. Binary, so that the
// plugin's relay entry (cni/relay_entry.cc), which runs before any C or C++ runtime, reads and writes them
// with plain loops. Each travels in the local protocol's frame (a 4-byte big-endian length first).
//
//   invocation: kInvocationMagic, u64 plugin start (Unix ns), u32 n, n x (u32 size, "KEY=VALUE"), stdin (the rest)
//   output:     kOutputMagic, u32 exit code, then stdout, log_file, log_text, each as (u32 size, bytes)
//
// Integers are big-endian. Both magics start with a NUL byte, which no JSON request of the local protocol
// starts with, so one socket serves both. Only constants here: the relay entry includes nothing it would
// have to link.
#ifndef ABODE_CNI_RELAY_FORMAT_H_
#define ABODE_CNI_RELAY_FORMAT_H_

namespace abode::cni {

inline constexpr unsigned kMaxFrameBytes = 1u << 20;

inline constexpr char kInvocationMagic[] = "\0abode-cni-invocation/1";
inline constexpr unsigned kInvocationMagicSize = sizeof(kInvocationMagic) - 1;
inline constexpr char kOutputMagic[] = "\0abode-cni-output/1";
inline constexpr unsigned kOutputMagicSize = sizeof(kOutputMagic) - 1;

}  // namespace abode::cni

#endif  // ABODE_CNI_RELAY_FORMAT_H_

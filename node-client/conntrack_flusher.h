// Interface between abode-node's reconciler and the kernel's connection tracking. A NAT mapping applies to the
// first packet of a flow only: the kernel keeps translating the flow's later packets as its conntrack entry
// says, and traffic refreshes that entry. So when a mapping changes or goes away, the entries it created must be
// deleted, or a client that keeps sending from one socket stays on the old target. The real implementation is
// CtnetlinkConntrackFlusher (ctnetlink_conntrack_flusher.h); the in-memory twin is FakeConntrackFlusher.
#ifndef ABODE_NODE_CLIENT_CONNTRACK_FLUSHER_H_
#define ABODE_NODE_CLIENT_CONNTRACK_FLUSHER_H_

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kernel_model.h"

namespace abode::node {

// Selects conntrack entries of one family. The original direction is the flow as its first packet was seen
// (before NAT); the reply destination of a source-translated flow is the address it was translated to. Empty
// fields match anything.
struct ConntrackFilter {
  IpFamily family = IpFamily::kIpv4;
  std::string original_source;       // canonical IP text
  std::string original_destination;  // canonical IP text
  std::optional<L4Protocol> protocol;
  uint16_t original_destination_port = 0;  // 0: any port; only with a protocol
  std::string reply_destination;           // canonical IP text

  std::string ToString() const;  // "ipv4 flows dst 169.254.210.210 udp dport 8125"
  auto operator<=>(const ConntrackFilter&) const = default;
};

// The flows a mapping translated: for a magic mapping those to its address and port; for an elastic mapping the
// inbound flows to the elastic address and the workload's outbound flows translated to it.
std::vector<ConntrackFilter> FlowsTranslatedBy(const MagicDnat& mapping);
std::vector<ConntrackFilter> FlowsTranslatedBy(const ElasticNat& mapping);

// Thread safety: an instance is used by one thread at a time.
class ConntrackFlusher {
 public:
  virtual ~ConntrackFlusher() = default;

  // Deletes every conntrack entry that matches at least one of `filters`, so that the next packet of those flows
  // is translated by the NAT mappings as they are now. Returns how many entries were deleted; entries that expire
  // meanwhile are not an error. InvalidArgument naming the address if a filter's address does not parse.
  virtual absl::StatusOr<int> Flush(const std::vector<ConntrackFilter>& filters) = 0;
};

}  // namespace abode::node

#endif  // ABODE_NODE_CLIENT_CONNTRACK_FLUSHER_H_

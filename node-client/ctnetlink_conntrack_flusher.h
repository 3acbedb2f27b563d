// ConntrackFlusher on ctnetlink (nfnetlink subsystem NFNL_SUBSYS_CTNETLINK) through libmnl: one dump of the
// family's conntrack table, then one IPCTNL_MSG_CT_DELETE per matching entry, naming it by its original tuple,
// zone and id so that a flow created meanwhile under the same tuple is not the one deleted.
#ifndef ABODE_NODE_CLIENT_CTNETLINK_CONNTRACK_FLUSHER_H_
#define ABODE_NODE_CLIENT_CTNETLINK_CONNTRACK_FLUSHER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "conntrack_flusher.h"
#include "nft_rule_programmer.h"  // MnlSocketPtr

namespace abode::node {

// Acts in the network namespace in which it was created. Thread safety: one thread at a time.
class CtnetlinkConntrackFlusher final : public ConntrackFlusher {
 public:
  // Opens and binds the netlink socket. Needs CAP_NET_ADMIN.
  static absl::StatusOr<std::unique_ptr<CtnetlinkConntrackFlusher>> Create();

  absl::StatusOr<int> Flush(const std::vector<ConntrackFilter>& filters) override;

  // One conntrack entry as the kernel dumps it.
  struct Entry {
    IpAddress original_source, original_destination, reply_source, reply_destination;
    uint8_t protocol = 0;                    // IPPROTO_*
    uint16_t original_destination_port = 0;  // host order; 0 for protocols without ports
    std::vector<uint8_t> original_tuple;     // the CTA_TUPLE_ORIG attribute, header included
    std::optional<uint16_t> zone;            // CTA_ZONE, network order
    std::optional<uint32_t> id;              // CTA_ID, network order
  };
  // Every entry of `family` (for tests and diagnostics).
  absl::StatusOr<std::vector<Entry>> List(IpFamily family);

 private:
  explicit CtnetlinkConntrackFlusher(MnlSocketPtr socket);
  // Sends `request` and reads until its dump ends (entries appended to `dumped`) or its ack arrives. Returns the
  // kernel's error as a status with errno's text.
  absl::Status Exchange(struct nlmsghdr* request, std::vector<Entry>* dumped);

  MnlSocketPtr socket_;
  uint32_t port_id_ = 0;
  uint32_t sequence_ = 0;
  std::vector<uint8_t> buffer_;
};

}  // namespace abode::node

#endif  // ABODE_NODE_CLIENT_CTNETLINK_CONNTRACK_FLUSHER_H_

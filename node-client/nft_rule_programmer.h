// RuleProgrammer on nf_tables through libnftnl and libmnl.
//
// abode owns two tables, `table ip abode` and `table ip6 abode` (the name is an option), and never reads or
// writes any other table. Each holds three NAT base chains whose rules never change, and the mappings live in
// maps, so a change of mappings touches only the changed map elements:
//
//   map magic_dnat   { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service }
//   map elastic_dnat { type ipv4_addr : ipv4_addr }   # elastic -> workload
//   map elastic_snat { type ipv4_addr : ipv4_addr }   # workload -> elastic
//   chain prerouting  { type nat hook prerouting priority dstnat;   # forwarded traffic
//     dnat ip to ip daddr . meta l4proto . th dport map @magic_dnat
//     dnat ip to ip daddr map @elastic_dnat }
//   chain output      { type nat hook output priority dstnat; ... the same two rules }  # local traffic
//   chain postrouting { type nat hook postrouting priority srcnat;
//     snat ip to ip saddr map @elastic_snat }
//   set magic_drop   { type ipv4_addr . inet_proto . inet_service }   # magic addresses without target
//   chain drop_prerouting { type filter hook prerouting priority raw;  # before conntrack: no entry is made
//     ip daddr . meta l4proto . th dport @magic_drop counter drop }
//   chain drop_output     { type filter hook output priority raw; ... the same rule }
//
// (ipv6_addr in table ip6; a counter's value is not part of a rule's identity.) Apply() reads the tables,
// computes the difference and sends one nfnetlink batch, tied to the ruleset generation it read so that a
// concurrent change makes the kernel refuse it (then Apply reads and plans again). When the generation shows
// that nothing was committed since this instance's own last batch, the tables are known without reading them, and
// a change costs one round trip plus its batch.
//
// It is also the LeaseGuard: three more tables, `table ip|ip6|arp abode_lease` (the NAT table's name and
// "_lease"), whose layout nft_objects.h shows. The lease is one kernel timer per table, shared by all the
// guarded addresses: the one element of set `alive`. A renewal is one batch that, in each table, flushes `alive`
// and adds its element again with a fresh timeout (adding an element that is already there does not restart its
// timeout; checked on Linux 6.18): two messages per table whatever the number of addresses. A flush and the
// addition in one batch are atomic, so no packet sees the set empty.
// A batch planned from a read also repairs what someone else changed: missing tables, chains or maps are
// created, edited or deleted rules are replaced, and a table whose chains or maps no longer have abode's shape
// (or that holds objects abode did not create, or that was made dormant) is rebuilt within the same batch.
#ifndef ABODE_NODE_CLIENT_NFT_RULE_PROGRAMMER_H_
#define ABODE_NODE_CLIENT_NFT_RULE_PROGRAMMER_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "kernel_model.h"
#include "lease_guard.h"
#include "rule_programmer.h"

struct mnl_socket;
struct nlmsghdr;

namespace abode::node {

namespace nft {
class NftBatch;        // one nfnetlink batch under construction
struct ObservedTable;  // one family's table as read from the kernel
struct FamilyLayout;   // a family's addresses and nfproto
using Element = std::pair<std::string, std::string>;  // a set element's key and data bytes
}  // namespace nft

struct MnlSocketDeleter {
  void operator()(mnl_socket* socket) const;
};
using MnlSocketPtr = std::unique_ptr<mnl_socket, MnlSocketDeleter>;

class NftRuleProgrammer final : public RuleProgrammer, public LeaseGuard {
 public:
  struct Options {
    std::string table_name = "abode";
  };

  // What the last Apply() did.
  struct ApplyReport {
    bool read_kernel = false;          // abode's tables were read (false: the ruleset was unchanged since this
                                       // instance's last commit, so the change was planned from that commit)
    int attempts = 0;                  // read-plan-send rounds: more than one when a concurrent commit by someone
                                       // else made the kernel refuse a batch
    bool batch_sent = false;           // false when the kernel already held the desired state
    int messages = 0;                  // netlink messages in the batch, without its begin and end
    int elements_added = 0;            // map elements
    int elements_removed = 0;          // map elements
    std::vector<std::string> repairs;  // what was found broken and repaired, e.g. "ip abode: chain output edited"
  };

  // Opens a netfilter netlink socket. All later calls act on the network namespace of the calling thread at the
  // time of Create(), whichever thread makes them.
  static absl::StatusOr<std::unique_ptr<NftRuleProgrammer>> Create(Options options);
  static absl::StatusOr<std::unique_ptr<NftRuleProgrammer>> Create() { return Create(Options{}); }
  ~NftRuleProgrammer() override;

  absl::StatusOr<NatRuleset> Read() override;
  absl::Status Apply(const NatRuleset& desired) override;

  // LeaseGuard (nft_lease_guard.cc). The first Guard() of an instance reads the kernel's guarded sets: when they
  // hold exactly `guarded` in tables with an `alive` set (left by an earlier process) nothing changes. Otherwise, and whenever a batch finds a
  // table missing, the three tables are built anew, with their elements, in one atomic batch.
  absl::StatusOr<bool> Guard(const std::set<std::string>& guarded, std::chrono::milliseconds lease_left) override;
  absl::Status Renew(std::chrono::milliseconds lease_left) override;
  // Netlink messages in the last lease guard batch (0: none was sent).
  int last_guard_messages() const { return last_guard_messages_; }

  const ApplyReport& last_apply() const { return last_apply_; }

  // The nf_tables ruleset generation: it increases with every batch anyone commits in the namespace.
  absl::StatusOr<uint32_t> Generation();

 private:
  NftRuleProgrammer(Options options, MnlSocketPtr socket);

  // Aborted when a dump overlapped a commit.
  absl::StatusOr<nft::ObservedTable> ReadFamily(IpFamily family);
  absl::StatusOr<NatRuleset> ReadOnce();
  // Sends one request and hands every reply message to `on_message` until the kernel finishes. Aborted when
  // the reply is a dump that overlapped a commit.
  absl::Status Exchange(nlmsghdr* request, absl::string_view what, int (*on_message)(const nlmsghdr*, void*),
                        void* context);
  absl::Status Send(nft::NftBatch& batch);
  // Reads `observed` of one family and appends to `batch` what turns it into `desired`.
  void Plan(IpFamily family, const NatRuleset& desired, const nft::ObservedTable& observed, nft::NftBatch& batch);
  // One read-plan-send round. Returns Aborted when the kernel refused the batch because the ruleset changed
  // after it was read.
  absl::Status ApplyOnce(const NatRuleset& desired, bool validated);
  // Appends to `batch` the element changes of `diff` for one family.
  void PlanChange(IpFamily family, const NatRulesetDiff& diff, nft::NftBatch& batch);
  // The guard tables' name.
  std::string GuardTable() const { return options_.table_name + "_lease"; }
  // The sorted element keys of set `name` of the guard table of layout `l`; nullopt when there is no such set.
  absl::StatusOr<std::optional<std::vector<nft::Element>>> GuardSetKeys(const nft::FamilyLayout& l, const char* name);
  // Whether the guard tables exist with their current layout and their guarded sets hold exactly `guarded`.
  absl::StatusOr<bool> GuardedInKernel(const std::set<std::string>& guarded);
  // Sends one batch that makes the guard tables guard `changed` (null: guarded_, unchanged) and leases it for
  // `lease_left` (0: no lease): incrementally from guarded_ when known and `rebuild` is false, else building the
  // tables anew. REQUIRES: guarded_ is known when `changed` is null.
  absl::Status SendGuard(const std::set<std::string>* changed, std::chrono::milliseconds lease_left, bool rebuild);
  // After a commit based on `generation`: remembers `ruleset` if nobody else committed meanwhile.
  void Remember(uint32_t generation, NatRuleset ruleset);

  Options options_;
  MnlSocketPtr socket_;
  uint32_t port_id_ = 0;
  uint32_t next_seq_ = 1;
  std::vector<char> receive_buffer_;
  ApplyReport last_apply_;
  // What abode's tables held after this instance's last commit; valid while the ruleset generation is still
  // `generation`, since any commit by anyone bumps it. Spares reading every map element for each change.
  struct Committed {
    uint32_t generation = 0;
    NatRuleset ruleset;
  };
  std::optional<Committed> committed_;
  // What the guard tables guard since this instance's last guard batch (unknown before the first Guard()).
  std::optional<std::set<std::string>> guarded_;
  int last_guard_messages_ = 0;
};

}  // namespace abode::node

#endif  // ABODE_NODE_CLIENT_NFT_RULE_PROGRAMMER_H_

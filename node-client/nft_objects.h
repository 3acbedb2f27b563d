// The pieces NftRuleProgrammer builds abode's nf_tables tables from: the layout of each family, the shapes of
// its chains, maps and sets, how mappings become map elements, the rules, and the nfnetlink batch that carries
// a change to the kernel. Internal to the nftables programmer (nft_rule_programmer*.cc).
#ifndef ABODE_NODE_CLIENT_NFT_OBJECTS_H_
#define ABODE_NODE_CLIENT_NFT_OBJECTS_H_

#include <netinet/in.h>  // before the kernel's headers, which otherwise define its structures again
#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/gen.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter_ipv4.h>

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "kernel_model.h"

struct nlmsghdr;

namespace abode::node::nft {

inline constexpr char kMagicDnat[] = "magic_dnat";
inline constexpr char kElasticDnat[] = "elastic_dnat";
inline constexpr char kElasticSnat[] = "elastic_snat";
inline constexpr char kMagicDrop[] = "magic_drop";
inline constexpr char kPrerouting[] = "prerouting";
inline constexpr char kOutput[] = "output";
inline constexpr char kPostrouting[] = "postrouting";
inline constexpr char kDropPrerouting[] = "drop_prerouting";
inline constexpr char kDropOutput[] = "drop_output";

struct FamilyLayout {
  IpFamily family;
  uint16_t nfproto;
  uint32_t addr_len;
  uint32_t addr_type;
  uint32_t saddr_offset;
  uint32_t daddr_offset;
  // 32-bit registers right after the address in a concatenation: the address fills NFT_REG_1 up to its length.
  // Written as the kernel reports them: a 32-bit register that starts a 128-bit one by the 128-bit name.
  uint32_t proto_reg;
  uint32_t port_reg;
};
FamilyLayout Layout(IpFamily family);
// The arp family's table: IPv4 addresses, nfproto NFPROTO_ARP.
FamilyLayout ArpLayout();
std::string TableName(const FamilyLayout& l, const std::string& table);  // "ip abode", "arp abode_lease"

// A named map (flags include NFT_SET_MAP, data_len > 0) or set (data_len == 0).
struct SetShape {
  const char* name;
  uint32_t flags;
  uint32_t key_type;
  uint32_t key_len;
  uint32_t data_type;
  uint32_t data_len;
};
inline constexpr size_t kSetCount = 4;
std::array<SetShape, kSetCount> Sets(const FamilyLayout& l);

struct ChainShape {
  const char* name;
  const char* type;  // "nat" or "filter"
  uint32_t hook;
  int32_t priority;
};
// NAT at the usual NAT priorities; drops at raw priority, before connection tracking, so that a dropped packet
// leaves no conntrack entry behind.
inline constexpr std::array<ChainShape, 5> kChains = {{
    {kPrerouting, "nat", NF_INET_PRE_ROUTING, NF_IP_PRI_NAT_DST},
    {kOutput, "nat", NF_INET_LOCAL_OUT, NF_IP_PRI_NAT_DST},
    {kPostrouting, "nat", NF_INET_POST_ROUTING, NF_IP_PRI_NAT_SRC},
    {kDropPrerouting, "filter", NF_INET_PRE_ROUTING, NF_IP_PRI_RAW},
    {kDropOutput, "filter", NF_INET_LOCAL_OUT, NF_IP_PRI_RAW},
}};

enum class RuleKind { kMagicDnat, kElasticDnat, kElasticSnat, kMagicDrop };
std::vector<RuleKind> RulesOf(absl::string_view chain);

// Map element key and data bytes, exactly as the kernel stores them (data empty for a set).
using Elements = std::map<std::string, std::string>;
using Element = std::pair<std::string, std::string>;  // key bytes, data bytes

// REQUIRES: the mapping passed ValidateMapping.
Element MagicElement(const MagicDnat& m);
Element DropElement(const MagicDrop& m);
// The elastic_dnat element of a mapping; its elastic_snat element is the same pair swapped.
Element ElasticElement(const ElasticNat& e);
// Every set's elements for one family. REQUIRES: `desired` passed ValidateNatRuleset.
std::map<std::string, Elements> DesiredElements(const NatRuleset& desired, IpFamily family);
// The mappings of one family that the elements of a table hold; `elements_of` gives a set's elements when the
// set has its shape (else null).
void ReadMappings(const FamilyLayout& l, const Elements* magic, const Elements* dnat, const Elements* snat,
                  const Elements* drop, NatRuleset& out);

std::string Errno(int error);

// RAII for libnftnl objects.
struct TableDeleter {
  void operator()(nftnl_table* t) const { nftnl_table_free(t); }
};
struct ChainDeleter {
  void operator()(nftnl_chain* c) const { nftnl_chain_free(c); }
};
struct RuleDeleter {
  void operator()(nftnl_rule* r) const { nftnl_rule_free(r); }
};
struct SetDeleter {
  void operator()(nftnl_set* s) const { nftnl_set_free(s); }
};
struct GenDeleter {
  void operator()(nftnl_gen* g) const { nftnl_gen_free(g); }
};
struct SetElemsIterDeleter {
  void operator()(nftnl_set_elems_iter* i) const { nftnl_set_elems_iter_destroy(i); }
};
using TablePtr = std::unique_ptr<nftnl_table, TableDeleter>;
using ChainPtr = std::unique_ptr<nftnl_chain, ChainDeleter>;
using RulePtr = std::unique_ptr<nftnl_rule, RuleDeleter>;
using SetPtr = std::unique_ptr<nftnl_set, SetDeleter>;
using GenPtr = std::unique_ptr<nftnl_gen, GenDeleter>;
using SetElemsIterPtr = std::unique_ptr<nftnl_set_elems_iter, SetElemsIterDeleter>;

// `set_ids` maps a set name to the batch-local id of a set created in the same batch (0: already in the kernel).
RulePtr BuildRule(const FamilyLayout& l, const std::string& table, const char* chain, RuleKind kind,
                  const std::map<std::string, uint32_t>& set_ids);
// A rule's expressions as text: two rules are the same rule exactly when their texts are equal (counters'
// values left out).
std::string RuleText(nftnl_rule* rule);
SetPtr NewSetObject(const FamilyLayout& l, const std::string& table, const char* name, uint32_t set_id);

// The lease guard's tables (nft_lease_guard.cc), one per family (ip, ip6, arp):
//   set guarded { type ipv4_addr }                # external and elastic addresses placed on the node
//   set alive   { type nf_proto; flags timeout }  # one element, the table's family, while the node's lease runs
//   ip, ip6: chain prerouting  { type filter hook prerouting priority raw;
//              ip daddr @guarded meta nfproto != @alive counter drop
//              (ip6) icmpv6 type nd-neighbor-solicit, target @guarded, meta nfproto != @alive counter drop }
//            chain postrouting { type filter hook postrouting priority srcnat + 1;
//              ip saddr @guarded meta nfproto != @alive counter drop
//              (ip6) icmpv6 type nd-neighbor-advert, target @guarded, meta nfproto != @alive counter drop }
//   arp:     chain input  { type filter hook input priority 0;  arp daddr ip @guarded meta nfproto != @alive ... }
//            chain output { type filter hook output priority 0; arp saddr ip @guarded meta nfproto != @alive ... }
// Every packet a table's hooks see has the table's family as its nfproto (NFPROTO_ARP, 3, in the arp table), so
// the one element of `alive` is the lease of every guarded address: one kernel timer per table, renewed by a
// flush of `alive` and the addition of that element, whatever the number of addresses.
inline constexpr char kGuarded[] = "guarded";
inline constexpr char kAlive[] = "alive";
// The set of one timed element per address that the tables held before `alive`; found only in tables left by an
// earlier abode-node, which are built anew.
inline constexpr char kLeased[] = "leased";
inline constexpr char kGuardPrerouting[] = "prerouting";
inline constexpr char kGuardPostrouting[] = "postrouting";
inline constexpr char kGuardInput[] = "input";
inline constexpr char kGuardOutput[] = "output";
std::array<SetShape, 2> GuardSets(const FamilyLayout& l);
// The element keys of the addresses of `addresses` (canonical text) that a table of layout `l` holds, ascending.
std::vector<Element> AddressKeys(const FamilyLayout& l, const std::set<std::string>& addresses);
// The one element of `alive` in a table of layout `l`: its nfproto, one byte.
Element AliveElement(const FamilyLayout& l);
std::vector<ChainShape> GuardChains(const FamilyLayout& l);
enum class GuardRule {
  kDestination,
  kSource,
  kNeighbourSolicitationTarget,
  kNeighbourAdvertisementTarget,
  kArpTarget,
  kArpSender
};
std::vector<GuardRule> GuardRulesOf(const FamilyLayout& l, absl::string_view chain);
RulePtr BuildGuardRule(const FamilyLayout& l, const std::string& table, const char* chain, GuardRule kind,
                       const std::map<std::string, uint32_t>& set_ids);

// One nfnetlink batch: begin, messages that each ask for an acknowledgement, end.
class NftBatch {
 public:
  // The kernel refuses the batch with ERESTART if the ruleset changed since `generation` was read.
  NftBatch(uint32_t first_seq, uint32_t generation);

  // Starts a message of `type` for `family`; fill it, then Commit() it.
  nlmsghdr* Start(uint16_t type, uint16_t family, uint16_t flags);
  void Commit(nlmsghdr* message, std::string what);
  // Appends the end message. Call once, after the last Commit().
  void Finish();

  int messages() const { return messages_; }  // without begin and end
  uint32_t next_seq() const { return next_seq_; }
  bool IsBegin(uint32_t seq) const { return seq == first_seq_; }
  const std::vector<char>& bytes() const { return buffer_; }
  absl::string_view Describe(uint32_t seq) const;

 private:
  void Append(nlmsghdr* message, std::string what);
  char* Reserve();

  uint32_t first_seq_;
  uint32_t next_seq_;
  std::vector<char> buffer_;
  size_t used_ = 0;
  std::vector<std::string> descriptions_;  // by seq - first_seq_
  int messages_ = 0;
};

// Messages appended to a batch.
void AddTableMessage(NftBatch& batch, const FamilyLayout& l, const std::string& table, uint16_t type);
void AddChainMessage(NftBatch& batch, const FamilyLayout& l, const std::string& table, const ChainShape& shape);
void FlushChainMessage(NftBatch& batch, const FamilyLayout& l, const std::string& table, const char* chain);
void AddRuleMessages(NftBatch& batch, const FamilyLayout& l, const std::string& table, const char* chain,
                     const std::map<std::string, uint32_t>& set_ids);
void AddSetMessage(NftBatch& batch, const FamilyLayout& l, const std::string& table, const SetShape& shape,
                   uint32_t set_id);
// Removes every element of set `name` (a DELSETELEM message without elements).
void FlushSetMessage(NftBatch& batch, const FamilyLayout& l, const std::string& table, const char* name);
// Adds (with data, if any, and a timeout when timeout_ms > 0) or deletes (keys only) `elements` of set `name`, in
// messages of bounded size.
void ElementMessages(NftBatch& batch, const FamilyLayout& l, const std::string& table, const char* name,
                     uint32_t set_id, const std::vector<Element>& elements, bool add, uint64_t timeout_ms = 0);

// One family's table as read from the kernel.
struct ObservedTable {
  struct Chain {
    bool base = false;
    uint32_t hook = 0;
    int32_t priority = 0;
    std::string type;
    uint32_t policy = NF_ACCEPT;
    std::vector<std::string> rules;  // RuleText of each rule, in order
  };
  struct Set {
    uint32_t flags = 0;
    uint32_t key_type = 0;
    uint32_t key_len = 0;
    uint32_t data_type = 0;
    uint32_t data_len = 0;
    Elements elements;
  };
  bool table_exists = false;
  uint32_t table_flags = 0;  // e.g. NFT_TABLE_F_DORMANT, which would switch every rule off
  std::map<std::string, Chain> chains;
  std::map<std::string, Set> sets;
};

}  // namespace abode::node::nft

#endif  // ABODE_NODE_CLIENT_NFT_OBJECTS_H_

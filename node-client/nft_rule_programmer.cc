#include "nft_rule_programmer.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/gen.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter_ipv4.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <map>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace abode::node {

void MnlSocketDeleter::operator()(mnl_socket* socket) const { mnl_socket_close(socket); }

namespace {

// nftables datatype numbers (nft's src/datatype.h); a concatenation packs its parts six bits apart.
constexpr uint32_t kTypeBits = 6;
constexpr uint32_t kTypeIpv4Addr = 7;
constexpr uint32_t kTypeIpv6Addr = 8;
constexpr uint32_t kTypeInetProto = 12;
constexpr uint32_t kTypeInetService = 13;
constexpr uint32_t Concat(uint32_t a, uint32_t b) { return a << kTypeBits | b; }

constexpr char kMagicDnat[] = "magic_dnat";
constexpr char kElasticDnat[] = "elastic_dnat";
constexpr char kElasticSnat[] = "elastic_snat";
constexpr char kPrerouting[] = "prerouting";
constexpr char kOutput[] = "output";
constexpr char kPostrouting[] = "postrouting";

// Largest element count per NEWSETELEM/DELSETELEM message: the element list is one netlink attribute, whose
// length must stay below 64 KiB (an IPv6 magic element takes about 80 bytes).
constexpr size_t kElementsPerMessage = 512;
// Room reserved for one message while it is built: libnftnl writes without bounds checks.
constexpr size_t kMaxMessageSize = 96 * 1024;

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

FamilyLayout Layout(IpFamily family) {
  if (family == IpFamily::kIpv4) {
    return {family, NFPROTO_IPV4, 4, kTypeIpv4Addr, 12, 16, NFT_REG32_01, NFT_REG32_02};
  }
  return {family, NFPROTO_IPV6, 16, kTypeIpv6Addr, 8, 24, NFT_REG_2 /* = NFT_REG32_04 */, NFT_REG32_05};
}

struct MapShape {
  const char* name;
  uint32_t key_type;
  uint32_t key_len;
  uint32_t data_type;
  uint32_t data_len;
};

// Every part of a concatenation is padded to four bytes.
std::array<MapShape, 3> Maps(const FamilyLayout& l) {
  return {{
      {kMagicDnat, Concat(Concat(l.addr_type, kTypeInetProto), kTypeInetService), l.addr_len + 8,
       Concat(l.addr_type, kTypeInetService), l.addr_len + 4},
      {kElasticDnat, l.addr_type, l.addr_len, l.addr_type, l.addr_len},
      {kElasticSnat, l.addr_type, l.addr_len, l.addr_type, l.addr_len},
  }};
}

struct ChainShape {
  const char* name;
  uint32_t hook;
  int32_t priority;
};

constexpr std::array<ChainShape, 3> kChains = {{
    {kPrerouting, NF_INET_PRE_ROUTING, NF_IP_PRI_NAT_DST},
    {kOutput, NF_INET_LOCAL_OUT, NF_IP_PRI_NAT_DST},
    {kPostrouting, NF_INET_POST_ROUTING, NF_IP_PRI_NAT_SRC},
}};

enum class RuleKind { kMagicDnat, kElasticDnat, kElasticSnat };

std::vector<RuleKind> RulesOf(absl::string_view chain) {
  if (chain == kPostrouting) return {RuleKind::kElasticSnat};
  return {RuleKind::kMagicDnat, RuleKind::kElasticDnat};
}

// Map element key and data bytes, exactly as the kernel stores them.
using Elements = std::map<std::string, std::string>;

void AppendAddress(std::string& out, const IpAddress& address) {
  out.append(reinterpret_cast<const char*>(address.bytes.data()), address.ByteLength());
}

void AppendPort(std::string& out, uint16_t port) {
  out.push_back(static_cast<char>(port >> 8));
  out.push_back(static_cast<char>(port & 0xff));
  out.append(2, '\0');
}

uint16_t ReadPort(const std::string& bytes, size_t offset) {
  return static_cast<uint16_t>(static_cast<uint8_t>(bytes[offset]) << 8 | static_cast<uint8_t>(bytes[offset + 1]));
}

IpAddress ReadAddress(const std::string& bytes, size_t length) {
  return IpAddress::FromBytes(reinterpret_cast<const uint8_t*>(bytes.data()), length);
}

using Element = std::pair<std::string, std::string>;  // key bytes, data bytes

// REQUIRES: the mapping passed ValidateMapping.
Element MagicElement(const MagicDnat& m) {
  std::string key;
  AppendAddress(key, *IpAddress::Parse(m.magic_address));
  key.push_back(static_cast<char>(L4ProtocolNumber(m.protocol)));
  key.append(3, '\0');
  AppendPort(key, m.port);
  std::string data;
  AppendAddress(data, *IpAddress::Parse(m.target_address));
  AppendPort(data, m.target_port);
  return {std::move(key), std::move(data)};
}

// The elastic_dnat element of a mapping; its elastic_snat element is the same pair swapped.
Element ElasticElement(const ElasticNat& e) {
  std::string elastic;
  AppendAddress(elastic, *IpAddress::Parse(e.elastic_address));
  std::string workload;
  AppendAddress(workload, *IpAddress::Parse(e.workload_address));
  return {std::move(elastic), std::move(workload)};
}

// REQUIRES: `desired` passed ValidateNatRuleset.
std::map<std::string, Elements> DesiredElements(const NatRuleset& desired, IpFamily family) {
  std::map<std::string, Elements> maps = {{kMagicDnat, {}}, {kElasticDnat, {}}, {kElasticSnat, {}}};
  for (const MagicDnat& m : desired.magic_dnat) {
    if (m.family == family) maps[kMagicDnat].insert(MagicElement(m));
  }
  for (const ElasticNat& e : desired.elastic_nat) {
    if (FamilyOf(e) != family) continue;
    Element element = ElasticElement(e);
    maps[kElasticSnat].emplace(element.second, element.first);
    maps[kElasticDnat].insert(std::move(element));
  }
  return maps;
}

std::string Errno(int error) { return std::strerror(error); }

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
struct ExprDeleter {
  void operator()(nftnl_expr* e) const { nftnl_expr_free(e); }
};
struct SetDeleter {
  void operator()(nftnl_set* s) const { nftnl_set_free(s); }
};
struct SetElemDeleter {
  void operator()(nftnl_set_elem* e) const { nftnl_set_elem_free(e); }
};
struct GenDeleter {
  void operator()(nftnl_gen* g) const { nftnl_gen_free(g); }
};
struct ExprIterDeleter {
  void operator()(nftnl_expr_iter* i) const { nftnl_expr_iter_destroy(i); }
};
struct SetElemsIterDeleter {
  void operator()(nftnl_set_elems_iter* i) const { nftnl_set_elems_iter_destroy(i); }
};
using TablePtr = std::unique_ptr<nftnl_table, TableDeleter>;
using ChainPtr = std::unique_ptr<nftnl_chain, ChainDeleter>;
using RulePtr = std::unique_ptr<nftnl_rule, RuleDeleter>;
using ExprPtr = std::unique_ptr<nftnl_expr, ExprDeleter>;
using SetPtr = std::unique_ptr<nftnl_set, SetDeleter>;
using SetElemPtr = std::unique_ptr<nftnl_set_elem, SetElemDeleter>;
using GenPtr = std::unique_ptr<nftnl_gen, GenDeleter>;
using ExprIterPtr = std::unique_ptr<nftnl_expr_iter, ExprIterDeleter>;
using SetElemsIterPtr = std::unique_ptr<nftnl_set_elems_iter, SetElemsIterDeleter>;

void AddPayload(nftnl_rule* rule, uint32_t base, uint32_t offset, uint32_t length, uint32_t reg) {
  ExprPtr e(nftnl_expr_alloc("payload"));
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_PAYLOAD_BASE, base);
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_PAYLOAD_OFFSET, offset);
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_PAYLOAD_LEN, length);
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_PAYLOAD_DREG, reg);
  nftnl_rule_add_expr(rule, e.release());
}

void AddMeta(nftnl_rule* rule, uint32_t key, uint32_t reg) {
  ExprPtr e(nftnl_expr_alloc("meta"));
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_META_KEY, key);
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_META_DREG, reg);
  nftnl_rule_add_expr(rule, e.release());
}

void AddLookup(nftnl_rule* rule, const char* set, uint32_t set_id) {
  ExprPtr e(nftnl_expr_alloc("lookup"));
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_LOOKUP_DREG, NFT_REG_1);
  nftnl_expr_set_str(e.get(), NFTNL_EXPR_LOOKUP_SET, set);
  if (set_id != 0) nftnl_expr_set_u32(e.get(), NFTNL_EXPR_LOOKUP_SET_ID, set_id);
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_LOOKUP_FLAGS, 0);  // the kernel reports it
  nftnl_rule_add_expr(rule, e.release());
}

void AddNat(nftnl_rule* rule, const FamilyLayout& l, uint32_t type, bool with_port) {
  ExprPtr e(nftnl_expr_alloc("nat"));
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_NAT_TYPE, type);
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_NAT_FAMILY, l.nfproto);
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_NAT_REG_ADDR_MIN, NFT_REG_1);
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_NAT_REG_ADDR_MAX, NFT_REG_1);
  uint32_t flags = NF_NAT_RANGE_MAP_IPS;
  if (with_port) {
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_NAT_REG_PROTO_MIN, l.proto_reg);
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_NAT_REG_PROTO_MAX, l.proto_reg);
    flags |= NF_NAT_RANGE_PROTO_SPECIFIED;
  }
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_NAT_FLAGS, flags);
  nftnl_rule_add_expr(rule, e.release());
}

// `set_ids` maps a map name to the batch-local id of a map created in the same batch (0: already in the kernel).
RulePtr BuildRule(const FamilyLayout& l, const std::string& table, const char* chain, RuleKind kind,
                  const std::map<std::string, uint32_t>& set_ids) {
  RulePtr rule(nftnl_rule_alloc());
  nftnl_rule_set_str(rule.get(), NFTNL_RULE_TABLE, table.c_str());
  nftnl_rule_set_str(rule.get(), NFTNL_RULE_CHAIN, chain);
  nftnl_rule_set_u32(rule.get(), NFTNL_RULE_FAMILY, l.nfproto);
  auto id_of = [&](const char* set) {
    auto it = set_ids.find(set);
    return it == set_ids.end() ? 0u : it->second;
  };
  switch (kind) {
    case RuleKind::kMagicDnat:
      AddPayload(rule.get(), NFT_PAYLOAD_NETWORK_HEADER, l.daddr_offset, l.addr_len, NFT_REG_1);
      AddMeta(rule.get(), NFT_META_L4PROTO, l.proto_reg);
      AddPayload(rule.get(), NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, l.port_reg);  // th dport
      AddLookup(rule.get(), kMagicDnat, id_of(kMagicDnat));
      AddNat(rule.get(), l, NFT_NAT_DNAT, /*with_port=*/true);
      break;
    case RuleKind::kElasticDnat:
      AddPayload(rule.get(), NFT_PAYLOAD_NETWORK_HEADER, l.daddr_offset, l.addr_len, NFT_REG_1);
      AddLookup(rule.get(), kElasticDnat, id_of(kElasticDnat));
      AddNat(rule.get(), l, NFT_NAT_DNAT, /*with_port=*/false);
      break;
    case RuleKind::kElasticSnat:
      AddPayload(rule.get(), NFT_PAYLOAD_NETWORK_HEADER, l.saddr_offset, l.addr_len, NFT_REG_1);
      AddLookup(rule.get(), kElasticSnat, id_of(kElasticSnat));
      AddNat(rule.get(), l, NFT_NAT_SNAT, /*with_port=*/false);
      break;
  }
  return rule;
}

// A rule's expressions as text: two rules are the same rule exactly when their texts are equal.
std::string RuleText(nftnl_rule* rule) {
  std::vector<std::string> parts;
  ExprIterPtr it(nftnl_expr_iter_create(rule));
  char buffer[512];
  for (nftnl_expr* e = nftnl_expr_iter_next(it.get()); e != nullptr; e = nftnl_expr_iter_next(it.get())) {
    buffer[0] = '\0';
    nftnl_expr_snprintf(buffer, sizeof(buffer), e, NFTNL_OUTPUT_DEFAULT, 0);
    parts.push_back(absl::StrCat(nftnl_expr_get_str(e, NFTNL_EXPR_NAME), " ", buffer));
  }
  return absl::StrJoin(parts, "; ");
}

}  // namespace

// One nfnetlink batch: begin, messages that each ask for an acknowledgement, end.
class NftBatch {
 public:
  NftBatch(uint32_t first_seq, uint32_t generation) : first_seq_(first_seq), next_seq_(first_seq) {
    nlmsghdr* begin = nftnl_batch_begin(Reserve(), next_seq_++);
    // The kernel refuses the batch with ERESTART if the ruleset changed since `generation` was read.
    mnl_attr_put_u32(begin, NFNL_BATCH_GENID, htonl(generation));
    Append(begin, "batch begin");
  }

  // Starts a message of `type` for `family`; fill it, then Commit() it.
  nlmsghdr* Start(uint16_t type, uint16_t family, uint16_t flags) {
    return nftnl_nlmsg_build_hdr(Reserve(), type, family, flags | NLM_F_ACK, next_seq_);
  }
  void Commit(nlmsghdr* message, std::string what) {
    Append(message, std::move(what));
    ++messages_;
  }
  // Appends the end message. Call once, after the last Commit().
  void Finish() {
    nlmsghdr* end = nftnl_batch_end(Reserve(), next_seq_);
    Append(end, "batch end");
    buffer_.resize(used_);
  }

  int messages() const { return messages_; }  // without begin and end
  uint32_t next_seq() const { return next_seq_; }
  bool IsBegin(uint32_t seq) const { return seq == first_seq_; }
  const std::vector<char>& bytes() const { return buffer_; }
  absl::string_view Describe(uint32_t seq) const {
    if (seq < first_seq_ || seq - first_seq_ >= descriptions_.size()) return "an unknown message";
    return descriptions_[seq - first_seq_];
  }

 private:
  void Append(nlmsghdr* message, std::string what) {
    used_ += NLMSG_ALIGN(message->nlmsg_len);
    descriptions_.push_back(std::move(what));
    ++next_seq_;
  }
  char* Reserve() {
    if (buffer_.size() < used_ + kMaxMessageSize) buffer_.resize(std::max(buffer_.size() * 2, used_ + kMaxMessageSize));
    return buffer_.data() + used_;
  }

  uint32_t first_seq_;
  uint32_t next_seq_;
  std::vector<char> buffer_;
  size_t used_ = 0;
  std::vector<std::string> descriptions_;  // by seq - first_seq_
  int messages_ = 0;
};

struct NftRuleProgrammer::Observed {
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

namespace {

std::string TableName(const FamilyLayout& l, const std::string& table) {
  return absl::StrCat(IpFamilyName(l.family), " ", table);
}

void AddTableMessage(NftBatch& batch, const FamilyLayout& l, const std::string& table, uint16_t type) {
  TablePtr t(nftnl_table_alloc());
  nftnl_table_set_str(t.get(), NFTNL_TABLE_NAME, table.c_str());
  nftnl_table_set_u32(t.get(), NFTNL_TABLE_FAMILY, l.nfproto);
  nlmsghdr* m = batch.Start(type, l.nfproto, type == NFT_MSG_NEWTABLE ? NLM_F_CREATE : 0);
  nftnl_table_nlmsg_build_payload(m, t.get());
  batch.Commit(m, absl::StrCat(type == NFT_MSG_NEWTABLE ? "add" : "delete", " table ", TableName(l, table)));
}

void AddChainMessage(NftBatch& batch, const FamilyLayout& l, const std::string& table, const ChainShape& shape) {
  ChainPtr c(nftnl_chain_alloc());
  nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TABLE, table.c_str());
  nftnl_chain_set_str(c.get(), NFTNL_CHAIN_NAME, shape.name);
  nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_FAMILY, l.nfproto);
  nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_HOOKNUM, shape.hook);
  nftnl_chain_set_s32(c.get(), NFTNL_CHAIN_PRIO, shape.priority);
  nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TYPE, "nat");
  nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_POLICY, NF_ACCEPT);
  nlmsghdr* m = batch.Start(NFT_MSG_NEWCHAIN, l.nfproto, NLM_F_CREATE);
  nftnl_chain_nlmsg_build_payload(m, c.get());
  batch.Commit(m, absl::StrCat("add chain ", TableName(l, table), " ", shape.name));
}

void FlushChainMessage(NftBatch& batch, const FamilyLayout& l, const std::string& table, const char* chain) {
  RulePtr r(nftnl_rule_alloc());
  nftnl_rule_set_str(r.get(), NFTNL_RULE_TABLE, table.c_str());
  nftnl_rule_set_str(r.get(), NFTNL_RULE_CHAIN, chain);
  nftnl_rule_set_u32(r.get(), NFTNL_RULE_FAMILY, l.nfproto);
  nlmsghdr* m = batch.Start(NFT_MSG_DELRULE, l.nfproto, 0);
  nftnl_rule_nlmsg_build_payload(m, r.get());
  batch.Commit(m, absl::StrCat("flush chain ", TableName(l, table), " ", chain));
}

void AddRuleMessages(NftBatch& batch, const FamilyLayout& l, const std::string& table, const char* chain,
                     const std::map<std::string, uint32_t>& set_ids) {
  for (RuleKind kind : RulesOf(chain)) {
    RulePtr r = BuildRule(l, table, chain, kind, set_ids);
    nlmsghdr* m = batch.Start(NFT_MSG_NEWRULE, l.nfproto, NLM_F_CREATE | NLM_F_APPEND);
    nftnl_rule_nlmsg_build_payload(m, r.get());
    batch.Commit(m, absl::StrCat("add rule to ", TableName(l, table), " ", chain));
  }
}

SetPtr NewSetObject(const FamilyLayout& l, const std::string& table, const char* name, uint32_t set_id) {
  SetPtr s(nftnl_set_alloc());
  nftnl_set_set_str(s.get(), NFTNL_SET_TABLE, table.c_str());
  nftnl_set_set_str(s.get(), NFTNL_SET_NAME, name);
  nftnl_set_set_u32(s.get(), NFTNL_SET_FAMILY, l.nfproto);
  if (set_id != 0) nftnl_set_set_u32(s.get(), NFTNL_SET_ID, set_id);
  return s;
}

void AddSetMessage(NftBatch& batch, const FamilyLayout& l, const std::string& table, const MapShape& shape,
                   uint32_t set_id) {
  SetPtr s = NewSetObject(l, table, shape.name, set_id);
  nftnl_set_set_u32(s.get(), NFTNL_SET_FLAGS, NFT_SET_MAP);
  nftnl_set_set_u32(s.get(), NFTNL_SET_KEY_TYPE, shape.key_type);
  nftnl_set_set_u32(s.get(), NFTNL_SET_KEY_LEN, shape.key_len);
  nftnl_set_set_u32(s.get(), NFTNL_SET_DATA_TYPE, shape.data_type);
  nftnl_set_set_u32(s.get(), NFTNL_SET_DATA_LEN, shape.data_len);
  nlmsghdr* m = batch.Start(NFT_MSG_NEWSET, l.nfproto, NLM_F_CREATE);
  nftnl_set_nlmsg_build_payload(m, s.get());
  batch.Commit(m, absl::StrCat("add map ", TableName(l, table), " ", shape.name));
}

// Adds (with data) or deletes (keys only) `elements` of map `name`, in messages of bounded size.
void ElementMessages(NftBatch& batch, const FamilyLayout& l, const std::string& table, const char* name,
                     uint32_t set_id, const std::vector<Element>& elements, bool add) {
  for (size_t start = 0; start < elements.size(); start += kElementsPerMessage) {
    const size_t end = std::min(elements.size(), start + kElementsPerMessage);
    SetPtr s = NewSetObject(l, table, name, set_id);
    for (size_t i = start; i < end; ++i) {
      SetElemPtr e(nftnl_set_elem_alloc());
      const auto& [key, data] = elements[i];
      nftnl_set_elem_set(e.get(), NFTNL_SET_ELEM_KEY, key.data(), static_cast<uint32_t>(key.size()));
      if (add) nftnl_set_elem_set(e.get(), NFTNL_SET_ELEM_DATA, data.data(), static_cast<uint32_t>(data.size()));
      nftnl_set_elem_add(s.get(), e.release());
    }
    nlmsghdr* m = batch.Start(add ? NFT_MSG_NEWSETELEM : NFT_MSG_DELSETELEM, l.nfproto, add ? NLM_F_CREATE : 0);
    nftnl_set_elems_nlmsg_build_payload(m, s.get());
    batch.Commit(m, absl::StrCat(add ? "add " : "delete ", end - start, " elements ", add ? "to" : "from", " map ",
                                 TableName(l, table), " ", name));
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<NftRuleProgrammer>> NftRuleProgrammer::Create(Options options) {
  if (options.table_name.empty() || options.table_name.size() >= NFT_TABLE_MAXNAMELEN) {
    return absl::InvalidArgumentError(absl::StrCat("'", options.table_name, "' is not a table name"));
  }
  MnlSocketPtr socket(mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC));
  if (socket == nullptr) {
    return absl::UnavailableError(absl::StrCat("cannot open a netfilter netlink socket: ", Errno(errno)));
  }
  if (mnl_socket_bind(socket.get(), 0, MNL_SOCKET_AUTOPID) < 0) {
    return absl::UnavailableError(absl::StrCat("cannot bind the netfilter netlink socket: ", Errno(errno)));
  }
  // Acknowledgements without the echoed request, and error messages from the kernel.
  int one = 1;
  mnl_socket_setsockopt(socket.get(), NETLINK_CAP_ACK, &one, sizeof(one));
  mnl_socket_setsockopt(socket.get(), NETLINK_EXT_ACK, &one, sizeof(one));
  return std::unique_ptr<NftRuleProgrammer>(new NftRuleProgrammer(std::move(options), std::move(socket)));
}

NftRuleProgrammer::NftRuleProgrammer(Options options, MnlSocketPtr socket)
    : options_(std::move(options)),
      socket_(std::move(socket)),
      port_id_(mnl_socket_get_portid(socket_.get())),
      receive_buffer_(128 * 1024) {}

NftRuleProgrammer::~NftRuleProgrammer() = default;

absl::Status NftRuleProgrammer::Exchange(nlmsghdr* request, absl::string_view what,
                                         int (*on_message)(const nlmsghdr*, void*), void* context) {
  const uint32_t seq = request->nlmsg_seq;
  if (mnl_socket_sendto(socket_.get(), request, request->nlmsg_len) < 0) {
    return absl::UnavailableError(absl::StrCat("cannot send the request to ", what, ": ", Errno(errno)));
  }
  bool interrupted = false;
  while (true) {
    const ssize_t n = mnl_socket_recvfrom(socket_.get(), receive_buffer_.data(), receive_buffer_.size());
    if (n < 0) return absl::UnavailableError(absl::StrCat("cannot ", what, ": ", Errno(errno)));
    // A dump that overlapped a commit is flagged. It is read to its end (so that nothing of it is left for the
    // next exchange) and then reported as Aborted, for the caller to read again.
    int left = static_cast<int>(n);
    for (auto* m = reinterpret_cast<nlmsghdr*>(receive_buffer_.data()); mnl_nlmsg_ok(m, left);
         m = mnl_nlmsg_next(m, &left)) {
      if (m->nlmsg_flags & NLM_F_DUMP_INTR) {
        interrupted = true;
        m->nlmsg_flags &= static_cast<uint16_t>(~NLM_F_DUMP_INTR);
      }
    }
    const int ret = mnl_cb_run(receive_buffer_.data(), static_cast<size_t>(n), seq, port_id_, on_message, context);
    if (ret == MNL_CB_ERROR) {
      const int error = errno;
      // Whatever is left of this reply would confuse the next exchange.
      while (recv(mnl_socket_get_fd(socket_.get()), receive_buffer_.data(), receive_buffer_.size(), MSG_DONTWAIT) > 0) {
      }
      if (error == ENOENT) return absl::NotFoundError(absl::StrCat("cannot ", what, ": ", Errno(error)));
      return absl::UnavailableError(absl::StrCat("cannot ", what, ": ", Errno(error)));
    }
    if (ret == MNL_CB_STOP) {
      if (interrupted) return absl::AbortedError(absl::StrCat("the ruleset changed while trying to ", what));
      return absl::OkStatus();
    }
  }
}

absl::StatusOr<uint32_t> NftRuleProgrammer::Generation() {
  std::array<char, 256> buffer{};
  nlmsghdr* request = nftnl_nlmsg_build_hdr(buffer.data(), NFT_MSG_GETGEN, AF_UNSPEC, NLM_F_ACK, next_seq_++);
  GenPtr gen(nftnl_gen_alloc());
  auto on_message = [](const nlmsghdr* m, void* context) {
    nftnl_gen_nlmsg_parse(m, static_cast<nftnl_gen*>(context));
    return MNL_CB_OK;
  };
  if (absl::Status s = Exchange(request, "read the ruleset generation", on_message, gen.get()); !s.ok()) return s;
  if (!nftnl_gen_is_set(gen.get(), NFTNL_GEN_ID)) return absl::InternalError("the kernel sent no ruleset generation");
  return nftnl_gen_get_u32(gen.get(), NFTNL_GEN_ID);
}

absl::StatusOr<NftRuleProgrammer::Observed> NftRuleProgrammer::ReadFamily(IpFamily family) {
  const FamilyLayout l = Layout(family);
  const std::string& table = options_.table_name;
  const std::string table_text = TableName(l, table);
  Observed observed;
  std::array<char, 1024> buffer{};

  {
    TablePtr t(nftnl_table_alloc());
    nftnl_table_set_str(t.get(), NFTNL_TABLE_NAME, table.c_str());
    nlmsghdr* request = nftnl_nlmsg_build_hdr(buffer.data(), NFT_MSG_GETTABLE, l.nfproto, NLM_F_ACK, next_seq_++);
    nftnl_table_nlmsg_build_payload(request, t.get());
    auto on_message = [](const nlmsghdr* m, void* context) {
      auto* out = static_cast<Observed*>(context);
      TablePtr found(nftnl_table_alloc());
      if (nftnl_table_nlmsg_parse(m, found.get()) < 0) return MNL_CB_OK;
      out->table_exists = true;
      out->table_flags = nftnl_table_get_u32(found.get(), NFTNL_TABLE_FLAGS);
      return MNL_CB_OK;
    };
    absl::Status s = Exchange(request, absl::StrCat("read table ", table_text), on_message, &observed);
    if (absl::IsNotFound(s)) return observed;
    if (!s.ok()) return s;
  }

  struct Context {
    const std::string* table;
    Observed* observed;
  } context{&table, &observed};

  {
    ChainPtr c(nftnl_chain_alloc());
    nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TABLE, table.c_str());
    nlmsghdr* request = nftnl_nlmsg_build_hdr(buffer.data(), NFT_MSG_GETCHAIN, l.nfproto, NLM_F_DUMP, next_seq_++);
    nftnl_chain_nlmsg_build_payload(request, c.get());
    auto on_message = [](const nlmsghdr* m, void* arg) {
      auto* ctx = static_cast<Context*>(arg);
      ChainPtr chain(nftnl_chain_alloc());
      if (nftnl_chain_nlmsg_parse(m, chain.get()) < 0) return MNL_CB_OK;
      if (*ctx->table != nftnl_chain_get_str(chain.get(), NFTNL_CHAIN_TABLE)) return MNL_CB_OK;
      Observed::Chain& out = ctx->observed->chains[nftnl_chain_get_str(chain.get(), NFTNL_CHAIN_NAME)];
      out.base = nftnl_chain_is_set(chain.get(), NFTNL_CHAIN_HOOKNUM);
      if (out.base) {
        out.hook = nftnl_chain_get_u32(chain.get(), NFTNL_CHAIN_HOOKNUM);
        out.priority = nftnl_chain_get_s32(chain.get(), NFTNL_CHAIN_PRIO);
        if (nftnl_chain_is_set(chain.get(), NFTNL_CHAIN_TYPE))
          out.type = nftnl_chain_get_str(chain.get(), NFTNL_CHAIN_TYPE);
        if (nftnl_chain_is_set(chain.get(), NFTNL_CHAIN_POLICY)) {
          out.policy = nftnl_chain_get_u32(chain.get(), NFTNL_CHAIN_POLICY);
        }
      }
      return MNL_CB_OK;
    };
    if (absl::Status s = Exchange(request, absl::StrCat("list the chains of table ", table_text), on_message, &context);
        !s.ok()) {
      return s;
    }
  }

  {
    RulePtr r(nftnl_rule_alloc());
    nftnl_rule_set_str(r.get(), NFTNL_RULE_TABLE, table.c_str());
    nlmsghdr* request = nftnl_nlmsg_build_hdr(buffer.data(), NFT_MSG_GETRULE, l.nfproto, NLM_F_DUMP, next_seq_++);
    nftnl_rule_nlmsg_build_payload(request, r.get());
    auto on_message = [](const nlmsghdr* m, void* arg) {
      auto* ctx = static_cast<Context*>(arg);
      RulePtr rule(nftnl_rule_alloc());
      if (nftnl_rule_nlmsg_parse(m, rule.get()) < 0) return MNL_CB_OK;
      if (*ctx->table != nftnl_rule_get_str(rule.get(), NFTNL_RULE_TABLE)) return MNL_CB_OK;
      ctx->observed->chains[nftnl_rule_get_str(rule.get(), NFTNL_RULE_CHAIN)].rules.push_back(RuleText(rule.get()));
      return MNL_CB_OK;
    };
    if (absl::Status s = Exchange(request, absl::StrCat("list the rules of table ", table_text), on_message, &context);
        !s.ok()) {
      return s;
    }
  }

  {
    SetPtr set(nftnl_set_alloc());
    nftnl_set_set_str(set.get(), NFTNL_SET_TABLE, table.c_str());
    nlmsghdr* request = nftnl_nlmsg_build_hdr(buffer.data(), NFT_MSG_GETSET, l.nfproto, NLM_F_DUMP, next_seq_++);
    nftnl_set_nlmsg_build_payload(request, set.get());
    auto on_message = [](const nlmsghdr* m, void* arg) {
      auto* ctx = static_cast<Context*>(arg);
      SetPtr s(nftnl_set_alloc());
      if (nftnl_set_nlmsg_parse(m, s.get()) < 0) return MNL_CB_OK;
      if (*ctx->table != nftnl_set_get_str(s.get(), NFTNL_SET_TABLE)) return MNL_CB_OK;
      const uint32_t flags = nftnl_set_get_u32(s.get(), NFTNL_SET_FLAGS);
      if (flags & NFT_SET_ANONYMOUS) return MNL_CB_OK;  // belongs to a rule, goes with it
      Observed::Set& out = ctx->observed->sets[nftnl_set_get_str(s.get(), NFTNL_SET_NAME)];
      out.flags = flags;
      out.key_type = nftnl_set_get_u32(s.get(), NFTNL_SET_KEY_TYPE);
      out.key_len = nftnl_set_get_u32(s.get(), NFTNL_SET_KEY_LEN);
      out.data_type = nftnl_set_get_u32(s.get(), NFTNL_SET_DATA_TYPE);
      out.data_len = nftnl_set_get_u32(s.get(), NFTNL_SET_DATA_LEN);
      return MNL_CB_OK;
    };
    if (absl::Status s = Exchange(request, absl::StrCat("list the maps of table ", table_text), on_message, &context);
        !s.ok()) {
      return s;
    }
  }

  for (const MapShape& shape : Maps(l)) {
    auto found = observed.sets.find(shape.name);
    if (found == observed.sets.end()) continue;
    SetPtr set = NewSetObject(l, table, shape.name, 0);
    nlmsghdr* request = nftnl_nlmsg_build_hdr(buffer.data(), NFT_MSG_GETSETELEM, l.nfproto, NLM_F_DUMP, next_seq_++);
    nftnl_set_elems_nlmsg_build_payload(request, set.get());
    auto on_message = [](const nlmsghdr* m, void* arg) {
      nftnl_set_elems_nlmsg_parse(m, static_cast<nftnl_set*>(arg));
      return MNL_CB_OK;
    };
    if (absl::Status s = Exchange(request, absl::StrCat("list the elements of map ", table_text, " ", shape.name),
                                  on_message, set.get());
        !s.ok()) {
      return s;
    }
    SetElemsIterPtr it(nftnl_set_elems_iter_create(set.get()));
    for (nftnl_set_elem* e = nftnl_set_elems_iter_next(it.get()); e != nullptr;
         e = nftnl_set_elems_iter_next(it.get())) {
      uint32_t key_len = 0;
      uint32_t data_len = 0;
      const auto* key = static_cast<const char*>(nftnl_set_elem_get(e, NFTNL_SET_ELEM_KEY, &key_len));
      const auto* data = static_cast<const char*>(nftnl_set_elem_get(e, NFTNL_SET_ELEM_DATA, &data_len));
      if (key == nullptr) continue;
      found->second.elements[std::string(key, key_len)] = data == nullptr ? std::string() : std::string(data, data_len);
    }
  }
  return observed;
}

absl::StatusOr<NatRuleset> NftRuleProgrammer::Read() {
  constexpr int kAttempts = 3;
  absl::StatusOr<NatRuleset> ruleset;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    ruleset = ReadOnce();
    if (!absl::IsAborted(ruleset.status())) break;
  }
  return ruleset;
}

absl::StatusOr<NatRuleset> NftRuleProgrammer::ReadOnce() {
  NatRuleset ruleset;
  for (IpFamily family : {IpFamily::kIpv4, IpFamily::kIpv6}) {
    absl::StatusOr<Observed> observed = ReadFamily(family);
    if (!observed.ok()) return observed.status();
    const FamilyLayout l = Layout(family);
    const std::array<MapShape, 3> shapes = Maps(l);
    auto elements_of = [&](const MapShape& shape) -> const Elements* {
      auto it = observed->sets.find(shape.name);
      if (it == observed->sets.end() || it->second.key_len != shape.key_len || it->second.data_len != shape.data_len) {
        return nullptr;
      }
      return &it->second.elements;
    };
    if (const Elements* magic = elements_of(shapes[0]); magic != nullptr) {
      for (const auto& [key, data] : *magic) {
        if (key.size() != l.addr_len + 8 || data.size() != l.addr_len + 4) continue;
        const uint8_t proto = static_cast<uint8_t>(key[l.addr_len]);
        if (proto != L4ProtocolNumber(L4Protocol::kTcp) && proto != L4ProtocolNumber(L4Protocol::kUdp)) continue;
        ruleset.magic_dnat.insert(MagicDnat{
            family, ReadAddress(key, l.addr_len).ToString(),
            proto == L4ProtocolNumber(L4Protocol::kTcp) ? L4Protocol::kTcp : L4Protocol::kUdp,
            ReadPort(key, l.addr_len + 4), ReadAddress(data, l.addr_len).ToString(), ReadPort(data, l.addr_len)});
      }
    }
    // An elastic mapping is in force only when both of its halves are.
    const Elements* dnat = elements_of(shapes[1]);
    const Elements* snat = elements_of(shapes[2]);
    if (dnat != nullptr && snat != nullptr) {
      for (const auto& [elastic, workload] : *dnat) {
        auto back = snat->find(workload);
        if (back == snat->end() || back->second != elastic) continue;
        ruleset.elastic_nat.insert(
            ElasticNat{ReadAddress(elastic, l.addr_len).ToString(), ReadAddress(workload, l.addr_len).ToString()});
      }
    }
  }
  return ruleset;
}

void NftRuleProgrammer::Plan(IpFamily family, const NatRuleset& desired, const Observed& observed, NftBatch& batch) {
  const FamilyLayout l = Layout(family);
  const std::string& table = options_.table_name;
  const std::string table_text = TableName(l, table);
  const std::array<MapShape, 3> shapes = Maps(l);
  std::map<std::string, Elements> want = DesiredElements(desired, family);

  std::vector<std::string>& repairs = last_apply_.repairs;
  bool rebuild = false;
  if (observed.table_exists) {
    if (observed.table_flags != 0) {
      repairs.push_back(absl::StrCat(table_text, ": table flags 0x", absl::Hex(observed.table_flags)));
      rebuild = true;
    }
    for (const MapShape& shape : shapes) {
      auto it = observed.sets.find(shape.name);
      if (it == observed.sets.end()) {
        repairs.push_back(absl::StrCat(table_text, ": map ", shape.name, " missing"));
        rebuild = true;
      } else if (it->second.flags != NFT_SET_MAP || it->second.key_type != shape.key_type ||
                 it->second.key_len != shape.key_len || it->second.data_type != shape.data_type ||
                 it->second.data_len != shape.data_len) {
        repairs.push_back(absl::StrCat(table_text, ": map ", shape.name, " has another type"));
        rebuild = true;
      }
    }
    for (const auto& [name, set] : observed.sets) {
      if (std::none_of(shapes.begin(), shapes.end(), [&](const MapShape& m) { return name == m.name; })) {
        repairs.push_back(absl::StrCat(table_text, ": foreign set ", name));
        rebuild = true;
      }
    }
    for (const auto& [name, chain] : observed.chains) {
      auto shape = std::find_if(kChains.begin(), kChains.end(), [&](const ChainShape& c) { return name == c.name; });
      if (shape == kChains.end()) {
        repairs.push_back(absl::StrCat(table_text, ": foreign chain ", name));
        rebuild = true;
      } else if (!chain.base || chain.hook != shape->hook || chain.priority != shape->priority || chain.type != "nat" ||
                 chain.policy != NF_ACCEPT) {
        repairs.push_back(absl::StrCat(table_text, ": chain ", name, " has another hook, priority, type or policy"));
        rebuild = true;
      }
    }
  }

  if (!observed.table_exists || rebuild) {
    if (rebuild) AddTableMessage(batch, l, table, NFT_MSG_DELTABLE);
    AddTableMessage(batch, l, table, NFT_MSG_NEWTABLE);
    for (const ChainShape& chain : kChains) AddChainMessage(batch, l, table, chain);
    std::map<std::string, uint32_t> set_ids;
    for (const MapShape& shape : shapes) {
      const uint32_t id = batch.next_seq();  // unique within the batch
      set_ids[shape.name] = id;
      AddSetMessage(batch, l, table, shape, id);
      const Elements& elements = want[shape.name];
      std::vector<Element> add(elements.begin(), elements.end());
      ElementMessages(batch, l, table, shape.name, id, add, /*add=*/true);
      last_apply_.elements_added += static_cast<int>(add.size());
    }
    for (const ChainShape& chain : kChains) AddRuleMessages(batch, l, table, chain.name, set_ids);
    return;
  }

  // The table has abode's shape: repair rules, then change only the elements that differ.
  for (const ChainShape& shape : kChains) {
    auto it = observed.chains.find(shape.name);
    if (it == observed.chains.end()) {
      repairs.push_back(absl::StrCat(table_text, ": chain ", shape.name, " missing"));
      AddChainMessage(batch, l, table, shape);
      AddRuleMessages(batch, l, table, shape.name, {});
      continue;
    }
    std::vector<std::string> expected;
    for (RuleKind kind : RulesOf(shape.name)) {
      RulePtr rule = BuildRule(l, table, shape.name, kind, {});
      expected.push_back(RuleText(rule.get()));
    }
    if (it->second.rules != expected) {
      repairs.push_back(absl::StrCat(table_text, ": rules of chain ", shape.name, " edited"));
      FlushChainMessage(batch, l, table, shape.name);
      AddRuleMessages(batch, l, table, shape.name, {});
    }
  }
  for (const MapShape& shape : shapes) {
    const Elements& have = observed.sets.at(shape.name).elements;
    const Elements& wanted = want[shape.name];
    std::vector<Element> remove;
    std::vector<Element> add;
    for (const auto& element : have) {
      auto w = wanted.find(element.first);
      if (w == wanted.end() || w->second != element.second) remove.push_back(element);
    }
    for (const auto& element : wanted) {
      auto h = have.find(element.first);
      if (h == have.end() || h->second != element.second) add.push_back(element);
    }
    // Deletions first: a changed element is deleted and added again within the batch.
    ElementMessages(batch, l, table, shape.name, 0, remove, /*add=*/false);
    ElementMessages(batch, l, table, shape.name, 0, add, /*add=*/true);
    last_apply_.elements_removed += static_cast<int>(remove.size());
    last_apply_.elements_added += static_cast<int>(add.size());
  }
}

absl::Status NftRuleProgrammer::Send(NftBatch& batch) {
  batch.Finish();
  next_seq_ = batch.next_seq() + 1;
  const std::vector<char>& bytes = batch.bytes();
  const int fd = mnl_socket_get_fd(socket_.get());
  // A netlink message must fit the socket's send buffer; the batch travels as one.
  const int size = static_cast<int>(bytes.size()) + 4096;
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) < 0) {
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
  }
  if (mnl_socket_sendto(socket_.get(), bytes.data(), bytes.size()) < 0) {
    return absl::UnavailableError(absl::StrCat("cannot send the nftables batch for table ", options_.table_name, " (",
                                               bytes.size(), " bytes): ", Errno(errno)));
  }
  last_apply_.batch_sent = true;

  int expected = batch.messages();
  int first_error = 0;
  std::string first_error_text;
  while (expected > 0) {
    pollfd p = {fd, POLLIN, 0};
    // Acknowledgements follow at once when all went well; after an error, wait briefly for the rest.
    const int ready = poll(&p, 1, first_error == 0 ? 10000 : 200);
    if (ready <= 0) break;
    const ssize_t n = recv(fd, receive_buffer_.data(), receive_buffer_.size(), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::UnavailableError(
          absl::StrCat("cannot read the kernel's answer for table ", options_.table_name, ": ", Errno(errno)));
    }
    int left = static_cast<int>(n);
    for (auto* m = reinterpret_cast<nlmsghdr*>(receive_buffer_.data()); mnl_nlmsg_ok(m, left);
         m = mnl_nlmsg_next(m, &left)) {
      if (m->nlmsg_type != NLMSG_ERROR) continue;
      const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(m));
      // The kernel refuses a whole batch at its begin message (e.g. ERESTART: the generation moved on); then
      // nothing else is answered.
      expected = batch.IsBegin(m->nlmsg_seq) ? 0 : expected - 1;
      if (err->error == 0 || first_error != 0) continue;
      first_error = -err->error;
      first_error_text = absl::StrCat(batch.Describe(m->nlmsg_seq), ": ", Errno(first_error));
      if (m->nlmsg_flags & NLM_F_ACK_TLVS) {
        const nlattr* attrs[NLMSGERR_ATTR_MAX + 1] = {};
        auto on_attr = [](const nlattr* a, void* data) {
          const uint16_t type = mnl_attr_get_type(a);
          if (type <= NLMSGERR_ATTR_MAX) static_cast<const nlattr**>(data)[type] = a;
          return MNL_CB_OK;
        };
        mnl_attr_parse(m, sizeof(nlmsgerr), on_attr, attrs);
        if (attrs[NLMSGERR_ATTR_MSG] != nullptr) {
          absl::StrAppend(&first_error_text, " (", mnl_attr_get_str(attrs[NLMSGERR_ATTR_MSG]), ")");
        }
      }
    }
  }
  if (first_error == ERESTART) {
    return absl::AbortedError(
        absl::StrCat("the ruleset changed while table ", options_.table_name, " was being updated"));
  }
  if (first_error != 0) {
    return absl::InternalError(absl::StrCat("the kernel refused the nftables batch: ", first_error_text));
  }
  if (expected > 0) {
    return absl::DeadlineExceededError(
        absl::StrCat("the kernel did not acknowledge the nftables batch for table ", options_.table_name));
  }
  return absl::OkStatus();
}

void NftRuleProgrammer::PlanChange(IpFamily family, const NatRulesetDiff& diff, NftBatch& batch) {
  const FamilyLayout l = Layout(family);
  const std::string& table = options_.table_name;
  std::vector<Element> magic_remove, magic_add, dnat_remove, dnat_add, snat_remove, snat_add;
  for (const MagicDnat& m : diff.magic_dnat.to_remove) {
    if (m.family == family) magic_remove.push_back(MagicElement(m));
  }
  for (const MagicDnat& m : diff.magic_dnat.to_add) {
    if (m.family == family) magic_add.push_back(MagicElement(m));
  }
  for (const ElasticNat& e : diff.elastic_nat.to_remove) {
    if (FamilyOf(e) != family) continue;
    Element element = ElasticElement(e);
    snat_remove.emplace_back(element.second, element.first);
    dnat_remove.push_back(std::move(element));
  }
  for (const ElasticNat& e : diff.elastic_nat.to_add) {
    if (FamilyOf(e) != family) continue;
    Element element = ElasticElement(e);
    snat_add.emplace_back(element.second, element.first);
    dnat_add.push_back(std::move(element));
  }
  const std::array<std::tuple<const char*, const std::vector<Element>*, const std::vector<Element>*>, 3> maps = {{
      {kMagicDnat, &magic_remove, &magic_add},
      {kElasticDnat, &dnat_remove, &dnat_add},
      {kElasticSnat, &snat_remove, &snat_add},
  }};
  for (const auto& [name, remove, add] : maps) {
    // Deletions first: a key that changes its data is deleted and added again within the batch.
    ElementMessages(batch, l, table, name, 0, *remove, /*add=*/false);
    ElementMessages(batch, l, table, name, 0, *add, /*add=*/true);
    last_apply_.elements_removed += static_cast<int>(remove->size());
    last_apply_.elements_added += static_cast<int>(add->size());
  }
}

void NftRuleProgrammer::Remember(uint32_t generation, NatRuleset ruleset) {
  absl::StatusOr<uint32_t> now = Generation();
  if (now.ok() && *now == generation) {
    committed_ = Committed{generation, std::move(ruleset)};
  } else {
    committed_.reset();
  }
}

absl::Status NftRuleProgrammer::ApplyOnce(const NatRuleset& desired, bool validated) {
  last_apply_ = ApplyReport{};
  absl::StatusOr<uint32_t> generation = Generation();
  if (!generation.ok()) return generation.status();

  if (committed_.has_value() && committed_->generation == *generation) {
    // Nothing was committed since our own last batch: the tables hold committed_->ruleset exactly.
    const NatRulesetDiff diff = Diff(committed_->ruleset, desired);
    if (!validated) {
      // Mappings already committed were validated then; conflicts are checked across the whole ruleset.
      for (const MagicDnat& m : diff.magic_dnat.to_add) {
        if (absl::Status s = ValidateMapping(m); !s.ok()) return s;
      }
      for (const ElasticNat& e : diff.elastic_nat.to_add) {
        if (absl::Status s = ValidateMapping(e); !s.ok()) return s;
      }
      if (absl::Status s = CheckNatRulesetConflicts(desired); !s.ok()) return s;
    }
    if (diff.empty()) return absl::OkStatus();
    NftBatch batch(next_seq_, *generation);
    PlanChange(IpFamily::kIpv4, diff, batch);
    PlanChange(IpFamily::kIpv6, diff, batch);
    last_apply_.messages = batch.messages();
    Committed committed = *std::exchange(committed_, std::nullopt);
    if (absl::Status s = Send(batch); !s.ok()) return s;
    // Brought up to date in place: cheaper than copying `desired` whole.
    for (const MagicDnat& m : diff.magic_dnat.to_remove) committed.ruleset.magic_dnat.erase(m);
    for (const ElasticNat& e : diff.elastic_nat.to_remove) committed.ruleset.elastic_nat.erase(e);
    committed.ruleset.magic_dnat.insert(diff.magic_dnat.to_add.begin(), diff.magic_dnat.to_add.end());
    committed.ruleset.elastic_nat.insert(diff.elastic_nat.to_add.begin(), diff.elastic_nat.to_add.end());
    Remember(*generation + 1, std::move(committed.ruleset));
    return absl::OkStatus();
  }

  committed_.reset();
  if (!validated) {
    if (absl::Status s = ValidateNatRuleset(desired); !s.ok()) return s;
  }
  last_apply_.read_kernel = true;
  absl::StatusOr<Observed> observed_v4 = ReadFamily(IpFamily::kIpv4);
  if (!observed_v4.ok()) return observed_v4.status();
  absl::StatusOr<Observed> observed_v6 = ReadFamily(IpFamily::kIpv6);
  if (!observed_v6.ok()) return observed_v6.status();
  NftBatch batch(next_seq_, *generation);
  Plan(IpFamily::kIpv4, desired, *observed_v4, batch);
  Plan(IpFamily::kIpv6, desired, *observed_v6, batch);
  last_apply_.messages = batch.messages();
  if (batch.messages() == 0) {
    Remember(*generation, desired);
    return absl::OkStatus();
  }
  if (absl::Status s = Send(batch); !s.ok()) return s;
  Remember(*generation + 1, desired);
  return absl::OkStatus();
}

absl::Status NftRuleProgrammer::Apply(const NatRuleset& desired) {
  constexpr int kAttempts = 3;
  absl::Status status;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    // A retry follows a refused batch: validation already passed in the first round.
    status = ApplyOnce(desired, /*validated=*/attempt > 0);
    last_apply_.attempts = attempt + 1;
    if (!absl::IsAborted(status)) return status;
  }
  return status;
}

}  // namespace abode::node

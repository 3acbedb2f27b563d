#include "nft_objects.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <libnftnl/common.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter_arp.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace abode::node::nft {
namespace {

// nftables datatype numbers (nft's src/datatype.h); a concatenation packs its parts six bits apart.
constexpr uint32_t kTypeBits = 6;
constexpr uint32_t kTypeNfproto = 2;
constexpr uint32_t kTypeIpv4Addr = 7;
constexpr uint32_t kTypeIpv6Addr = 8;
constexpr uint32_t kTypeInetProto = 12;
constexpr uint32_t kTypeInetService = 13;
constexpr uint32_t Concat(uint32_t a, uint32_t b) { return a << kTypeBits | b; }

// Largest element count per NEWSETELEM/DELSETELEM message: the element list is one netlink attribute, whose
// length must stay below 64 KiB (an IPv6 magic element takes about 80 bytes).
constexpr size_t kElementsPerMessage = 512;
// Room reserved for one message while it is built: libnftnl writes without bounds checks.
constexpr size_t kMaxMessageSize = 96 * 1024;

struct ExprDeleter {
  void operator()(nftnl_expr* e) const { nftnl_expr_free(e); }
};
struct SetElemDeleter {
  void operator()(nftnl_set_elem* e) const { nftnl_set_elem_free(e); }
};
struct ExprIterDeleter {
  void operator()(nftnl_expr_iter* i) const { nftnl_expr_iter_destroy(i); }
};
using ExprPtr = std::unique_ptr<nftnl_expr, ExprDeleter>;
using SetElemPtr = std::unique_ptr<nftnl_set_elem, SetElemDeleter>;
using ExprIterPtr = std::unique_ptr<nftnl_expr_iter, ExprIterDeleter>;

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

// A map lookup leaves its data in NFT_REG_1; a set lookup (`map` false) only matches.
// `inverted`: a set lookup that matches when the key is absent.
void AddLookup(nftnl_rule* rule, const char* set, uint32_t set_id, bool map = true, bool inverted = false) {
  ExprPtr e(nftnl_expr_alloc("lookup"));
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
  if (map) nftnl_expr_set_u32(e.get(), NFTNL_EXPR_LOOKUP_DREG, NFT_REG_1);
  nftnl_expr_set_str(e.get(), NFTNL_EXPR_LOOKUP_SET, set);
  if (set_id != 0) nftnl_expr_set_u32(e.get(), NFTNL_EXPR_LOOKUP_SET_ID, set_id);
  // Always set: the kernel reports it.
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_LOOKUP_FLAGS, inverted ? NFT_LOOKUP_F_INV : 0);
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

void AddCmpEq(nftnl_rule* rule, const void* data, uint32_t length) {
  ExprPtr e(nftnl_expr_alloc("cmp"));
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_CMP_SREG, NFT_REG_1);
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_CMP_OP, NFT_CMP_EQ);
  nftnl_expr_set(e.get(), NFTNL_EXPR_CMP_DATA, data, length);
  nftnl_rule_add_expr(rule, e.release());
}

void AddCounter(nftnl_rule* rule) {
  ExprPtr e(nftnl_expr_alloc("counter"));
  nftnl_expr_set_u64(e.get(), NFTNL_EXPR_CTR_PACKETS, 0);
  nftnl_expr_set_u64(e.get(), NFTNL_EXPR_CTR_BYTES, 0);
  nftnl_rule_add_expr(rule, e.release());
}

void AddVerdict(nftnl_rule* rule, int verdict) {
  ExprPtr e(nftnl_expr_alloc("immediate"));
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_IMM_VERDICT, static_cast<uint32_t>(verdict));
  nftnl_rule_add_expr(rule, e.release());
}

// The key of magic_dnat and magic_drop: destination address . l4 protocol . destination port.
void AddMagicKey(nftnl_rule* rule, const FamilyLayout& l) {
  AddPayload(rule, NFT_PAYLOAD_NETWORK_HEADER, l.daddr_offset, l.addr_len, NFT_REG_1);
  AddMeta(rule, NFT_META_L4PROTO, l.proto_reg);
  AddPayload(rule, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, l.port_reg);  // th dport
}

std::string MagicKey(const std::string& address, L4Protocol protocol, uint16_t port) {
  std::string key;
  AppendAddress(key, *IpAddress::Parse(address));
  key.push_back(static_cast<char>(L4ProtocolNumber(protocol)));
  key.append(3, '\0');
  AppendPort(key, port);
  return key;
}

RulePtr NewRule(const FamilyLayout& l, const std::string& table, const char* chain) {
  RulePtr rule(nftnl_rule_alloc());
  nftnl_rule_set_str(rule.get(), NFTNL_RULE_TABLE, table.c_str());
  nftnl_rule_set_str(rule.get(), NFTNL_RULE_CHAIN, chain);
  nftnl_rule_set_u32(rule.get(), NFTNL_RULE_FAMILY, l.nfproto);
  return rule;
}

// The batch-local id of set `name` when it is created in the same batch, else 0.
uint32_t IdOf(const std::map<std::string, uint32_t>& set_ids, const char* name) {
  auto it = set_ids.find(name);
  return it == set_ids.end() ? 0u : it->second;
}

}  // namespace

FamilyLayout Layout(IpFamily family) {
  if (family == IpFamily::kIpv4) {
    return {family, NFPROTO_IPV4, 4, kTypeIpv4Addr, 12, 16, NFT_REG32_01, NFT_REG32_02};
  }
  return {family, NFPROTO_IPV6, 16, kTypeIpv6Addr, 8, 24, NFT_REG_2 /* = NFT_REG32_04 */, NFT_REG32_05};
}

FamilyLayout ArpLayout() {
  FamilyLayout l = Layout(IpFamily::kIpv4);
  l.nfproto = NFPROTO_ARP;
  return l;
}

std::string TableName(const FamilyLayout& l, const std::string& table) {
  return absl::StrCat(l.nfproto == NFPROTO_ARP ? "arp" : IpFamilyName(l.family), " ", table);
}

// Every part of a concatenation is padded to four bytes.
std::array<SetShape, kSetCount> Sets(const FamilyLayout& l) {
  const uint32_t magic_key = Concat(Concat(l.addr_type, kTypeInetProto), kTypeInetService);
  return {{
      {kMagicDnat, NFT_SET_MAP, magic_key, l.addr_len + 8, Concat(l.addr_type, kTypeInetService), l.addr_len + 4},
      {kElasticDnat, NFT_SET_MAP, l.addr_type, l.addr_len, l.addr_type, l.addr_len},
      {kElasticSnat, NFT_SET_MAP, l.addr_type, l.addr_len, l.addr_type, l.addr_len},
      {kMagicDrop, 0, magic_key, l.addr_len + 8, 0, 0},
  }};
}

std::vector<RuleKind> RulesOf(absl::string_view chain) {
  if (chain == kPostrouting) return {RuleKind::kElasticSnat};
  if (chain == kDropPrerouting || chain == kDropOutput) return {RuleKind::kMagicDrop};
  return {RuleKind::kMagicDnat, RuleKind::kElasticDnat};
}

Element MagicElement(const MagicDnat& m) {
  std::string data;
  AppendAddress(data, *IpAddress::Parse(m.target_address));
  AppendPort(data, m.target_port);
  return {MagicKey(m.magic_address, m.protocol, m.port), std::move(data)};
}

Element DropElement(const MagicDrop& m) { return {MagicKey(m.magic_address, m.protocol, m.port), std::string()}; }

// The elastic_dnat element of a mapping; its elastic_snat element is the same pair swapped.
Element ElasticElement(const ElasticNat& e) {
  std::string elastic;
  AppendAddress(elastic, *IpAddress::Parse(e.elastic_address));
  std::string workload;
  AppendAddress(workload, *IpAddress::Parse(e.workload_address));
  return {std::move(elastic), std::move(workload)};
}

std::map<std::string, Elements> DesiredElements(const NatRuleset& desired, IpFamily family) {
  std::map<std::string, Elements> sets = {{kMagicDnat, {}}, {kElasticDnat, {}}, {kElasticSnat, {}}, {kMagicDrop, {}}};
  for (const MagicDnat& m : desired.magic_dnat) {
    if (m.family == family) sets[kMagicDnat].insert(MagicElement(m));
  }
  for (const MagicDrop& m : desired.magic_drop) {
    if (m.family == family) sets[kMagicDrop].insert(DropElement(m));
  }
  for (const ElasticNat& e : desired.elastic_nat) {
    if (FamilyOf(e) != family) continue;
    Element element = ElasticElement(e);
    sets[kElasticSnat].emplace(element.second, element.first);
    sets[kElasticDnat].insert(std::move(element));
  }
  return sets;
}

void ReadMappings(const FamilyLayout& l, const Elements* magic, const Elements* dnat, const Elements* snat,
                  const Elements* drop, NatRuleset& out) {
  auto key_of = [&](const std::string& key, L4Protocol& protocol) {
    if (key.size() != l.addr_len + 8) return false;
    const uint8_t proto = static_cast<uint8_t>(key[l.addr_len]);
    if (proto != L4ProtocolNumber(L4Protocol::kTcp) && proto != L4ProtocolNumber(L4Protocol::kUdp)) return false;
    protocol = proto == L4ProtocolNumber(L4Protocol::kTcp) ? L4Protocol::kTcp : L4Protocol::kUdp;
    return true;
  };
  L4Protocol protocol;
  if (magic != nullptr) {
    for (const auto& [key, data] : *magic) {
      if (!key_of(key, protocol) || data.size() != l.addr_len + 4) continue;
      out.magic_dnat.insert(MagicDnat{l.family, ReadAddress(key, l.addr_len).ToString(), protocol,
                                      ReadPort(key, l.addr_len + 4), ReadAddress(data, l.addr_len).ToString(),
                                      ReadPort(data, l.addr_len)});
    }
  }
  if (drop != nullptr) {
    for (const auto& [key, data] : *drop) {
      if (!key_of(key, protocol)) continue;
      out.magic_drop.insert(
          MagicDrop{l.family, ReadAddress(key, l.addr_len).ToString(), protocol, ReadPort(key, l.addr_len + 4)});
    }
  }
  // An elastic mapping is in force only when both of its halves are.
  if (dnat != nullptr && snat != nullptr) {
    for (const auto& [elastic, workload] : *dnat) {
      auto back = snat->find(workload);
      if (back == snat->end() || back->second != elastic) continue;
      out.elastic_nat.insert(
          ElasticNat{ReadAddress(elastic, l.addr_len).ToString(), ReadAddress(workload, l.addr_len).ToString()});
    }
  }
}

std::string Errno(int error) { return std::strerror(error); }


// `set_ids` maps a map name to the batch-local id of a map created in the same batch (0: already in the kernel).
RulePtr BuildRule(const FamilyLayout& l, const std::string& table, const char* chain, RuleKind kind,
                  const std::map<std::string, uint32_t>& set_ids) {
  RulePtr rule = NewRule(l, table, chain);
  auto id_of = [&](const char* set) { return IdOf(set_ids, set); };
  switch (kind) {
    case RuleKind::kMagicDnat:
      AddMagicKey(rule.get(), l);
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
    case RuleKind::kMagicDrop:
      AddMagicKey(rule.get(), l);
      AddLookup(rule.get(), kMagicDrop, id_of(kMagicDrop), /*map=*/false);
      AddCounter(rule.get());
      AddVerdict(rule.get(), NF_DROP);
      break;
  }
  return rule;
}

std::array<SetShape, 2> GuardSets(const FamilyLayout& l) {
  return {{{kGuarded, 0, l.addr_type, l.addr_len, 0, 0}, {kAlive, NFT_SET_TIMEOUT, kTypeNfproto, 1, 0, 0}}};
}

Element AliveElement(const FamilyLayout& l) {
  return {std::string(1, static_cast<char>(l.nfproto)), std::string()};
}

std::vector<ChainShape> GuardChains(const FamilyLayout& l) {
  if (l.nfproto == NFPROTO_ARP) {
    return {{kGuardInput, "filter", NF_ARP_IN, 0}, {kGuardOutput, "filter", NF_ARP_OUT, 0}};
  }
  // Inbound before connection tracking and NAT; outbound after source NAT, so that what an elastic mapping
  // translates to the guarded address is seen with it.
  return {{kGuardPrerouting, "filter", NF_INET_PRE_ROUTING, NF_IP_PRI_RAW},
          {kGuardPostrouting, "filter", NF_INET_POST_ROUTING, NF_IP_PRI_NAT_SRC + 1}};
}

std::vector<GuardRule> GuardRulesOf(const FamilyLayout& l, absl::string_view chain) {
  if (chain == kGuardInput) return {GuardRule::kArpTarget};
  if (chain == kGuardOutput) return {GuardRule::kArpSender};
  const bool v6 = l.family == IpFamily::kIpv6;
  if (chain == kGuardPrerouting) {
    if (v6) return {GuardRule::kDestination, GuardRule::kNeighbourSolicitationTarget};
    return {GuardRule::kDestination};
  }
  if (v6) return {GuardRule::kSource, GuardRule::kNeighbourAdvertisementTarget};
  return {GuardRule::kSource};
}

RulePtr BuildGuardRule(const FamilyLayout& l, const std::string& table, const char* chain, GuardRule kind,
                       const std::map<std::string, uint32_t>& set_ids) {
  RulePtr rule = NewRule(l, table, chain);
  auto id_of = [&](const char* set) { return IdOf(set_ids, set); };
  // An ICMPv6 neighbour message of `type` whose target address (8 bytes into the message) is the key.
  auto neighbour_target = [&](uint8_t type) {
    const uint8_t icmpv6 = IPPROTO_ICMPV6;
    AddMeta(rule.get(), NFT_META_L4PROTO, NFT_REG_1);
    AddCmpEq(rule.get(), &icmpv6, 1);
    AddPayload(rule.get(), NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1, NFT_REG_1);
    AddCmpEq(rule.get(), &type, 1);
    AddPayload(rule.get(), NFT_PAYLOAD_TRANSPORT_HEADER, 8, 16, NFT_REG_1);
  };
  // ARP over Ethernet: sender protocol address at 14, target protocol address at 24 (as nft's `arp saddr ip`).
  constexpr uint32_t kArpSenderOffset = 14;
  constexpr uint32_t kArpTargetOffset = 24;
  switch (kind) {
    case GuardRule::kDestination:
      AddPayload(rule.get(), NFT_PAYLOAD_NETWORK_HEADER, l.daddr_offset, l.addr_len, NFT_REG_1);
      break;
    case GuardRule::kSource:
      AddPayload(rule.get(), NFT_PAYLOAD_NETWORK_HEADER, l.saddr_offset, l.addr_len, NFT_REG_1);
      break;
    case GuardRule::kNeighbourSolicitationTarget:
      neighbour_target(135);
      break;
    case GuardRule::kNeighbourAdvertisementTarget:
      neighbour_target(136);
      break;
    case GuardRule::kArpTarget:
      AddPayload(rule.get(), NFT_PAYLOAD_NETWORK_HEADER, kArpTargetOffset, 4, NFT_REG_1);
      break;
    case GuardRule::kArpSender:
      AddPayload(rule.get(), NFT_PAYLOAD_NETWORK_HEADER, kArpSenderOffset, 4, NFT_REG_1);
      break;
  }
  AddLookup(rule.get(), kGuarded, id_of(kGuarded), /*map=*/false);
  // The lease: the one element of `alive`, keyed by the hook's family, which every packet here shares.
  AddMeta(rule.get(), NFT_META_NFPROTO, NFT_REG_1);
  AddLookup(rule.get(), kAlive, id_of(kAlive), /*map=*/false, /*inverted=*/true);
  AddCounter(rule.get());
  AddVerdict(rule.get(), NF_DROP);
  return rule;
}

// A rule's expressions as text: two rules are the same rule exactly when their texts are equal.
std::string RuleText(nftnl_rule* rule) {
  std::vector<std::string> parts;
  ExprIterPtr it(nftnl_expr_iter_create(rule));
  char buffer[512];
  for (nftnl_expr* e = nftnl_expr_iter_next(it.get()); e != nullptr; e = nftnl_expr_iter_next(it.get())) {
    const std::string name = nftnl_expr_get_str(e, NFTNL_EXPR_NAME);
    buffer[0] = '\0';
    if (name != "counter") nftnl_expr_snprintf(buffer, sizeof(buffer), e, NFTNL_OUTPUT_DEFAULT, 0);
    parts.push_back(absl::StrCat(name, " ", buffer));
  }
  return absl::StrJoin(parts, "; ");
}

NftBatch::NftBatch(uint32_t first_seq, uint32_t generation) : first_seq_(first_seq), next_seq_(first_seq) {
  nlmsghdr* begin = nftnl_batch_begin(Reserve(), next_seq_++);
  mnl_attr_put_u32(begin, NFNL_BATCH_GENID, htonl(generation));
  Append(begin, "batch begin");
}

nlmsghdr* NftBatch::Start(uint16_t type, uint16_t family, uint16_t flags) {
  return nftnl_nlmsg_build_hdr(Reserve(), type, family, flags | NLM_F_ACK, next_seq_);
}

void NftBatch::Commit(nlmsghdr* message, std::string what) {
  Append(message, std::move(what));
  ++messages_;
}

void NftBatch::Finish() {
  nlmsghdr* end = nftnl_batch_end(Reserve(), next_seq_);
  Append(end, "batch end");
  buffer_.resize(used_);
}

absl::string_view NftBatch::Describe(uint32_t seq) const {
  if (seq < first_seq_ || seq - first_seq_ >= descriptions_.size()) return "an unknown message";
  return descriptions_[seq - first_seq_];
}

void NftBatch::Append(nlmsghdr* message, std::string what) {
  used_ += NLMSG_ALIGN(message->nlmsg_len);
  descriptions_.push_back(std::move(what));
  ++next_seq_;
}

char* NftBatch::Reserve() {
  if (buffer_.size() < used_ + kMaxMessageSize) buffer_.resize(std::max(buffer_.size() * 2, used_ + kMaxMessageSize));
  return buffer_.data() + used_;
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
  nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TYPE, shape.type);
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

void AddSetMessage(NftBatch& batch, const FamilyLayout& l, const std::string& table, const SetShape& shape,
                   uint32_t set_id) {
  SetPtr s = NewSetObject(l, table, shape.name, set_id);
  nftnl_set_set_u32(s.get(), NFTNL_SET_FLAGS, shape.flags);
  nftnl_set_set_u32(s.get(), NFTNL_SET_KEY_TYPE, shape.key_type);
  nftnl_set_set_u32(s.get(), NFTNL_SET_KEY_LEN, shape.key_len);
  if (shape.data_len > 0) {
    nftnl_set_set_u32(s.get(), NFTNL_SET_DATA_TYPE, shape.data_type);
    nftnl_set_set_u32(s.get(), NFTNL_SET_DATA_LEN, shape.data_len);
  }
  nlmsghdr* m = batch.Start(NFT_MSG_NEWSET, l.nfproto, NLM_F_CREATE);
  nftnl_set_nlmsg_build_payload(m, s.get());
  batch.Commit(m, absl::StrCat("add ", shape.data_len > 0 ? "map " : "set ", TableName(l, table), " ", shape.name));
}

// The element keys of the addresses of `addresses` that a table of layout `l` holds, in ascending order.
std::vector<Element> AddressKeys(const FamilyLayout& l, const std::set<std::string>& addresses) {
  std::vector<Element> keys;
  for (const std::string& text : addresses) {
    absl::StatusOr<IpAddress> address = IpAddress::Parse(text);
    if (!address.ok() || address->family != l.family) continue;
    keys.emplace_back(std::string(reinterpret_cast<const char*>(address->bytes.data()), address->ByteLength()),
                      std::string());
  }
  std::sort(keys.begin(), keys.end());
  return keys;
}

void FlushSetMessage(NftBatch& batch, const FamilyLayout& l, const std::string& table, const char* name) {
  SetPtr set = NewSetObject(l, table, name, 0);
  nlmsghdr* m = batch.Start(NFT_MSG_DELSETELEM, l.nfproto, 0);
  nftnl_set_elems_nlmsg_build_payload(m, set.get());
  batch.Commit(m, absl::StrCat("flush set ", TableName(l, table), " ", name));
}

void ElementMessages(NftBatch& batch, const FamilyLayout& l, const std::string& table, const char* name,
                     uint32_t set_id, const std::vector<Element>& elements, bool add, uint64_t timeout_ms) {
  for (size_t start = 0; start < elements.size(); start += kElementsPerMessage) {
    const size_t end = std::min(elements.size(), start + kElementsPerMessage);
    SetPtr s = NewSetObject(l, table, name, set_id);
    for (size_t i = start; i < end; ++i) {
      SetElemPtr e(nftnl_set_elem_alloc());
      const auto& [key, data] = elements[i];
      nftnl_set_elem_set(e.get(), NFTNL_SET_ELEM_KEY, key.data(), static_cast<uint32_t>(key.size()));
      if (add && timeout_ms > 0) nftnl_set_elem_set_u64(e.get(), NFTNL_SET_ELEM_TIMEOUT, timeout_ms);
      if (add && !data.empty()) {
        nftnl_set_elem_set(e.get(), NFTNL_SET_ELEM_DATA, data.data(), static_cast<uint32_t>(data.size()));
      }
      nftnl_set_elem_add(s.get(), e.release());
    }
    nlmsghdr* m = batch.Start(add ? NFT_MSG_NEWSETELEM : NFT_MSG_DELSETELEM, l.nfproto, add ? NLM_F_CREATE : 0);
    nftnl_set_elems_nlmsg_build_payload(m, s.get());
    batch.Commit(m, absl::StrCat(add ? "add " : "delete ", end - start, " elements ", add ? "to" : "from", " ",
                                 TableName(l, table), " ", name));
  }
}

}  // namespace abode::node::nft

// NftRuleProgrammer: reading abode's tables back from the kernel.
#include <libmnl/libmnl.h>
#include <linux/netfilter/nf_tables.h>

#include <array>

#include "absl/strings/str_cat.h"
#include "nft_objects.h"
#include "nft_rule_programmer.h"

namespace abode::node {

using nft::ChainPtr;
using nft::FamilyLayout;
using nft::Layout;
using nft::ObservedTable;
using nft::RulePtr;
using nft::SetElemsIterPtr;
using nft::SetPtr;
using nft::TablePtr;
using nft::TableName;

absl::StatusOr<ObservedTable> NftRuleProgrammer::ReadFamily(IpFamily family) {
  const FamilyLayout l = Layout(family);
  const std::string& table = options_.table_name;
  const std::string table_text = TableName(l, table);
  ObservedTable observed;
  std::array<char, 1024> buffer{};

  {
    TablePtr t(nftnl_table_alloc());
    nftnl_table_set_str(t.get(), NFTNL_TABLE_NAME, table.c_str());
    nlmsghdr* request = nftnl_nlmsg_build_hdr(buffer.data(), NFT_MSG_GETTABLE, l.nfproto, NLM_F_ACK, next_seq_++);
    nftnl_table_nlmsg_build_payload(request, t.get());
    auto on_message = [](const nlmsghdr* m, void* context) {
      auto* out = static_cast<ObservedTable*>(context);
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
    ObservedTable* observed;
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
      ObservedTable::Chain& out = ctx->observed->chains[nftnl_chain_get_str(chain.get(), NFTNL_CHAIN_NAME)];
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
      ctx->observed->chains[nftnl_rule_get_str(rule.get(), NFTNL_RULE_CHAIN)].rules.push_back(
          nft::RuleText(rule.get()));
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
      ObservedTable::Set& out = ctx->observed->sets[nftnl_set_get_str(s.get(), NFTNL_SET_NAME)];
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

  for (const nft::SetShape& shape : nft::Sets(l)) {
    auto found = observed.sets.find(shape.name);
    if (found == observed.sets.end()) continue;
    SetPtr set = nft::NewSetObject(l, table, shape.name, 0);
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
    absl::StatusOr<ObservedTable> observed = ReadFamily(family);
    if (!observed.ok()) return observed.status();
    const FamilyLayout l = Layout(family);
    const std::array<nft::SetShape, nft::kSetCount> shapes = nft::Sets(l);
    auto elements_of = [&](const nft::SetShape& shape) -> const nft::Elements* {
      auto it = observed->sets.find(shape.name);
      if (it == observed->sets.end() || it->second.key_len != shape.key_len || it->second.data_len != shape.data_len) {
        return nullptr;
      }
      return &it->second.elements;
    };
    nft::ReadMappings(l, elements_of(shapes[0]), elements_of(shapes[1]), elements_of(shapes[2]),
                      elements_of(shapes[3]), ruleset);
  }
  return ruleset;
}

}  // namespace abode::node

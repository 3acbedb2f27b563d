#include "nft_rule_programmer.h"

#include <libmnl/libmnl.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <map>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "nft_objects.h"

namespace abode::node {

using nft::ChainShape;
using nft::Element;
using nft::Elements;
using nft::GenPtr;
using nft::FamilyLayout;
using nft::kChains;
using nft::Layout;
using nft::NftBatch;
using nft::ObservedTable;
using nft::RuleKind;
using nft::RulePtr;
using nft::RulesOf;
using nft::SetShape;
using nft::TableName;

void MnlSocketDeleter::operator()(mnl_socket* socket) const { mnl_socket_close(socket); }

absl::StatusOr<std::unique_ptr<NftRuleProgrammer>> NftRuleProgrammer::Create(Options options) {
  if (options.table_name.empty() || options.table_name.size() >= NFT_TABLE_MAXNAMELEN) {
    return absl::InvalidArgumentError(absl::StrCat("'", options.table_name, "' is not a table name"));
  }
  MnlSocketPtr socket(mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC));
  if (socket == nullptr) {
    return absl::UnavailableError(absl::StrCat("cannot open a netfilter netlink socket: ", nft::Errno(errno)));
  }
  if (mnl_socket_bind(socket.get(), 0, MNL_SOCKET_AUTOPID) < 0) {
    return absl::UnavailableError(absl::StrCat("cannot bind the netfilter netlink socket: ", nft::Errno(errno)));
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
    return absl::UnavailableError(absl::StrCat("cannot send the request to ", what, ": ", nft::Errno(errno)));
  }
  bool interrupted = false;
  while (true) {
    const ssize_t n = mnl_socket_recvfrom(socket_.get(), receive_buffer_.data(), receive_buffer_.size());
    if (n < 0) return absl::UnavailableError(absl::StrCat("cannot ", what, ": ", nft::Errno(errno)));
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
      if (error == ENOENT) return absl::NotFoundError(absl::StrCat("cannot ", what, ": ", nft::Errno(error)));
      return absl::UnavailableError(absl::StrCat("cannot ", what, ": ", nft::Errno(error)));
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

void NftRuleProgrammer::Plan(IpFamily family, const NatRuleset& desired, const ObservedTable& observed,
                             NftBatch& batch) {
  const FamilyLayout l = Layout(family);
  const std::string& table = options_.table_name;
  const std::string table_text = TableName(l, table);
  const std::array<SetShape, nft::kSetCount> shapes = nft::Sets(l);
  std::map<std::string, Elements> want = nft::DesiredElements(desired, family);

  std::vector<std::string>& repairs = last_apply_.repairs;
  bool rebuild = false;
  if (observed.table_exists) {
    if (observed.table_flags != 0) {
      repairs.push_back(absl::StrCat(table_text, ": table flags 0x", absl::Hex(observed.table_flags)));
      rebuild = true;
    }
    for (const SetShape& shape : shapes) {
      auto it = observed.sets.find(shape.name);
      if (it == observed.sets.end()) {
        repairs.push_back(absl::StrCat(table_text, ": map ", shape.name, " missing"));
        rebuild = true;
      } else if (it->second.flags != shape.flags || it->second.key_type != shape.key_type ||
                 it->second.key_len != shape.key_len || it->second.data_type != shape.data_type ||
                 it->second.data_len != shape.data_len) {
        repairs.push_back(absl::StrCat(table_text, ": map ", shape.name, " has another type"));
        rebuild = true;
      }
    }
    for (const auto& [name, set] : observed.sets) {
      if (std::none_of(shapes.begin(), shapes.end(), [&](const SetShape& m) { return name == m.name; })) {
        repairs.push_back(absl::StrCat(table_text, ": foreign set ", name));
        rebuild = true;
      }
    }
    for (const auto& [name, chain] : observed.chains) {
      auto shape = std::find_if(kChains.begin(), kChains.end(), [&](const ChainShape& c) { return name == c.name; });
      if (shape == kChains.end()) {
        repairs.push_back(absl::StrCat(table_text, ": foreign chain ", name));
        rebuild = true;
      } else if (!chain.base || chain.hook != shape->hook || chain.priority != shape->priority ||
                 chain.type != shape->type || chain.policy != NF_ACCEPT) {
        repairs.push_back(absl::StrCat(table_text, ": chain ", name, " has another hook, priority, type or policy"));
        rebuild = true;
      }
    }
  }

  if (!observed.table_exists || rebuild) {
    if (rebuild) nft::AddTableMessage(batch, l, table, NFT_MSG_DELTABLE);
    nft::AddTableMessage(batch, l, table, NFT_MSG_NEWTABLE);
    for (const ChainShape& chain : kChains) nft::AddChainMessage(batch, l, table, chain);
    std::map<std::string, uint32_t> set_ids;
    for (const SetShape& shape : shapes) {
      const uint32_t id = batch.next_seq();  // unique within the batch
      set_ids[shape.name] = id;
      nft::AddSetMessage(batch, l, table, shape, id);
      const Elements& elements = want[shape.name];
      std::vector<Element> add(elements.begin(), elements.end());
      nft::ElementMessages(batch, l, table, shape.name, id, add, /*add=*/true);
      last_apply_.elements_added += static_cast<int>(add.size());
    }
    for (const ChainShape& chain : kChains) nft::AddRuleMessages(batch, l, table, chain.name, set_ids);
    return;
  }

  // The table has abode's shape: repair rules, then change only the elements that differ.
  for (const ChainShape& shape : kChains) {
    auto it = observed.chains.find(shape.name);
    if (it == observed.chains.end()) {
      repairs.push_back(absl::StrCat(table_text, ": chain ", shape.name, " missing"));
      nft::AddChainMessage(batch, l, table, shape);
      nft::AddRuleMessages(batch, l, table, shape.name, {});
      continue;
    }
    std::vector<std::string> expected;
    for (RuleKind kind : RulesOf(shape.name)) {
      RulePtr rule = nft::BuildRule(l, table, shape.name, kind, {});
      expected.push_back(nft::RuleText(rule.get()));
    }
    if (it->second.rules != expected) {
      repairs.push_back(absl::StrCat(table_text, ": rules of chain ", shape.name, " edited"));
      nft::FlushChainMessage(batch, l, table, shape.name);
      nft::AddRuleMessages(batch, l, table, shape.name, {});
    }
  }
  for (const SetShape& shape : shapes) {
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
    nft::ElementMessages(batch, l, table, shape.name, 0, remove, /*add=*/false);
    nft::ElementMessages(batch, l, table, shape.name, 0, add, /*add=*/true);
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
                                               bytes.size(), " bytes): ", nft::Errno(errno)));
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
          absl::StrCat("cannot read the kernel's answer for table ", options_.table_name, ": ", nft::Errno(errno)));
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
      first_error_text = absl::StrCat(batch.Describe(m->nlmsg_seq), ": ", nft::Errno(first_error));
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
  // An object to change is gone (someone else removed it): planned again from a read.
  if (first_error == ERESTART || first_error == ENOENT) {
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
  std::vector<Element> magic_remove, magic_add, dnat_remove, dnat_add, snat_remove, snat_add, drop_remove, drop_add;
  for (const MagicDrop& m : diff.magic_drop.to_remove) {
    if (m.family == family) drop_remove.push_back(nft::DropElement(m));
  }
  for (const MagicDrop& m : diff.magic_drop.to_add) {
    if (m.family == family) drop_add.push_back(nft::DropElement(m));
  }
  for (const MagicDnat& m : diff.magic_dnat.to_remove) {
    if (m.family == family) magic_remove.push_back(nft::MagicElement(m));
  }
  for (const MagicDnat& m : diff.magic_dnat.to_add) {
    if (m.family == family) magic_add.push_back(nft::MagicElement(m));
  }
  for (const ElasticNat& e : diff.elastic_nat.to_remove) {
    if (FamilyOf(e) != family) continue;
    Element element = nft::ElasticElement(e);
    snat_remove.emplace_back(element.second, element.first);
    dnat_remove.push_back(std::move(element));
  }
  for (const ElasticNat& e : diff.elastic_nat.to_add) {
    if (FamilyOf(e) != family) continue;
    Element element = nft::ElasticElement(e);
    snat_add.emplace_back(element.second, element.first);
    dnat_add.push_back(std::move(element));
  }
  const std::array<std::tuple<const char*, const std::vector<Element>*, const std::vector<Element>*>, 4> maps = {{
      {nft::kMagicDnat, &magic_remove, &magic_add},
      {nft::kElasticDnat, &dnat_remove, &dnat_add},
      {nft::kElasticSnat, &snat_remove, &snat_add},
      {nft::kMagicDrop, &drop_remove, &drop_add},
  }};
  for (const auto& [name, remove, add] : maps) {
    // Deletions first: a key that changes its data is deleted and added again within the batch.
    nft::ElementMessages(batch, l, table, name, 0, *remove, /*add=*/false);
    nft::ElementMessages(batch, l, table, name, 0, *add, /*add=*/true);
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
    // Nothing was committed since our own last batch (and no element may have expired): the tables hold
    // committed_->ruleset exactly.
    const NatRulesetDiff diff = Diff(committed_->ruleset, desired);
    if (!validated) {
      // Mappings already committed were validated then; conflicts are checked across the whole ruleset.
      for (const MagicDnat& m : diff.magic_dnat.to_add) {
        if (absl::Status s = ValidateMapping(m); !s.ok()) return s;
      }
      for (const ElasticNat& e : diff.elastic_nat.to_add) {
        if (absl::Status s = ValidateMapping(e); !s.ok()) return s;
      }
      for (const MagicDrop& d : diff.magic_drop.to_add) {
        if (absl::Status s = ValidateMapping(d); !s.ok()) return s;
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
    for (const MagicDrop& d : diff.magic_drop.to_remove) committed.ruleset.magic_drop.erase(d);
    committed.ruleset.magic_drop.insert(diff.magic_drop.to_add.begin(), diff.magic_drop.to_add.end());
    Remember(*generation + 1, std::move(committed.ruleset));
    return absl::OkStatus();
  }

  committed_.reset();
  if (!validated) {
    if (absl::Status s = ValidateNatRuleset(desired); !s.ok()) return s;
  }
  last_apply_.read_kernel = true;
  absl::StatusOr<ObservedTable> observed_v4 = ReadFamily(IpFamily::kIpv4);
  if (!observed_v4.ok()) return observed_v4.status();
  absl::StatusOr<ObservedTable> observed_v6 = ReadFamily(IpFamily::kIpv6);
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

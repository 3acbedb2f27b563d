// NftRuleProgrammer as the LeaseGuard: the node's lease enforced by nftables (the tables: nft_objects.h).
#include <libmnl/libmnl.h>
#include <linux/netfilter/nf_tables.h>

#include <algorithm>
#include <array>
#include <iterator>
#include <map>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "nft_objects.h"
#include "nft_rule_programmer.h"

namespace abode::node {

using nft::Element;
using nft::FamilyLayout;
using nft::NftBatch;

namespace {

std::array<FamilyLayout, 3> GuardLayouts() {
  return {nft::Layout(IpFamily::kIpv4), nft::Layout(IpFamily::kIpv6), nft::ArpLayout()};
}

}  // namespace

absl::StatusOr<std::optional<std::vector<Element>>> NftRuleProgrammer::GuardSetKeys(const FamilyLayout& l,
                                                                                     const char* name) {
  const std::string table = GuardTable();
  nft::SetPtr set = nft::NewSetObject(l, table, name, 0);
  std::array<char, 1024> buffer{};
  nlmsghdr* request = nftnl_nlmsg_build_hdr(buffer.data(), NFT_MSG_GETSETELEM, l.nfproto, NLM_F_DUMP, next_seq_++);
  nftnl_set_elems_nlmsg_build_payload(request, set.get());
  auto on_message = [](const nlmsghdr* m, void* arg) {
    nftnl_set_elems_nlmsg_parse(m, static_cast<nftnl_set*>(arg));
    return MNL_CB_OK;
  };
  absl::Status read =
      Exchange(request, absl::StrCat("list set ", nft::TableName(l, table), " ", name), on_message, set.get());
  if (absl::IsNotFound(read) || absl::IsAborted(read)) return std::nullopt;
  if (!read.ok()) return read;
  std::vector<Element> keys;
  nft::SetElemsIterPtr it(nftnl_set_elems_iter_create(set.get()));
  for (nftnl_set_elem* e = nftnl_set_elems_iter_next(it.get()); e != nullptr; e = nftnl_set_elems_iter_next(it.get())) {
    uint32_t length = 0;
    const auto* key = static_cast<const char*>(nftnl_set_elem_get(e, NFTNL_SET_ELEM_KEY, &length));
    if (key != nullptr) keys.emplace_back(std::string(key, length), std::string());
  }
  std::sort(keys.begin(), keys.end());
  return keys;
}

absl::StatusOr<bool> NftRuleProgrammer::GuardedInKernel(const std::set<std::string>& guarded) {
  for (const FamilyLayout& l : GuardLayouts()) {
    absl::StatusOr<std::optional<std::vector<Element>>> have = GuardSetKeys(l, nft::kGuarded);
    if (!have.ok()) return have.status();
    if (!have->has_value() || **have != nft::AddressKeys(l, guarded)) return false;
    // Tables of the earlier layout (a timed element per address in `leased`, no `alive`) are built anew.
    absl::StatusOr<std::optional<std::vector<Element>>> alive = GuardSetKeys(l, nft::kAlive);
    if (!alive.ok()) return alive.status();
    if (!alive->has_value()) return false;
  }
  return true;
}

absl::Status NftRuleProgrammer::SendGuard(const std::set<std::string>* changed, std::chrono::milliseconds lease_left,
                                          bool rebuild) {
  // A renewal (`changed` null) does no work per address, neither here nor in the kernel.
  const std::set<std::string>& guarded = changed != nullptr ? *changed : *guarded_;
  absl::StatusOr<uint32_t> generation = Generation();
  if (!generation.ok()) return generation.status();
  rebuild = rebuild || !guarded_.has_value();
  const std::string table = GuardTable();
  const auto timeout = static_cast<uint64_t>(std::max<int64_t>(lease_left.count(), 0));
  NftBatch batch(next_seq_, *generation);
  for (const FamilyLayout& l : GuardLayouts()) {
    if (rebuild) {
      // Created first so that the delete finds it; then built anew, elements with it, in this one batch.
      nft::AddTableMessage(batch, l, table, NFT_MSG_NEWTABLE);
      nft::AddTableMessage(batch, l, table, NFT_MSG_DELTABLE);
      nft::AddTableMessage(batch, l, table, NFT_MSG_NEWTABLE);
      const std::vector<nft::ChainShape> chains = nft::GuardChains(l);
      for (const nft::ChainShape& chain : chains) nft::AddChainMessage(batch, l, table, chain);
      std::map<std::string, uint32_t> set_ids;
      for (const nft::SetShape& shape : nft::GuardSets(l)) {
        set_ids[shape.name] = batch.next_seq();  // unique within the batch
        nft::AddSetMessage(batch, l, table, shape, set_ids[shape.name]);
      }
      nft::ElementMessages(batch, l, table, nft::kGuarded, set_ids[nft::kGuarded], nft::AddressKeys(l, guarded),
                           /*add=*/true);
      if (timeout > 0) {
        nft::ElementMessages(batch, l, table, nft::kAlive, set_ids[nft::kAlive], {nft::AliveElement(l)},
                             /*add=*/true, timeout);
      }
      for (const nft::ChainShape& chain : chains) {
        for (nft::GuardRule kind : nft::GuardRulesOf(l, chain.name)) {
          nft::RulePtr rule = nft::BuildGuardRule(l, table, chain.name, kind, set_ids);
          nlmsghdr* m = batch.Start(NFT_MSG_NEWRULE, l.nfproto, NLM_F_CREATE | NLM_F_APPEND);
          nftnl_rule_nlmsg_build_payload(m, rule.get());
          batch.Commit(m, absl::StrCat("add rule to ", nft::TableName(l, table), " ", chain.name));
        }
      }
      continue;
    }
    if (changed != nullptr && *changed != *guarded_) {
      const std::vector<Element> before = nft::AddressKeys(l, *guarded_);
      const std::vector<Element> keys = nft::AddressKeys(l, guarded);
      std::vector<Element> removed;
      std::vector<Element> added;
      std::set_difference(before.begin(), before.end(), keys.begin(), keys.end(), std::back_inserter(removed));
      std::set_difference(keys.begin(), keys.end(), before.begin(), before.end(), std::back_inserter(added));
      nft::ElementMessages(batch, l, table, nft::kGuarded, 0, removed, /*add=*/false);
      nft::ElementMessages(batch, l, table, nft::kGuarded, 0, added, /*add=*/true);
    }
    // The lease, whatever the number of addresses: adding the element while it is there would keep its expiry,
    // so it is added to an emptied set (atomically: no packet sees `alive` empty in between).
    nft::FlushSetMessage(batch, l, table, nft::kAlive);
    if (timeout > 0) {
      nft::ElementMessages(batch, l, table, nft::kAlive, 0, {nft::AliveElement(l)}, /*add=*/true, timeout);
    }
  }
  last_guard_messages_ = batch.messages();
  const bool nat_known = committed_.has_value() && committed_->generation == *generation;
  if (absl::Status sent = Send(batch); !sent.ok()) return sent;
  if (changed != nullptr) guarded_ = *changed;
  // The NAT tables did not change: what this instance knows of them still holds after this batch.
  if (nat_known) Remember(*generation + 1, std::move(committed_->ruleset));
  return absl::OkStatus();
}

absl::StatusOr<bool> NftRuleProgrammer::Guard(const std::set<std::string>& guarded,
                                              std::chrono::milliseconds lease_left) {
  last_guard_messages_ = 0;
  if (!guarded_.has_value()) {
    absl::StatusOr<bool> in_kernel = GuardedInKernel(guarded);
    if (!in_kernel.ok()) return in_kernel.status();
    if (*in_kernel) {
      guarded_ = guarded;
      return false;
    }
  } else if (*guarded_ == guarded) {
    return false;
  }
  absl::Status status = SendGuard(&guarded, lease_left, /*rebuild=*/false);
  // A table or element someone else removed: built anew.
  if (absl::IsAborted(status)) status = SendGuard(&guarded, lease_left, /*rebuild=*/true);
  if (!status.ok()) {
    guarded_.reset();
    return status;
  }
  return true;
}

absl::Status NftRuleProgrammer::Renew(std::chrono::milliseconds lease_left) {
  last_guard_messages_ = 0;
  if (!guarded_.has_value()) return absl::FailedPreconditionError("the lease guard was never set up (Guard)");
  if (lease_left.count() <= 0) return absl::InvalidArgumentError("lease_left: a renewal needs a lease left");
  absl::Status status = SendGuard(nullptr, lease_left, /*rebuild=*/false);
  if (absl::IsAborted(status)) status = SendGuard(nullptr, lease_left, /*rebuild=*/true);
  if (!status.ok()) guarded_.reset();
  return status;
}

}  // namespace abode::node

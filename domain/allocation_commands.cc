#include "domain/allocation_commands.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/util/message_differencer.h"
#include "domain/allocation_policy.h"
#include "domain/validation.h"

namespace abode::domain {
namespace {

std::string Q(absl::string_view s) { return absl::StrCat("\"", s, "\""); }

}  // namespace

absl::Status CheckUpdateLabelsRequest(const v1::UpdateLabelsRequest& req) {
  if (absl::Status s = ValidateOwner(req.owner(), "owner"); !s.ok()) return s;
  if (absl::Status s = ValidateName(req.pool(), "pool", true); !s.ok()) return s;
  if (absl::Status s = ValidateLabels(req.labels(), "labels"); !s.ok()) return s;
  if (req.keep_keys_size() > static_cast<int>(kMaxLabels)) {
    return absl::InvalidArgumentError(
        absl::StrCat("keep_keys: ", req.keep_keys_size(), " keys, at most ", kMaxLabels));
  }
  for (int i = 0; i < req.keep_keys_size(); ++i) {
    google::protobuf::Map<std::string, std::string> key;
    key[req.keep_keys(i)] = "";
    if (absl::Status s = ValidateLabels(key, absl::StrCat("keep_keys[", i, "]")); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<Pool*> AllocationCommands::OptionalPool(const std::string& name) {
  if (name.empty()) return nullptr;
  return pools_.Named(name, "pool");
}

void AllocationCommands::RenewLease(int64_t row_id, int64_t ttl_seconds, int64_t time_ms, v1::Allocation& a,
                                    AllocationChangeSet& out) {
  const int64_t ttl = ttl_seconds > 0 ? ttl_seconds : a.ttl_seconds();
  if (ttl <= 0) return;
  const uint64_t rev = ++out.revision;
  a.set_ttl_seconds(ttl);
  a.set_expire_time_unix_ms(time_ms + ttl * 1000);
  a.set_revision(rev);
  out.renewals.push_back(AllocationChangeSet::LeaseRenewal{row_id, ttl, a.expire_time_unix_ms(), rev});
}

CommandOutcome AllocationCommands::CreatePool(const v1::CreatePoolRequest& req, const NodeModel& nodes,
                                              const Stamp& stamp, AllocationChangeSet& out) {
  out.Clear(stamp.revision);
  auto canonical = CanonicalizePool(req.pool());
  if (!canonical.ok()) return canonical.status();
  const v1::PoolSpec& spec = canonical->spec;
  if (const Pool* existing = pools_.Find(spec.name()); existing != nullptr) {
    // A retried create of the same pool succeeds; a different pool under the same name does not.
    if (google::protobuf::util::MessageDifferencer::Equals(existing->spec, spec)) {
      v1::CommandResult same;
      *same.mutable_pool() = existing->Message();
      return same;
    }
    return absl::AlreadyExistsError(absl::StrCat("pool.name: pool ", Q(spec.name()), " already exists"));
  }
  if (absl::Status s = pools_.CheckNoOverlap(*canonical); !s.ok()) return s;
  if (auto magic = nodes.MagicInside(canonical->layout.cidr())) {
    return absl::FailedPreconditionError(absl::StrCat("pool.cidr: ", spec.cidr(), " contains magic address ",
                                                      Q(magic->first), " (", magic->second,
                                                      "); delete it or use another range"));
  }
  Pool& p = out.new_pool;
  p = Pool{};
  p.id = pools_.next_id();
  p.spec = spec;
  p.layout = std::move(canonical->layout);
  p.free = p.layout.Assignable();
  p.create_revision = ++out.revision;
  p.create_time_ms = stamp.time_ms;
  out.has_new_pool = true;
  v1::CommandResult result;
  *result.mutable_pool() = p.Message();
  return result;
}

CommandOutcome AllocationCommands::Allocate(const v1::AllocateRequest& req, const Stamp& stamp,
                                            AllocationChangeSet& out) {
  out.Clear(stamp.revision);
  auto a = AllocateOne(req, stamp, -1, out);
  if (!a.ok()) return a.status();
  v1::CommandResult result;
  *result.mutable_allocation() = std::move(*a);
  return result;
}

CommandOutcome AllocationCommands::AllocateMany(const v1::AllocateManyRequest& req, const Stamp& stamp,
                                                AllocationChangeSet& out) {
  out.Clear(stamp.revision);
  if (req.items().empty()) return absl::InvalidArgumentError("items: at least one item is required");
  if (req.items_size() > kMaxAllocateItems) {
    return absl::InvalidArgumentError(
        absl::StrCat("items: ", req.items_size(), " items; at most ", kMaxAllocateItems, " are allowed"));
  }
  for (int i = 0; i < req.items_size(); ++i) {
    for (int j = 0; j < i; ++j) {
      if (req.items(j).pool() == req.items(i).pool()) {
        return absl::InvalidArgumentError(absl::StrCat("items[", i, "].pool: pool ", Q(req.items(i).pool()),
                                                       " is also items[", j, "]; one address per pool"));
      }
    }
  }
  out.item_requests.reserve(static_cast<size_t>(req.items_size()));
  v1::CommandResult result;
  for (int i = 0; i < req.items_size(); ++i) {
    const v1::AllocateItem& item = req.items(i);
    v1::AllocateRequest& one = out.item_requests.emplace_back();
    one.set_pool(item.pool());
    one.set_address(item.address());
    one.set_owner(req.owner());
    one.set_node(req.node());
    *one.mutable_labels() = req.labels();
    one.set_ttl_seconds(req.ttl_seconds());
    auto a = AllocateOne(one, stamp, i, out);
    if (!a.ok()) {
      out.Clear(stamp.revision);  // a refused command proposes no change, not even its earlier items'
      return absl::Status(a.status().code(),
                          absl::StrCat("items[", i, "] (pool ", Q(item.pool()), "): ", a.status().message()));
    }
    *result.mutable_allocate_many()->add_allocations() = std::move(*a);
  }
  return result;
}

absl::StatusOr<v1::Allocation> AllocationCommands::AllocateOne(const v1::AllocateRequest& req, const Stamp& stamp,
                                                               int result_index, AllocationChangeSet& out) {
  if (absl::Status s = CheckAllocateRequest(req, limits_.max_ttl_seconds); !s.ok()) return s;
  auto found = pools_.Named(req.pool(), "pool");
  if (!found.ok()) return found.status();
  Pool& pool = **found;
  auto wanted = RequestedAddress(pool, req.address());
  if (!wanted.ok()) return wanted.status();

  // Idempotency: the owner already holds an address in this pool. The reader answers a new owner (the
  // common case) from the engine's owner index, without touching the store.
  auto existing = reader_.OfOwner(req.owner(), pool.id);
  if (!existing.ok()) return existing.status();
  if (!existing->empty()) {
    StoredAllocation& held = existing->front();
    v1::Allocation& a = held.allocation;
    if (*wanted && (*wanted)->ToString() != a.address()) {
      return absl::FailedPreconditionError(
          absl::StrCat("address: owner ", Q(req.owner()), " already holds ", a.address(), " in pool ",
                       Q(pool.spec.name()), "; release it before asking for ", (*wanted)->ToString()));
    }
    // A retry is a sign of life: it renews the lease.
    RenewLease(held.row_id, req.ttl_seconds(), stamp.time_ms, a, out);
    return std::move(a);
  }

  u128 value = 0;
  if (*wanted) {
    const IpAddress& w = **wanted;
    if (!pool.free.Contains(w.value())) {
      auto holder = reader_.AtAddress(pool.spec.network(), w);
      if (!holder.ok()) return holder.status();
      if (holder->empty()) return absl::InternalError(absl::StrCat("address: index and store disagree on ", w.ToString()));
      const v1::Allocation& h = holder->front().allocation;
      return absl::AlreadyExistsError(absl::StrCat("address: ", w.ToString(), " is held by owner ", Q(h.owner()),
                                                   " in pool ", Q(h.pool())));
    }
    value = w.value();
  } else {
    std::optional<u128> proposed = ProposeAddress(pool);
    if (!proposed) {
      return absl::ResourceExhaustedError(absl::StrCat("pool ", Q(pool.spec.name()), " is full: all ",
                                                       U128ToString(pool.layout.size()), " addresses are allocated"));
    }
    value = *proposed;
  }

  const Stamp at{++out.revision, stamp.time_ms};
  v1::Allocation a = NewAllocation(pool, IpAddress(pool.layout.family(), value), req, at);
  out.inserts.push_back(
      AllocationChangeSet::Insert{&pool, value, &req, a.expire_time_unix_ms(), at.revision, result_index});
  return a;
}

absl::Status AllocationCommands::RemoveAll(StoredAllocations& held, absl::string_view reason,
                                           AllocationChangeSet& out) {
  out.removals.reserve(out.removals.size() + held.size());
  for (StoredAllocation& h : held) {
    Pool* pool = pools_.Find(h.allocation.pool());
    if (pool == nullptr) {
      return absl::InternalError(absl::StrCat("allocation of ", h.allocation.address(), " has no pool"));
    }
    auto addr = IpAddress::Parse(h.allocation.address(), "allocation.address");
    if (!addr.ok()) return absl::DataLossError(addr.status().message());
    out.removals.push_back(
        AllocationChangeSet::Removal{pool, addr->value(), h.row_id, h.allocation, ++out.revision, reason});
    h.allocation.set_revision(out.revision);
  }
  return absl::OkStatus();
}

absl::StatusOr<StoredAllocations> AllocationCommands::HoldersOf(const v1::ReleaseRequest& req,
                                                                const Pool* only_pool) {
  auto addr = IpAddress::Parse(req.address(), "address");
  if (!addr.ok()) return addr.status();
  if (absl::Status s = ValidateName(req.network(), "network", true); !s.ok()) return s;
  std::vector<std::string> networks;
  if (only_pool) {
    networks.push_back(only_pool->spec.network());
  } else if (!req.network().empty()) {
    networks.push_back(req.network());
  } else {
    networks = pools_.Networks();
  }
  StoredAllocations victims;
  for (const std::string& net : networks) {
    auto found = reader_.AtAddress(net, *addr);
    if (!found.ok()) return found.status();
    for (auto& v : *found) {
      if (only_pool == nullptr || v.allocation.pool() == only_pool->spec.name()) victims.push_back(std::move(v));
    }
  }
  if (victims.size() > 1) {
    std::vector<std::string> where;
    for (const auto& v : victims) {
      where.push_back(absl::StrCat(Q(v.allocation.network()), " (pool ", Q(v.allocation.pool()), ")"));
    }
    return absl::InvalidArgumentError(absl::StrCat("address: ", addr->ToString(), " is held in several networks: ",
                                                   absl::StrJoin(where, ", "), "; set network or pool"));
  }
  return victims;
}

CommandOutcome AllocationCommands::Release(const v1::ReleaseRequest& req, const Stamp& stamp,
                                           AllocationChangeSet& out) {
  out.Clear(stamp.revision);
  if (req.owner().empty() == req.address().empty()) {
    return absl::InvalidArgumentError("owner, address: set exactly one of owner or address");
  }
  auto only_pool = OptionalPool(req.pool());
  if (!only_pool.ok()) return only_pool.status();
  absl::StatusOr<StoredAllocations> victims;
  if (!req.owner().empty()) {
    if (absl::Status s = ValidateOwner(req.owner(), "owner"); !s.ok()) return s;
    victims = reader_.OfOwner(req.owner(), *only_pool ? (*only_pool)->id : 0);
  } else {
    victims = HoldersOf(req, *only_pool);
  }
  if (!victims.ok()) return victims.status();
  if (absl::Status s = RemoveAll(*victims, "released", out); !s.ok()) return s;
  v1::CommandResult result;
  for (auto& v : *victims) *result.mutable_release()->add_released() = std::move(v.allocation);
  result.mutable_release()->set_revision(out.revision);
  return result;
}

absl::StatusOr<StoredAllocations> AllocationCommands::HeldBy(const std::string& owner, const std::string& pool) {
  auto only_pool = OptionalPool(pool);
  if (!only_pool.ok()) return only_pool.status();
  auto found = reader_.OfOwner(owner, *only_pool ? (*only_pool)->id : 0);
  if (!found.ok()) return found.status();
  if (found->empty()) {
    return absl::NotFoundError(absl::StrCat("owner: ", Q(owner), " holds no allocation",
                                            *only_pool ? absl::StrCat(" in pool ", Q(pool)) : ""));
  }
  return found;
}

CommandOutcome AllocationCommands::Renew(const v1::RenewRequest& req, const Stamp& stamp, AllocationChangeSet& out) {
  out.Clear(stamp.revision);
  if (absl::Status s = ValidateOwner(req.owner(), "owner"); !s.ok()) return s;
  if (absl::Status s = CheckTtl(req.ttl_seconds(), limits_.max_ttl_seconds, "ttl_seconds"); !s.ok()) return s;
  auto found = HeldBy(req.owner(), req.pool());
  if (!found.ok()) return found.status();
  v1::CommandResult result;
  for (auto& held : *found) {
    RenewLease(held.row_id, req.ttl_seconds(), stamp.time_ms, held.allocation, out);
    *result.mutable_renew()->add_allocations() = std::move(held.allocation);
  }
  return result;
}

CommandOutcome AllocationCommands::UpdateLabels(const v1::UpdateLabelsRequest& req, const Stamp& stamp,
                                                AllocationChangeSet& out) {
  out.Clear(stamp.revision);
  if (absl::Status s = CheckUpdateLabelsRequest(req); !s.ok()) return s;
  auto found = HeldBy(req.owner(), req.pool());
  if (!found.ok()) return found.status();
  v1::CommandResult result;
  v1::UpdateLabelsResponse& answer = *result.mutable_update_labels();
  for (StoredAllocation& held : *found) {
    v1::Allocation& a = held.allocation;
    google::protobuf::Map<std::string, std::string> labels = req.labels();
    for (const std::string& key : req.keep_keys()) {
      auto kept = a.labels().find(key);
      if (kept != a.labels().end() && !labels.contains(key)) labels[key] = kept->second;
    }
    if (labels.size() > kMaxLabels) {
      return absl::InvalidArgumentError(absl::StrCat("labels: ", labels.size(), " labels with the kept ones, at most ",
                                                     kMaxLabels));
    }
    std::string encoded = EncodeLabels(labels);
    if (encoded != EncodeLabels(a.labels())) {
      const uint64_t rev = ++out.revision;
      *a.mutable_labels() = std::move(labels);
      a.set_revision(rev);
      out.relabels.push_back(
          AllocationChangeSet::Relabel{held.row_id, std::move(encoded), rev, answer.allocations_size()});
    }
    *answer.add_allocations() = std::move(a);
  }
  answer.set_revision(out.revision);
  return result;
}

CommandOutcome AllocationCommands::Expire(const Stamp& stamp, AllocationChangeSet& out) {
  out.Clear(stamp.revision);
  auto found = reader_.ExpiredAt(stamp.time_ms, limits_.max_expire_per_command);
  if (!found.ok()) return found.status();
  if (absl::Status s = RemoveAll(*found, "expired", out); !s.ok()) return s;
  v1::CommandResult result;
  result.set_changed(found->size());
  return result;
}

CommandOutcome AllocationCommands::DeletePool(const v1::DeletePoolRequest& req, const Stamp& stamp,
                                              AllocationChangeSet& out) {
  out.Clear(stamp.revision);
  auto pool = pools_.Named(req.name(), "name");
  if (!pool.ok()) return pool.status();
  Pool& p = **pool;
  if (p.used > 0 && !req.force()) {
    return absl::FailedPreconditionError(absl::StrCat("pool ", Q(p.spec.name()), " still has ", p.used,
                                                      " allocations; release them first or delete with force"));
  }
  auto held = reader_.InPool(p.id);
  if (!held.ok()) return held.status();
  if (absl::Status s = RemoveAll(*held, "pool-deleted", out); !s.ok()) return s;
  ++out.revision;
  out.deleted_pool = &p;
  v1::CommandResult result;
  result.mutable_delete_pool()->set_released(held->size());
  result.mutable_delete_pool()->set_revision(out.revision);
  return result;
}

void AllocationCommands::CommitToPools(AllocationChangeSet& changes) {
  if (changes.has_new_pool) {
    pools_.Add(std::move(changes.new_pool));
    changes.has_new_pool = false;
  }
  for (const AllocationChangeSet::Insert& in : changes.inserts) {
    Pool& pool = *in.pool;
    pool.free.Take(in.value);
    ++pool.used;
    pool.cursor = in.value;
    pool.dirty = true;
  }
  for (const AllocationChangeSet::Removal& r : changes.removals) {
    if (r.pool == changes.deleted_pool) continue;  // goes whole
    r.pool->free.Give(r.value);
    --r.pool->used;
    r.pool->dirty = true;
  }
  if (changes.deleted_pool != nullptr) pools_.Remove(changes.deleted_pool->spec.name());
}

absl::StatusOr<StoredAllocations> AllocationCommands::ReleaseOnNode(absl::string_view node, std::string reason,
                                                                    const Stamp& stamp, AllocationChangeSet& out) {
  out.Clear(stamp.revision);
  auto held = reader_.OnNode(node);
  if (!held.ok()) return held.status();
  out.reason_text = std::move(reason);
  if (absl::Status s = RemoveAll(*held, out.reason_text, out); !s.ok()) return s;
  return held;
}

}  // namespace abode::domain

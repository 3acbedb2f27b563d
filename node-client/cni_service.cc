#include "cni_service.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cni/cni_invocation.h"

namespace abode::node {
namespace {

using cni::CniError;
using cni::LocalRequest;
using cni::LocalResponse;

LocalResponse Failure(CniError error) {
  LocalResponse r;
  r.error = std::move(error);
  return r;
}

// Canonical text of an address, or the text itself when it is not one.
std::string CanonicalIp(const std::string& text) {
  if (text.empty()) return text;
  auto ip = cni::Ip::Parse(text);
  return ip ? ip->ToString() : text;
}

std::string CanonicalPrefix(const std::string& text) {
  auto p = cni::Prefix::Parse(text, true);
  return p ? cni::Prefix{p->Network(), p->length}.ToString() : text;
}

std::string Describe(const v1::PoolSpec& s) {
  std::string out = absl::StrCat("cidr ", s.cidr());
  if (!s.range_start().empty()) absl::StrAppend(&out, ", range_start ", s.range_start());
  if (!s.range_end().empty()) absl::StrAppend(&out, ", range_end ", s.range_end());
  if (s.exclude_size() > 0) absl::StrAppend(&out, ", exclude [", absl::StrJoin(s.exclude(), ","), "]");
  if (!s.gateway().empty()) absl::StrAppend(&out, ", gateway ", s.gateway());
  absl::StrAppend(&out, ", network \"", s.network(), "\"");
  return out;
}

}  // namespace

CniError ToCniError(const absl::Status& status, const std::string& doing) {
  const std::string msg = absl::StrCat(doing, ": ", status.message());
  switch (status.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
      return CniError{cni::kTryAgainLater, absl::StrCat(doing, ": the allocator is not reachable"),
                      std::string(status.message())};
    case absl::StatusCode::kResourceExhausted:
      return CniError{cni::kPoolExhausted, msg, ""};
    case absl::StatusCode::kAlreadyExists:
      return CniError{cni::kAddressTaken, msg, ""};
    case absl::StatusCode::kInvalidArgument:
      return CniError{cni::kInvalidConfig, msg, ""};
    default:
      return CniError{cni::kAllocatorRefused, msg, absl::StatusCodeToString(status.code())};
  }
}

v1::PoolSpec ToPoolSpec(const cni::PoolRequest& pool) {
  v1::PoolSpec spec;
  spec.set_name(pool.name);
  spec.set_cidr(pool.cidr.ToString());
  spec.set_range_start(pool.range_start);
  spec.set_range_end(pool.range_end);
  for (const std::string& e : pool.exclude) spec.add_exclude(e);
  spec.set_gateway(pool.gateway);
  spec.set_network(pool.network);
  spec.set_purpose(v1::POOL_PURPOSE_WORKLOAD);
  return spec;
}

std::string SpecDifference(const v1::PoolSpec& have, const cni::PoolRequest& want) {
  std::set<std::string> have_exclude, want_exclude;
  for (const std::string& e : have.exclude()) have_exclude.insert(CanonicalPrefix(e));
  for (const std::string& e : want.exclude) want_exclude.insert(CanonicalPrefix(e));
  const bool same = CanonicalPrefix(have.cidr()) == want.cidr.ToString() &&
                    CanonicalIp(have.range_start()) == want.range_start &&
                    CanonicalIp(have.range_end()) == want.range_end && have_exclude == want_exclude &&
                    CanonicalIp(have.gateway()) == want.gateway && have.network() == want.network;
  if (same) return "";
  return absl::StrCat("pool \"", have.name(), "\" exists as {", Describe(have), "}; this configuration asks for {",
                      Describe(ToPoolSpec(want)), "}");
}

cni::Outcome CniService::EnsurePool(const cni::PoolRequest& pool, const CallContext& ctx) {
  {
    std::lock_guard lock(mu_);
    auto it = verified_.find(pool.name);
    if (it != verified_.end() && it->second == pool) return std::nullopt;
  }
  absl::StatusOr<v1::Pool> existing = allocator_->GetPool(pool.name, ctx);
  if (!existing.ok() && existing.status().code() == absl::StatusCode::kNotFound) {
    if (!pool.has_spec) {
      return CniError{cni::kInvalidConfig, absl::StrCat("ipam.pool: abode pool \"", pool.name, "\" does not exist"),
                      ""};
    }
    existing = allocator_->CreatePool(ToPoolSpec(pool), ctx);
    // Another node created it first: compare with what it made.
    if (!existing.ok() && existing.status().code() == absl::StatusCode::kAlreadyExists) {
      existing = allocator_->GetPool(pool.name, ctx);
    }
    if (!existing.ok() && existing.status().code() == absl::StatusCode::kFailedPrecondition) {
      return CniError{cni::kInvalidConfig, absl::StrCat("creating pool \"", pool.name, "\" for range ",
                                                        pool.cidr.ToString(), ": ", existing.status().message()),
                      "ranges of one network must not overlap; see enable_overlapping_ranges"};
    }
  }
  if (!existing.ok()) return ToCniError(existing.status(), absl::StrCat("pool \"", pool.name, "\""));
  if (pool.has_spec) {
    if (std::string diff = SpecDifference(existing->spec(), pool); !diff.empty()) {
      return CniError{cni::kInvalidConfig, diff, "give the range its own network_name, or align the configurations"};
    }
  }
  std::lock_guard lock(mu_);
  verified_[pool.name] = pool;
  return std::nullopt;
}

void CniService::Forget(const std::string& pool) {
  std::lock_guard lock(mu_);
  verified_.erase(pool);
}

LocalResponse CniService::Handle(const LocalRequest& request) {
  // Leave the plugin time to hear the answer before its own deadline.
  const auto budget = std::chrono::milliseconds(request.timeout_ms);
  const auto margin = std::min<std::chrono::milliseconds>(budget / 10, std::chrono::milliseconds(250));
  CallContext ctx{std::chrono::system_clock::now() + budget - margin, request.traceparent};
  if (request.verb == "ADD") return Add(request, ctx);
  if (request.verb == "DEL") return Del(request, ctx);
  if (request.verb == "CHECK") return Check(request, ctx);
  if (request.verb == "GC") return Gc(request, ctx);
  return Status(request, ctx);
}

namespace {

// The address `request` asks for statically inside `pool`, or "" for any free one.
std::string StaticAddressIn(const cni::PoolRequest& pool, const LocalRequest& request) {
  std::string wanted;
  for (const std::string& address : request.static_addresses) {
    auto ip = cni::Ip::Parse(address);
    if (ip && pool.has_spec && pool.cidr.Contains(*ip)) wanted = ip->ToString();
  }
  return wanted;
}

}  // namespace

absl::StatusOr<std::vector<v1::Allocation>> CniService::AllocateAll(const LocalRequest& request,
                                                                   const std::string& owner, const CallContext& ctx) {
  std::vector<v1::Allocation> out;
  if (request.pools.empty()) return out;
  if (request.pools.size() == 1) {
    v1::AllocateRequest req;
    req.set_pool(request.pools[0].name);
    req.set_owner(owner);
    req.set_node(node_);
    req.set_traceparent(ctx.traceparent);
    req.set_address(StaticAddressIn(request.pools[0], request));
    for (const auto& [k, v] : request.labels) (*req.mutable_labels())[k] = v;
    absl::StatusOr<v1::Allocation> a = allocator_->Allocate(req, ctx);
    if (!a.ok()) return a.status();
    out.push_back(std::move(*a));
    return out;
  }
  // Several ranges: one request, applied by the allocator as one command, so that an ADD holds all its
  // addresses or none of them.
  v1::AllocateManyRequest req;
  req.set_owner(owner);
  req.set_node(node_);
  req.set_traceparent(ctx.traceparent);
  for (const auto& [k, v] : request.labels) (*req.mutable_labels())[k] = v;
  for (const cni::PoolRequest& pool : request.pools) {
    v1::AllocateItem* item = req.add_items();
    item->set_pool(pool.name);
    item->set_address(StaticAddressIn(pool, request));
  }
  absl::StatusOr<v1::AllocateManyResponse> many = allocator_->AllocateMany(req, ctx);
  if (!many.ok()) return many.status();
  for (v1::Allocation& a : *many->mutable_allocations()) out.push_back(std::move(a));
  return out;
}

LocalResponse CniService::Add(const LocalRequest& request, const CallContext& ctx) {
  const std::string owner = cni::OwnerKey(request.container_id, request.ifname);
  for (const cni::PoolRequest& pool : request.pools) {
    if (auto e = EnsurePool(pool, ctx)) return Failure(*e);
  }
  absl::StatusOr<std::vector<v1::Allocation>> allocated = AllocateAll(request, owner, ctx);
  if (!allocated.ok() && allocated.status().code() == absl::StatusCode::kNotFound) {
    // A pool went away since it was checked (deleted by an operator): create it again, once.
    for (const cni::PoolRequest& pool : request.pools) {
      Forget(pool.name);
      if (auto e = EnsurePool(pool, ctx)) return Failure(*e);
    }
    allocated = AllocateAll(request, owner, ctx);
  }
  if (!allocated.ok()) {
    const std::string doing = request.pools.size() == 1
                                  ? absl::StrCat("allocating in pool \"", request.pools[0].name, "\"")
                                  : "allocating";
    return Failure(ToCniError(allocated.status(), doing));
  }
  LocalResponse response;
  for (const v1::Allocation& a : *allocated) {
    response.ips.push_back(cni::AllocatedIp{a.address(), a.prefix_length(), a.gateway(), a.pool()});
  }
  return response;
}

LocalResponse CniService::Del(const LocalRequest& request, const CallContext& ctx) {
  // One release of the owner in every pool: also what an earlier configuration of this attachment took.
  v1::ReleaseRequest release;
  release.set_owner(cni::OwnerKey(request.container_id, request.ifname));
  absl::StatusOr<v1::ReleaseResponse> released = allocator_->Release(release, ctx);
  if (!released.ok() && released.status().code() != absl::StatusCode::kNotFound) {
    return Failure(ToCniError(released.status(), "releasing"));
  }
  LocalResponse response;
  response.released = released.ok() ? released->released_size() : 0;
  return response;
}

LocalResponse CniService::Check(const LocalRequest& request, const CallContext& ctx) {
  v1::GetAllocationRequest get;
  get.set_owner(cni::OwnerKey(request.container_id, request.ifname));
  absl::StatusOr<v1::GetAllocationResponse> held = allocator_->GetAllocation(get, ctx);
  if (!held.ok() && held.status().code() != absl::StatusCode::kNotFound) {
    return Failure(ToCniError(held.status(), "reading the allocations"));
  }
  std::map<std::string, std::string> by_pool;  // pool -> address/prefix
  if (held.ok()) {
    for (const v1::Allocation& a : held->allocations()) {
      by_pool[a.pool()] = absl::StrCat(a.address(), "/", a.prefix_length());
    }
  }
  const std::set<std::string> prev(request.prev_ips.begin(), request.prev_ips.end());
  for (const cni::PoolRequest& pool : request.pools) {
    auto it = by_pool.find(pool.name);
    if (it == by_pool.end()) {
      return Failure(CniError{cni::kCheckFailed,
                              absl::StrCat("no address of pool \"", pool.name, "\" is held by ", get.owner()), ""});
    }
    if (prev.count(it->second) == 0) {
      return Failure(CniError{cni::kCheckFailed,
                              absl::StrCat("pool \"", pool.name, "\" holds ", it->second, " for ", get.owner(),
                                           ", which prevResult does not list"),
                              absl::StrCat("prevResult lists ", absl::StrJoin(request.prev_ips, ", "))});
    }
  }
  for (const std::string& ip : request.prev_ips) {
    auto parsed = cni::Prefix::Parse(ip);
    bool held_here = false;
    bool in_range = false;
    for (const cni::PoolRequest& pool : request.pools) {
      if (pool.has_spec && parsed && pool.cidr.Contains(parsed->ip)) in_range = true;
      auto it = by_pool.find(pool.name);
      held_here = held_here || (it != by_pool.end() && it->second == ip);
    }
    if (in_range && !held_here) {
      return Failure(CniError{cni::kCheckFailed, absl::StrCat("prevResult lists ", ip, ", which ", get.owner(),
                                                             " does not hold"),
                              ""});
    }
  }
  return LocalResponse{};
}

LocalResponse CniService::Gc(const LocalRequest& request, const CallContext& ctx) {
  LocalResponse response;
  // No list: the runtime did not say what is in use, so nothing can be known to be garbage.
  if (!request.valid_attachments) return response;
  std::set<std::pair<std::string, std::string>> keep(request.valid_attachments->begin(),
                                                      request.valid_attachments->end());
  // Only this network's attachments: configurations of other names may share a pool (same range, no
  // network_name), and their attachments are not in this list.
  const std::string network = cni::LabelValue(request.network);
  for (const cni::PoolRequest& pool : request.pools) {
    std::vector<v1::Allocation> stale;
    v1::ListAllocationsRequest list;
    list.set_pool(pool.name);
    list.set_node(node_);
    if (!network.empty()) list.set_label_selector(absl::StrCat(cni::kLabelNetwork, "=", network));
    list.set_page_size(5000);
    do {
      absl::StatusOr<v1::ListAllocationsResponse> page = allocator_->ListAllocations(list, ctx);
      if (!page.ok() && page.status().code() == absl::StatusCode::kNotFound) break;
      if (!page.ok()) return Failure(ToCniError(page.status(), absl::StrCat("listing pool \"", pool.name, "\"")));
      for (const v1::Allocation& a : page->allocations()) {
        std::string id, ifname;
        auto label = a.labels().find(cni::kLabelNetwork);
        if ((label == a.labels().end() ? std::string() : label->second) != network) continue;
        if (cni::ParseOwnerKey(a.owner(), &id, &ifname) && keep.count({id, ifname}) == 0) stale.push_back(a);
      }
      list.set_page_token(page->next_page_token());
    } while (!list.page_token().empty());
    for (const v1::Allocation& a : stale) {
      v1::ReleaseRequest release;
      release.set_owner(a.owner());
      release.set_pool(a.pool());
      absl::StatusOr<v1::ReleaseResponse> r = allocator_->Release(release, ctx);
      if (!r.ok() && r.status().code() != absl::StatusCode::kNotFound) {
        return Failure(ToCniError(r.status(), absl::StrCat("releasing ", a.address())));
      }
      if (r.ok()) response.released += r->released_size();
    }
  }
  return response;
}

LocalResponse CniService::Status(const LocalRequest& request, const CallContext& ctx) {
  // Reachable, and every pool this configuration draws from can hand out an address.
  for (const cni::PoolRequest& pool : request.pools) {
    absl::StatusOr<v1::Pool> p = allocator_->GetPool(pool.name, ctx);
    if (!p.ok() && p.status().code() == absl::StatusCode::kNotFound && pool.has_spec) continue;  // made on ADD
    if (!p.ok()) {
      CniError e = ToCniError(p.status(), absl::StrCat("pool \"", pool.name, "\""));
      e.code = cni::kNotAvailable;
      return Failure(e);
    }
    if (p->free() == "0") {
      return Failure(CniError{cni::kNotAvailable, absl::StrCat("pool \"", pool.name, "\" has no free address"), ""});
    }
  }
  if (request.pools.empty()) {
    absl::StatusOr<v1::Pool> p = allocator_->GetPool("status", ctx);
    if (!p.ok() && p.status().code() != absl::StatusCode::kNotFound) {
      CniError e = ToCniError(p.status(), "allocator");
      e.code = cni::kNotAvailable;
      return Failure(e);
    }
  }
  return LocalResponse{};
}

}  // namespace abode::node

#include "reconciler.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <set>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "tracing/current_span.h"

namespace abode::node {

// What one assignment asks of the kernel.
struct AssignmentPlan {
  std::optional<OwnedAddress> address;
  std::vector<MagicDnat> magic;
  std::vector<MagicDrop> drops;  // a magic address without target
  std::optional<ElasticNat> elastic;
  bool leased = false;  // external or elastic: may be moved by the allocator while it cannot hear the node
  std::string error;  // non-empty: the assignment cannot be made real
  std::string host_error;  // non-empty: made real, but the host lacks a setting it needs
};

namespace {

using Plan = AssignmentPlan;

int FullPrefix(const std::string& canonical) { return canonical.find(':') == std::string::npos ? 32 : 128; }

Plan PlanAddress(const std::string& interface, const char* flag, const std::string& address, int prefix_length,
                 Plan plan) {
  if (interface.empty()) {
    plan.error = absl::StrCat("no ", flag, " configured on this node");
    return plan;
  }
  absl::StatusOr<std::string> canonical = CanonicalAddress(address);
  if (!canonical.ok()) {
    plan.error = std::string(canonical.status().message());
    return plan;
  }
  OwnedAddress owned{interface, *canonical, prefix_length > 0 ? prefix_length : FullPrefix(*canonical)};
  if (absl::Status valid = ValidateOwnedAddress(owned); !valid.ok()) {
    plan.error = std::string(valid.message());
    return plan;
  }
  plan.address = std::move(owned);
  return plan;
}

Plan PlanFor(const v1::Assignment& assignment, const ReconcilerOptions& options) {
  Plan plan;
  plan.leased = assignment.has_external() || assignment.has_elastic();
  switch (assignment.kind_case()) {
    case v1::Assignment::kExternal: {
      const auto& external = assignment.external();
      return PlanAddress(options.uplink_interface, "--uplink-interface", external.address(),
                         external.prefix_length(), std::move(plan));
    }
    case v1::Assignment::kElastic: {
      const auto& elastic = assignment.elastic();
      plan = PlanAddress(options.uplink_interface, "--uplink-interface", elastic.address(), elastic.prefix_length(),
                         std::move(plan));
      if (!plan.error.empty() || elastic.workload_address().empty()) return plan;
      absl::StatusOr<std::string> workload = CanonicalAddress(elastic.workload_address());
      if (!workload.ok()) {
        plan.error = std::string(workload.status().message());
        return plan;
      }
      ElasticNat nat{plan.address->address, *workload};
      if (absl::Status valid = ValidateMapping(nat); !valid.ok()) {
        plan.error = std::string(valid.message());
        return plan;
      }
      plan.elastic = std::move(nat);
      return plan;
    }
    case v1::Assignment::kMagic: {
      const auto& magic = assignment.magic();
      // A magic address is one host address on the local interface, whatever its range.
      plan = PlanAddress(options.magic_interface, "--magic-interface", magic.address(), 0, std::move(plan));
      // No target (policy drop): the address is carried and its traffic dropped in the kernel, before anything on
      // the node (a host process listening on the port) could receive it.
      if (!plan.error.empty()) return plan;
      std::optional<std::string> target;
      if (!magic.target_address().empty()) {
        absl::StatusOr<std::string> canonical = CanonicalAddress(magic.target_address());
        if (!canonical.ok()) {
          plan.error = std::string(canonical.status().message());
          return plan;
        }
        target = *canonical;
      }
      const IpFamily family = FullPrefix(plan.address->address) == 32 ? IpFamily::kIpv4 : IpFamily::kIpv6;
      for (const v1::PortMapping& port : magic.ports()) {
        L4Protocol protocol = L4Protocol::kTcp;
        if (port.protocol() == v1::PROTOCOL_UDP) {
          protocol = L4Protocol::kUdp;
        } else if (port.protocol() != v1::PROTOCOL_TCP) {
          plan.error = absl::StrCat("port ", port.port(), ": protocol ", v1::Protocol_Name(port.protocol()),
                                    " is not supported by abode-node");
          return plan;
        }
        if (port.port() > 65535 || port.target_port() > 65535) {
          plan.error = absl::StrCat("port ", port.port(), ": out of range");
          return plan;
        }
        const auto number = static_cast<uint16_t>(port.port());
        absl::Status valid;
        if (target) {
          MagicDnat dnat{family, plan.address->address, protocol, number, *target,
                         static_cast<uint16_t>(port.target_port() != 0 ? port.target_port() : port.port())};
          valid = ValidateMapping(dnat);
          plan.magic.push_back(std::move(dnat));
        } else {
          MagicDrop drop{family, plan.address->address, protocol, number};
          valid = ValidateMapping(drop);
          plan.drops.push_back(std::move(drop));
        }
        if (!valid.ok()) {
          plan.error = std::string(valid.message());
          return plan;
        }
      }
      return plan;
    }
    case v1::Assignment::KIND_NOT_SET:
      break;
  }
  plan.error = "assignment of an unknown kind (newer allocator?)";
  return plan;
}

// The host settings a plan being served needs.
std::vector<HostRequirement> RequirementsOf(const Plan& plan, bool magic_on_bridge) {
  if (!plan.error.empty() || !plan.address) return {};
  const IpFamily family = plan.address->address.find(':') == std::string::npos ? IpFamily::kIpv4 : IpFamily::kIpv6;
  const bool magic = !plan.magic.empty();
  return abode::node::RequirementsOf(family, magic || plan.elastic.has_value(), magic && magic_on_bridge);
}

bool SameStatus(const v1::AssignmentStatus& a, const v1::AssignmentStatus& b) {
  return a.revision() == b.revision() && a.state() == b.state() && a.message() == b.message();
}

}  // namespace

Reconciler::Reconciler(ReconcilerOptions options, AddressProgrammer* addresses, RuleProgrammer* rules,
                       Announcer* announcer, ConntrackFlusher* conntrack)
    : options_(std::move(options)),
      addresses_(addresses),
      rules_(rules),
      announcer_(announcer),
      conntrack_(conntrack) {}

tracing::Span Reconciler::StartReconcileSpan(const v1::WatchAssignmentsResponse& update) {
  if (options_.tracer == nullptr || !options_.tracer->enabled()) return {};
  std::set<std::string> parents;
  for (const v1::Assignment& a : update.assignments()) {
    if (tracing::ParseTraceparent(a.traceparent())) parents.insert(a.traceparent());
  }
  if (parents.empty()) return {};
  tracing::Span span;
  if (parents.size() == 1) {
    span = options_.tracer->StartSpan("node.reconcile", tracing::SpanKind::kConsumer, *parents.begin());
  } else {
    std::vector<tracing::SpanContext> links;
    for (const std::string& p : parents) links.push_back(*tracing::ParseTraceparent(p));
    span = options_.tracer->StartLinkedSpan("node.reconcile", tracing::SpanKind::kConsumer, links);
  }
  span.SetAttribute("abode.revision", update.revision())
      .SetAttribute("abode.assignments_changed", update.assignments_size())
      .SetAttribute("abode.assignments_removed", update.removed_size());
  for (const v1::Assignment& a : update.assignments()) span.SetAttribute("abode.assignment", a.id());
  return span;
}

tracing::Span Reconciler::StartStep(const char* name) {
  if (!reconcile_span_.valid() || !reconcile_span_.sampled) return {};
  return options_.tracer->StartSpan(name, tracing::SpanKind::kInternal, reconcile_span_);
}

std::vector<v1::AssignmentStatus> Reconciler::OnUpdate(const v1::WatchAssignmentsResponse& update) {
  tracing::Span span = StartReconcileSpan(update);
  tracing::ScopedSpanContext scope(span.context());  // log lines of this reconcile name it
  std::lock_guard<std::mutex> lock(mu_);
  reconcile_span_ = span.context();
  struct Untrace {
    tracing::SpanContext& context;
    ~Untrace() { context = {}; }
  } untrace{reconcile_span_};
  if (update.snapshot()) {
    desired_.clear();
    have_snapshot_ = true;
  }
  for (const std::string& id : update.removed()) desired_.erase(id);
  for (const v1::Assignment& assignment : update.assignments()) desired_[assignment.id()] = assignment;
  revision_ = std::max(revision_, update.revision());
  if (!have_snapshot_) {
    // A resumed stream after a restart of this process cannot happen (the revision starts at 0), so a delta
    // before any snapshot means the allocator answered a resume: the desired state is still unknown.
    return {};
  }
  std::vector<v1::AssignmentStatus> changed = ReconcileLocked();
  for (const v1::AssignmentStatus& s : changed) {
    if (s.state() == v1::ASSIGNMENT_STATE_ERROR) span.SetError(absl::StrCat(s.id(), ": ", s.message()));
  }
  span.SetOk();
  return changed;
}

std::vector<v1::AssignmentStatus> Reconciler::Resync() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!have_snapshot_) return {};
  return ReconcileLocked();
}

std::vector<v1::AssignmentStatus> Reconciler::AllStatuses() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<v1::AssignmentStatus> all;
  for (const auto& [id, status] : statuses_) all.push_back(status);
  return all;
}

uint64_t Reconciler::AppliedRevision() {
  std::lock_guard<std::mutex> lock(mu_);
  return have_snapshot_ ? revision_ : 0;
}

Reconciler::Counters Reconciler::counters() const {
  std::lock_guard<std::mutex> lock(mu_);
  return counters_;
}

std::vector<v1::AssignmentStatus> Reconciler::OnLeaseRenewed() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!have_snapshot_) return {};  // nothing is asserted before the allocator's snapshot confirms it
  if (withdrawn_) return ReconcileLocked();
  RenewLocked();
  return {};
}

std::optional<NodeLease::Clock::time_point> Reconciler::LeaseDeadline() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (options_.lease == nullptr || (leased_.empty() && (!applied_ || applied_->elastic_nat.empty()))) {
    return std::nullopt;
  }
  return options_.lease->Until();
}

std::chrono::milliseconds Reconciler::LeaseLeftLocked() const {
  const std::optional<NodeLease::Clock::time_point> until = options_.lease->Until();
  if (!until) return std::chrono::milliseconds(0);
  const auto left = std::chrono::floor<std::chrono::milliseconds>(*until - options_.lease->Now());
  return std::max(left, std::chrono::milliseconds(0));
}

std::chrono::seconds Reconciler::BackstopLocked() const {
  const auto backstop = std::chrono::ceil<std::chrono::seconds>(options_.lease->length() * options_.backstop_leases);
  return std::max({backstop, options_.backstop_minimum, std::chrono::seconds(1)});
}

void Reconciler::GuardLocked() {
  if (options_.guard == nullptr || options_.lease == nullptr) return;
  std::set<std::string> guarded;
  for (const OwnedAddress& address : leased_) guarded.insert(address.address);
  if (guarded_ == guarded) return;
  const std::chrono::milliseconds left = options_.lease->Valid() ? LeaseLeftLocked() : std::chrono::milliseconds(0);
  absl::StatusOr<bool> leased = options_.guard->Guard(guarded, left);
  if (!leased.ok()) {
    // Retried at the next reconcile; what the kernel guarded before stays guarded.
    spdlog::error("guarding {} external and elastic addresses: {}", guarded.size(), leased.status().ToString());
    guarded_.reset();
    return;
  }
  guarded_ = std::move(guarded);
  if (*leased && left.count() > 0) {
    ++counters_.lease_renewals;
    renewed_until_ = options_.lease->Now() + left;
  }
}

void Reconciler::RenewLocked() {
  if (options_.lease == nullptr || leased_.empty() || !options_.lease->Valid()) return;
  const NodeLease::Clock::time_point now = options_.lease->Now();
  if (options_.guard != nullptr && !guarded_) GuardLocked();  // after a failure: set up again first
  if (options_.guard != nullptr && guarded_ && !guarded_->empty() &&
      (!renewed_until_ || *renewed_until_ - now <= options_.lease->length() / 2)) {
    const std::chrono::milliseconds left = LeaseLeftLocked();
    // Retried at the next acknowledgement; the kernel silences the addresses if none succeeds within the lease.
    if (absl::Status renewed = options_.guard->Renew(left); !renewed.ok()) {
      spdlog::error("renewing the lease of {} external and elastic addresses: {}", guarded_->size(),
                    renewed.ToString());
      guarded_.reset();  // set up again at the next renewal
    } else {
      ++counters_.lease_renewals;
      renewed_until_ = now + left;
      spdlog::debug("renewed the lease of {} addresses for {} ms", guarded_->size(), left.count());
    }
  }
  const std::chrono::seconds backstop = BackstopLocked();
  if (backstop_until_ && *backstop_until_ - now > backstop / 2) return;
  const std::vector<OwnedAddress> addresses(leased_.begin(), leased_.end());
  if (absl::Status renewed = addresses_->Renew(addresses, backstop); !renewed.ok()) {
    spdlog::error("renewing the lifetime of {} external and elastic addresses: {}", addresses.size(),
                  renewed.ToString());
    return;
  }
  ++counters_.address_lifetime_renewals;
  backstop_until_ = now + backstop;
  spdlog::debug("renewed the lifetime of {} addresses: {} s", addresses.size(), backstop.count());
}

std::vector<v1::AssignmentStatus> Reconciler::ReconcileLocked() {
  ++counters_.reconciles;
  std::map<std::string, Plan> plans;
  for (const auto& [id, assignment] : desired_) plans.emplace(id, PlanFor(assignment, options_));
  // The one exception to keeping the last desired state while the allocator is away: when the lease has run
  // out, the allocator may have given external and elastic addresses to another node, so they leave this one.
  const bool lease_valid = options_.lease == nullptr || options_.lease->Valid();
  bool withdrawing = false;
  for (auto& [id, plan] : plans) {
    if (!plan.leased || lease_valid || !plan.error.empty()) continue;
    plan.error = "withdrawn: the node's lease ran out (no heartbeat acknowledged by the allocator within it)";
    plan.address.reset();
    plan.elastic.reset();
    withdrawing = true;
  }
  if (withdrawing && !withdrawn_) {
    ++counters_.withdrawals;
    spdlog::warn("the node's lease ran out: withdrawing external and elastic addresses until the allocator "
                 "acknowledges a heartbeat again");
  }
  withdrawn_ = withdrawing;
  auto fail = [&](const std::string& id, const std::string& message) {
    Plan& plan = plans[id];
    if (plan.error.empty()) plan.error = message;
  };

  // Addresses: remove what abode owns and nobody wants any more, then place what is missing.
  std::map<OwnedAddress, std::string> wanted;  // address -> assignment id
  std::set<OwnedAddress> leased;
  std::vector<std::pair<std::string, std::string>> duplicates;
  for (const auto& [id, plan] : plans) {
    if (!plan.error.empty() || !plan.address) continue;
    if (plan.leased && options_.lease != nullptr) leased.insert(*plan.address);
    auto [it, inserted] = wanted.emplace(*plan.address, id);
    if (!inserted) duplicates.emplace_back(id, absl::StrCat(plan.address->ToString(), " is also assigned by ", it->second));
  }
  for (const auto& [id, message] : duplicates) fail(id, message);
  tracing::Span netlink = StartStep("netlink");
  const int64_t added_before = counters_.addresses_added, removed_before = counters_.addresses_removed;
  absl::StatusOr<std::vector<OwnedAddress>> owned = addresses_->ListOwned();
  if (!owned.ok()) {
    // The kernel's view is unknown: change nothing this round.
    spdlog::error("listing abode's addresses: {}", owned.status().ToString());
    for (const auto& [id, plan] : plans) fail(id, absl::StrCat("listing addresses: ", owned.status().message()));
  } else {
    std::set<OwnedAddress> present(owned->begin(), owned->end());
    for (const OwnedAddress& address : present) {
      if (wanted.count(address) > 0) continue;
      if (absl::Status removed = addresses_->Remove(address); !removed.ok()) {
        spdlog::error("removing {}: {}", address.ToString(), removed.ToString());
      } else {
        ++counters_.addresses_removed;
        spdlog::info("removed {}", address.ToString());
      }
    }
    const std::set<OwnedAddress> known = std::exchange(leased_, {});
    bool adopted = false;  // found in place from an earlier process: its lifetime left is unknown
    for (const auto& [address, id] : wanted) {
      const bool bound = leased.count(address) > 0;
      if (present.count(address) > 0) {
        if (bound) leased_.insert(address);
        adopted = adopted || (bound && known.count(address) == 0);
        continue;
      }
      const std::chrono::seconds lifetime = bound ? BackstopLocked() : std::chrono::seconds(0);
      absl::Status added = bound ? addresses_->Add(address, lifetime) : addresses_->Add(address);
      if (!added.ok()) {
        spdlog::error("{}: placing {}: {}", id, address.ToString(), added.ToString());
        fail(id, absl::StrCat("placing ", address.ToString(), ": ", added.message()));
        continue;
      }
      ++counters_.addresses_added;
      if (bound) {
        leased_.insert(address);
        const auto until = options_.lease->Now() + lifetime;
        // Renewed with the others once the earliest of them is due.
        if (!backstop_until_ || until < *backstop_until_) backstop_until_ = until;
        spdlog::info("{}: placed {} (guarded by the lease; lifetime {} s)", id, address.ToString(),
                     lifetime.count());
      } else {
        spdlog::info("{}: placed {}", id, address.ToString());
      }
      // Every placed address is announced on its own link (the magic interface stays local to the node's
      // workloads): neighbours holding a stale or failed entry for it, such as a workload that looked a magic
      // address up before it was placed, learn the new holder without waiting for their next resolution. The
      // address is carried either way; a lost announcement only delays what the neighbours learn.
      if (absl::Status announced = announcer_->Announce(address); !announced.ok()) {
        spdlog::warn("{}: announcing {}: {}", id, address.ToString(), announced.ToString());
      } else {
        ++counters_.announcements;
      }
    }
    if (adopted) backstop_until_.reset();
    // Guarded before the NAT mappings that translate to them are applied.
    GuardLocked();
  }

  netlink.SetAttribute("abode.addresses_added", counters_.addresses_added - added_before)
      .SetAttribute("abode.addresses_removed", counters_.addresses_removed - removed_before);
  if (!owned.ok()) netlink.SetError(std::string(owned.status().message()));
  netlink.End();

  // NAT: the mappings of every assignment whose address is in place, in one atomic apply.
  NatRuleset ruleset;
  std::set<std::tuple<IpFamily, std::string, L4Protocol, uint16_t>> magic_keys;
  std::set<std::string> elastic_keys;  // elastic and workload addresses
  std::vector<std::string> with_nat;
  for (auto& [id, plan] : plans) {
    if (!plan.error.empty() || (plan.magic.empty() && plan.drops.empty() && !plan.elastic)) continue;
    std::string conflict;
    for (const MagicDnat& dnat : plan.magic) {
      if (magic_keys.count({dnat.family, dnat.magic_address, dnat.protocol, dnat.port}) > 0) {
        conflict = absl::StrCat(dnat.ToString(), " conflicts with another assignment");
      }
    }
    for (const MagicDrop& drop : plan.drops) {
      if (magic_keys.count({drop.family, drop.magic_address, drop.protocol, drop.port}) > 0) {
        conflict = absl::StrCat(drop.ToString(), " conflicts with another assignment");
      }
    }
    if (plan.elastic && (elastic_keys.count(plan.elastic->elastic_address) > 0 ||
                         elastic_keys.count(plan.elastic->workload_address) > 0)) {
      conflict = absl::StrCat(plan.elastic->ToString(), " conflicts with another assignment");
    }
    if (!conflict.empty()) {
      spdlog::error("{}: {}", id, conflict);
      plan.error = conflict;
      continue;
    }
    for (const MagicDnat& dnat : plan.magic) {
      magic_keys.insert({dnat.family, dnat.magic_address, dnat.protocol, dnat.port});
      ruleset.magic_dnat.insert(dnat);
    }
    for (const MagicDrop& drop : plan.drops) {
      magic_keys.insert({drop.family, drop.magic_address, drop.protocol, drop.port});
      ruleset.magic_drop.insert(drop);
    }
    if (plan.elastic) {
      elastic_keys.insert(plan.elastic->elastic_address);
      elastic_keys.insert(plan.elastic->workload_address);
      ruleset.elastic_nat.insert(*plan.elastic);
    }
    with_nat.push_back(id);
  }
  if (!applied_) {
    // The first apply of this process replaces what the kernel holds, whoever put it there.
    absl::StatusOr<NatRuleset> current = rules_->Read();
    for (int attempt = 1; absl::IsAborted(current.status()) && attempt < 3; ++attempt) current = rules_->Read();
    if (current.ok()) {
      applied_ = std::move(*current);
    } else {
      spdlog::warn("reading NAT mappings: {}; flows of mappings replaced now keep their old translation",
                   current.status().ToString());
    }
  }
  tracing::Span nftables = StartStep("nftables");
  absl::Status applied = rules_->Apply(ruleset);
  for (int attempt = 1; absl::IsAborted(applied) && attempt < 3; ++attempt) applied = rules_->Apply(ruleset);
  nftables.SetAttribute("abode.magic_dnat", static_cast<int64_t>(ruleset.magic_dnat.size()))
      .SetAttribute("abode.elastic_nat", static_cast<int64_t>(ruleset.elastic_nat.size()));
  if (!applied.ok()) nftables.SetError(std::string(applied.message()));
  nftables.End();
  if (!applied.ok()) {
    spdlog::error("applying NAT mappings: {}", applied.ToString());
    for (const std::string& id : with_nat) fail(id, absl::StrCat("applying NAT mappings: ", applied.message()));
  } else {
    FlushReplacedFlowsLocked(ruleset);
  }

  // What the host must provide for what is served.
  if (options_.host != nullptr) CheckHostLocked(plans);

  // Addresses adopted from a previous process have an unknown lease and lifetime left: renewed once the
  // snapshot confirmed them; afterwards when due.
  if (owned.ok()) RenewLocked();

  // Statuses: report what changed.
  std::vector<v1::AssignmentStatus> changed;
  std::map<std::string, v1::AssignmentStatus> statuses;
  for (const auto& [id, plan] : plans) {
    v1::AssignmentStatus status;
    status.set_id(id);
    status.set_revision(desired_.at(id).revision());
    const std::string& message = plan.error.empty() ? plan.host_error : plan.error;
    status.set_state(message.empty() ? v1::ASSIGNMENT_STATE_OK : v1::ASSIGNMENT_STATE_ERROR);
    status.set_message(message);
    auto previous = statuses_.find(id);
    if (previous == statuses_.end() || !SameStatus(previous->second, status)) {
      if (!message.empty()) spdlog::error("{} (revision {}): {}", id, status.revision(), message);
      changed.push_back(status);
    }
    statuses.emplace(id, std::move(status));
  }
  statuses_ = std::move(statuses);
  return changed;
}

void Reconciler::CheckHostLocked(std::map<std::string, Plan>& plans) {
  const bool bridge = IsBridge(options_.magic_interface);
  std::set<HostRequirement> needed;
  for (const auto& [id, plan] : plans) {
    for (HostRequirement& r : RequirementsOf(plan, bridge)) needed.insert(std::move(r));
  }
  const std::vector<HostRequirement> unmet = options_.host->Check(needed);
  if (unmet.empty()) return;
  const std::set<HostRequirement> missing(unmet.begin(), unmet.end());
  for (auto& [id, plan] : plans) {
    for (const HostRequirement& r : RequirementsOf(plan, bridge)) {
      if (missing.count(r) == 0) continue;
      absl::StrAppend(&plan.host_error, plan.host_error.empty() ? "host requirement not met: set " : "; set ",
                      r.ToString());
    }
  }
}

void Reconciler::FlushReplacedFlowsLocked(const NatRuleset& applied) {
  if (applied_) {
    // A changed target shows as the old mapping removed and the new one added.
    const NatRulesetDiff diff = Diff(*applied_, applied);
    for (const MagicDnat& mapping : diff.magic_dnat.to_remove) {
      for (ConntrackFilter& flows : FlowsTranslatedBy(mapping)) pending_flush_.insert(std::move(flows));
    }
    // A mapping that appears also strands flows: packets sent to the magic address before it had a target (no
    // address yet, a policy drop, no agent on the node) made conntrack entries without translation, and a
    // client that keeps sending from one socket keeps them alive, so its traffic would never be translated.
    for (const MagicDnat& mapping : diff.magic_dnat.to_add) {
      for (ConntrackFilter& flows : FlowsTranslatedBy(mapping)) pending_flush_.insert(std::move(flows));
    }
    for (const ElasticNat& mapping : diff.elastic_nat.to_remove) {
      for (ConntrackFilter& flows : FlowsTranslatedBy(mapping)) pending_flush_.insert(std::move(flows));
    }
  }
  applied_ = applied;
  if (pending_flush_.empty()) return;
  const std::vector<ConntrackFilter> filters(pending_flush_.begin(), pending_flush_.end());
  tracing::Span span = StartStep("conntrack");
  absl::StatusOr<int> deleted = conntrack_->Flush(filters);
  span.SetAttribute("abode.flow_filters", static_cast<int64_t>(filters.size()));
  if (deleted.ok()) span.SetAttribute("abode.entries_deleted", static_cast<int64_t>(*deleted));
  if (!deleted.ok()) {
    span.SetError(std::string(deleted.status().message()));
    // The mappings are in place; only established flows still use the old ones. Retried at the next reconcile.
    spdlog::error("deleting conntrack entries of replaced NAT mappings: {}", deleted.status().ToString());
    return;
  }
  counters_.conntrack_entries_deleted += *deleted;
  for (const ConntrackFilter& flows : filters) spdlog::info("deleted conntrack entries of {}", flows.ToString());
  spdlog::info("{} conntrack entries of replaced NAT mappings deleted", *deleted);
  pending_flush_.clear();
}

}  // namespace abode::node

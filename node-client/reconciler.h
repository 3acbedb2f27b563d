// Turns the node's desired state (assignments from the allocator) into the kernel model and makes the kernel
// hold it: external and elastic addresses on the uplink, magic addresses on the magic interface, magic DNAT and
// elastic DNAT/SNAT in abode's NAT tables.
//
// Every reconcile reads the kernel through the programmers and changes only the difference, so a restart or a
// resync of an unchanged state removes and re-adds nothing. An assignment that cannot be made real (missing
// interface, address held by someone else, kernel refusal, unsupported protocol) gets an ERROR status and a
// log line; the rest keeps being served. After a NAT change the conntrack entries of every mapping that changed
// or went away are deleted, so established flows follow the new mapping at their next packet; unchanged mappings
// keep their flows. Nothing is removed before the first snapshot arrives, and a lost allocator changes nothing
// (the last desired state stays applied) with one exception, the lease: external and elastic addresses, which
// the allocator moves to another node when it cannot hear from this one, leave when the node's lease ends.
#ifndef ABODE_NODE_CLIENT_RECONCILER_H_
#define ABODE_NODE_CLIENT_RECONCILER_H_

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "abode/v1/nodes.pb.h"
#include "absl/base/thread_annotations.h"
#include "address_programmer.h"
#include "assignment_stream.h"
#include "conntrack_flusher.h"
#include "host_requirements.h"
#include "lease_guard.h"
#include "node_lease.h"
#include "rule_programmer.h"
#include "tracing/tracer.h"

namespace abode::node {

struct ReconcilerOptions {
  std::string uplink_interface;  // external and elastic addresses
  std::string magic_interface;   // magic addresses
  // The node's lease (not owned; null: external and elastic addresses are placed permanently). With a lease,
  // external and elastic addresses are guarded by `guard`: the kernel lets them answer and carry traffic only
  // while their lease element, renewed in one batch while the allocator acknowledges heartbeats, runs. When the
  // lease runs out they are withdrawn (addresses and elastic mappings), because the allocator may give them to
  // another node. Magic addresses and mappings stay: they are the node's own.
  NodeLease* lease = nullptr;
  // Checks (and, with --manage-sysctls, sets) what the assignments need from the host (not owned; may be null).
  // An unmet requirement makes each assignment that needs it an ERROR naming the sysctl; it is served anyway.
  HostRequirements* host = nullptr;
  // Enforces the lease in the kernel, also when abode-node is dead (not owned; may be null: then only the
  // backstop lifetime and the live agent's withdrawal enforce it).
  LeaseGuard* guard = nullptr;
  // Backstop: external and elastic addresses carry a kernel lifetime (IFA_CACHEINFO) of this many leases, and
  // at least `backstop_minimum`, renewed when half of it is used, so that a dead node's addresses leave its
  // interfaces in the end. Renewing lifetimes costs the kernel time quadratic in their number (seconds at
  // 10,000 addresses), hence long and rare.
  int backstop_leases = 12;
  std::chrono::seconds backstop_minimum{600};
  // Spans for reconciles caused by traced assignment changes (not owned; null: none): "node.reconcile", a
  // child of the change's traceparent (or, for an update that carries several, a root linking to each),
  // with a child per kernel step ("netlink", "nftables", "conntrack").
  tracing::Tracer* tracer = nullptr;
};

struct AssignmentPlan;  // what one assignment asks of the kernel (reconciler.cc)

// Thread safety: all methods may be called from any thread; calls are serialised.
class Reconciler final : public AssignmentSink {
 public:
  // The programmers, the announcer and the flusher are not owned and must outlive the reconciler.
  Reconciler(ReconcilerOptions options, AddressProgrammer* addresses, RuleProgrammer* rules, Announcer* announcer,
             ConntrackFlusher* conntrack);

  // AssignmentSink: applies a snapshot or delta to the desired state, then reconciles.
  std::vector<v1::AssignmentStatus> OnUpdate(const v1::WatchAssignmentsResponse& update) override;
  std::vector<v1::AssignmentStatus> AllStatuses() override;
  uint64_t AppliedRevision() override;
  // Renews the leases of external and elastic addresses (and their backstop lifetimes) when due; after a
  // withdrawal, places them again (a full reconcile).
  std::vector<v1::AssignmentStatus> OnLeaseRenewed() override;

  // When the lease ends while external or elastic addresses are held: Resync() then withdraws them.
  std::optional<NodeLease::Clock::time_point> LeaseDeadline() const;

  // Reconciles the kernel with the desired state as it stands (periodic resync, repair of others' edits).
  // Before the first snapshot the desired state is unknown and nothing is done. Returns the statuses that changed.
  std::vector<v1::AssignmentStatus> Resync();

  // What the reconciles so far changed in the kernel (for tests and logs).
  struct Counters {
    int64_t reconciles = 0;
    int64_t addresses_added = 0;
    int64_t addresses_removed = 0;
    int64_t announcements = 0;
    int64_t conntrack_entries_deleted = 0;
    int64_t lease_renewals = 0;               // lease guard batches that leased every guarded address anew
    int64_t address_lifetime_renewals = 0;    // backstop lifetimes renewed (one per batch of addresses)
    int64_t withdrawals = 0;     // reconciles that withdrew external and elastic addresses at the lease's end
  };
  Counters counters() const;

 private:
  std::vector<v1::AssignmentStatus> ReconcileLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Gives each plan whose host requirements are unmet its host error.
  void CheckHostLocked(std::map<std::string, AssignmentPlan>& plans) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Deletes the conntrack entries of the mappings that `applied` no longer holds as they were.
  void FlushReplacedFlowsLocked(const NatRuleset& applied) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A span for `update`'s reconcile (not recording when untraced), and one for a step of it.
  tracing::Span StartReconcileSpan(const v1::WatchAssignmentsResponse& update);
  tracing::Span StartStep(const char* name) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // What is left of the lease (0 when it ran out). REQUIRES: options_.lease.
  std::chrono::milliseconds LeaseLeftLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The backstop lifetime of external and elastic addresses (at least 1 s). REQUIRES: options_.lease.
  std::chrono::seconds BackstopLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Makes the guard guard exactly leased_.
  void GuardLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Renews the leases of leased_ when less than half a lease of them is left, and their backstop lifetimes when
  // half of it is used.
  void RenewLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const ReconcilerOptions options_;
  AddressProgrammer* const addresses_;
  RuleProgrammer* const rules_;
  Announcer* const announcer_;
  ConntrackFlusher* const conntrack_;

  mutable std::mutex mu_;
  bool have_snapshot_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t revision_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, v1::Assignment> desired_ ABSL_GUARDED_BY(mu_);       // by id
  std::map<std::string, v1::AssignmentStatus> statuses_ ABSL_GUARDED_BY(mu_);  // by id, of desired_ only
  Counters counters_ ABSL_GUARDED_BY(mu_);
  // The NAT mappings last applied (read from the kernel before the first apply of this process), to know which
  // mappings an apply replaced or removed.
  std::optional<NatRuleset> applied_ ABSL_GUARDED_BY(mu_);
  // Flows still to delete because a flush failed; retried at the next reconcile.
  std::set<ConntrackFilter> pending_flush_ ABSL_GUARDED_BY(mu_);
  // External and elastic addresses in place after the last reconcile; when their leases in the guard end and
  // when their backstop lifetimes end (unknown after a restart: renewed at the first reconcile, once the
  // snapshot confirmed them).
  std::set<OwnedAddress> leased_ ABSL_GUARDED_BY(mu_);
  std::optional<NodeLease::Clock::time_point> renewed_until_ ABSL_GUARDED_BY(mu_);
  std::optional<NodeLease::Clock::time_point> backstop_until_ ABSL_GUARDED_BY(mu_);
  // What the guard guards since the last successful Guard() (unknown before the first, and after a failure).
  std::optional<std::set<std::string>> guarded_ ABSL_GUARDED_BY(mu_);
  bool withdrawn_ ABSL_GUARDED_BY(mu_) = false;  // the last reconcile withdrew them
  tracing::SpanContext reconcile_span_ ABSL_GUARDED_BY(mu_);  // of the reconcile under way, if traced
};

}  // namespace abode::node

#endif  // ABODE_NODE_CLIENT_RECONCILER_H_

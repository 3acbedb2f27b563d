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
#include "node_lease.h"
#include "rule_programmer.h"
#include "tracing/tracer.h"

namespace abode::node {

struct ReconcilerOptions {
  std::string uplink_interface;  // external and elastic addresses
  std::string magic_interface;   // magic addresses
  // The node's lease (not owned; null: external and elastic addresses are placed permanently). With a lease,
  // external and elastic addresses are placed with a kernel lifetime that ends with the lease (rounded up to a
  // second) and renewed while the allocator acknowledges heartbeats; when the lease runs out they are withdrawn
  // (addresses and elastic mappings), because the allocator may give them to another node. Magic addresses and
  // mappings stay: they are the node's own.
  NodeLease* lease = nullptr;
  // Checks (and, with --manage-sysctls, sets) what the assignments need from the host (not owned; may be null).
  // An unmet requirement makes each assignment that needs it an ERROR naming the sysctl; it is served anyway.
  HostRequirements* host = nullptr;
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
  // Renews the kernel lifetimes of external and elastic addresses when due; after a withdrawal, places them
  // again (a full reconcile).
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
    int64_t lease_renewals = 0;  // kernel lifetimes renewed (one per batch of addresses)
    int64_t withdrawals = 0;     // reconciles that withdrew external and elastic addresses at the lease's end
  };
  Counters counters() const;

 private:
  std::vector<v1::AssignmentStatus> ReconcileLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Gives each plan whose host requirements are unmet its host error.
  void CheckHostLocked(std::map<std::string, AssignmentPlan>& plans) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Deletes the conntrack entries of the mappings that `applied` no longer holds as they were.
  void FlushReplacedFlowsLocked(const NatRuleset& applied) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The kernel lifetime that ends with the lease (at least 1 s). REQUIRES: a valid lease.
  std::chrono::seconds LifetimeLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Renews leased_ when less than half a lease of their kernel lifetime is left, or when `force`.
  void RenewLocked(bool force) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A span for `update`'s reconcile (not recording when untraced), and one for a step of it.
  tracing::Span StartReconcileSpan(const v1::WatchAssignmentsResponse& update);
  tracing::Span StartStep(const char* name) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

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
  // External and elastic addresses in place after the last reconcile, and when their kernel lifetime ends
  // (unknown after a restart: renewed at the first reconcile, once the snapshot confirmed them).
  std::set<OwnedAddress> leased_ ABSL_GUARDED_BY(mu_);
  std::optional<NodeLease::Clock::time_point> renewed_until_ ABSL_GUARDED_BY(mu_);
  bool withdrawn_ ABSL_GUARDED_BY(mu_) = false;  // the last reconcile withdrew them
  tracing::SpanContext reconcile_span_ ABSL_GUARDED_BY(mu_);  // of the reconcile under way, if traced
};

}  // namespace abode::node

#endif  // ABODE_NODE_CLIENT_RECONCILER_H_

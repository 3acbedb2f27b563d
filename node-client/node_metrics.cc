#include "node_metrics.h"

#include <map>
#include <string>
#include <utility>

#include "metrics/family.h"

namespace abode::node {
namespace {

using metrics::Family;
using metrics::Sample;

const char* StateName(v1::AssignmentState state) {
  switch (state) {
    case v1::ASSIGNMENT_STATE_OK: return "ok";
    case v1::ASSIGNMENT_STATE_ERROR: return "error";
    default: return "pending";
  }
}

}  // namespace

std::vector<prometheus::MetricFamily> NodeMetrics::Collect() const {
  using prometheus::MetricType;
  std::vector<prometheus::MetricFamily> out;
  out.push_back(Family("abode_node_stream_up", "1 while the node follows an allocator's assignment stream",
                       MetricType::Gauge, {Sample(stream_.streaming() ? 1 : 0)}));
  out.push_back(Family("abode_node_streams_established_total",
                       "Assignment streams opened (a count above 1 means the node reconnected or failed over)",
                       MetricType::Counter, {Sample(static_cast<double>(stream_.established_streams()))}));
  out.push_back(Family("abode_node_applied_revision", "The allocator state revision the node has applied",
                       MetricType::Gauge, {Sample(static_cast<double>(reconciler_.AppliedRevision()))}));

  // Every state gets a series, so that an alert on errors sees 0 rather than nothing.
  std::map<std::string, int> by_state = {{"ok", 0}, {"error", 0}, {"pending", 0}};
  for (const v1::AssignmentStatus& s : reconciler_.AllStatuses()) ++by_state[StateName(s.state())];
  std::vector<prometheus::ClientMetric> assignments;
  for (const auto& [state, count] : by_state) assignments.push_back(Sample(count, {{"state", state}}));
  out.push_back(Family("abode_node_assignments", "Assignments the node holds, by state of their last reconcile",
                       MetricType::Gauge, std::move(assignments)));

  const Reconciler::Counters c = reconciler_.counters();
  out.push_back(Family("abode_node_reconciles_total", "Reconciles of the kernel with the desired state",
                       MetricType::Counter, {Sample(static_cast<double>(c.reconciles))}));
  out.push_back(Family("abode_node_addresses_added_total", "Addresses the node placed on its interfaces",
                       MetricType::Counter, {Sample(static_cast<double>(c.addresses_added))}));
  out.push_back(Family("abode_node_addresses_removed_total", "Addresses the node took off its interfaces",
                       MetricType::Counter, {Sample(static_cast<double>(c.addresses_removed))}));
  out.push_back(Family("abode_node_announcements_total", "Gratuitous ARPs and unsolicited NAs sent",
                       MetricType::Counter, {Sample(static_cast<double>(c.announcements))}));
  out.push_back(Family("abode_node_conntrack_entries_deleted_total",
                       "Conntrack entries deleted after their NAT mapping changed or went away", MetricType::Counter,
                       {Sample(static_cast<double>(c.conntrack_entries_deleted))}));
  out.push_back(Family("abode_node_lease_renewals_total",
                       "nftables batches that renewed the lease of every external and elastic address of the node",
                       MetricType::Counter, {Sample(static_cast<double>(c.lease_renewals))}));
  out.push_back(Family("abode_node_address_lifetime_renewals_total",
                       "Renewals of the backstop kernel lifetime of the node's external and elastic addresses",
                       MetricType::Counter, {Sample(static_cast<double>(c.address_lifetime_renewals))}));
  out.push_back(Family("abode_node_lease_withdrawals_total",
                       "Times the node's lease ran out and its external and elastic addresses were withdrawn",
                       MetricType::Counter, {Sample(static_cast<double>(c.withdrawals))}));
  if (host_ != nullptr) {
    std::vector<prometheus::ClientMetric> unmet;
    for (const auto& [sysctl, missing] : host_->unmet()) unmet.push_back(Sample(missing ? 1 : 0, {{"sysctl", sysctl}}));
    out.push_back(Family("abode_node_host_requirement_unmet",
                         "1 while a kernel setting the node's assignments need is not as they need it",
                         MetricType::Gauge, std::move(unmet)));
  }
  return out;
}

}  // namespace abode::node

#include "node_metrics.h"

#include <map>
#include <string>
#include <utility>

#include <prometheus/client_metric.h>

namespace abode::node {
namespace {

prometheus::MetricFamily One(std::string name, std::string help, prometheus::MetricType type, double value) {
  prometheus::ClientMetric m;
  m.gauge.value = value;
  m.counter.value = value;
  return prometheus::MetricFamily{std::move(name), std::move(help), type, {std::move(m)}};
}

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
  out.push_back(One("abode_node_stream_up", "1 while the node follows an allocator's assignment stream",
                    MetricType::Gauge, stream_.streaming() ? 1 : 0));
  out.push_back(One("abode_node_streams_established_total",
                    "Assignment streams opened (a count above 1 means the node reconnected or failed over)",
                    MetricType::Counter, static_cast<double>(stream_.established_streams())));
  out.push_back(One("abode_node_applied_revision", "The allocator state revision the node has applied",
                    MetricType::Gauge, static_cast<double>(reconciler_.AppliedRevision())));

  // Every state gets a series, so that an alert on errors sees 0 rather than nothing.
  std::map<std::string, int> by_state = {{"ok", 0}, {"error", 0}, {"pending", 0}};
  for (const v1::AssignmentStatus& s : reconciler_.AllStatuses()) ++by_state[StateName(s.state())];
  prometheus::MetricFamily assignments{"abode_node_assignments",
                                       "Assignments the node holds, by state of their last reconcile",
                                       MetricType::Gauge, {}};
  for (const auto& [state, count] : by_state) {
    prometheus::ClientMetric m;
    m.label = {{"state", state}};
    m.gauge.value = count;
    assignments.metric.push_back(std::move(m));
  }
  out.push_back(std::move(assignments));

  const Reconciler::Counters c = reconciler_.counters();
  out.push_back(One("abode_node_reconciles_total", "Reconciles of the kernel with the desired state",
                    MetricType::Counter, static_cast<double>(c.reconciles)));
  out.push_back(One("abode_node_addresses_added_total", "Addresses the node placed on its interfaces",
                    MetricType::Counter, static_cast<double>(c.addresses_added)));
  out.push_back(One("abode_node_addresses_removed_total", "Addresses the node took off its interfaces",
                    MetricType::Counter, static_cast<double>(c.addresses_removed)));
  out.push_back(One("abode_node_announcements_total", "Gratuitous ARPs and unsolicited NAs sent",
                    MetricType::Counter, static_cast<double>(c.announcements)));
  out.push_back(One("abode_node_conntrack_entries_deleted_total",
                    "Conntrack entries deleted after their NAT mapping changed or went away", MetricType::Counter,
                    static_cast<double>(c.conntrack_entries_deleted)));
  return out;
}

}  // namespace abode::node

// abode-node's Prometheus metrics (`abode-node --metrics-listen IPV4:PORT`), read when scraped: whether the
// node follows an allocator, the revision it applied, its assignments by state, and what its reconciles
// changed in the kernel. See docs/metrics.md.
#ifndef ABODE_NODE_CLIENT_NODE_METRICS_H_
#define ABODE_NODE_CLIENT_NODE_METRICS_H_

#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include "assignment_stream.h"
#include "host_requirements.h"
#include "reconciler.h"

namespace abode::node {

class NodeMetrics final : public prometheus::Collectable {
 public:
  // All must outlive every scrape: stop the endpoint before they go. `host` may be null.
  NodeMetrics(Reconciler& reconciler, const AssignmentStreamClient& stream, const HostRequirements* host = nullptr)
      : reconciler_(reconciler), stream_(stream), host_(host) {}
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  Reconciler& reconciler_;
  const AssignmentStreamClient& stream_;
  const HostRequirements* host_;
};

}  // namespace abode::node

#endif  // ABODE_NODE_CLIENT_NODE_METRICS_H_

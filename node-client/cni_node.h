// abode-node's CNI endpoint, assembled: the local socket, the service behind it, the warm gRPC channel to the
// allocator, and the request metrics (abode_node_cni_* in docs/metrics.md).
#ifndef ABODE_NODE_CLIENT_CNI_NODE_H_
#define ABODE_NODE_CLIENT_CNI_NODE_H_

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cni_allocator.h"
#include "cni_service.h"
#include "cni_socket.h"
#include "tracing/tracer.h"

namespace abode::node {

// CNI requests by verb and answer code, how long abode-node took, and how long the plugin took end to end.
class CniMetrics {
 public:
  CniMetrics();
  void Record(const CniRequestRecord& record);
  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& node_seconds_;
  prometheus::Family<prometheus::Histogram>& plugin_seconds_;
};

class CniNode {
 public:
  // Serves `socket_path` for `node_name` with the allocator at `endpoints`. With `tracer` (which outlives
  // the node), requests are traced (cni_spans.h) and so are the allocator calls they make.
  static absl::StatusOr<std::unique_ptr<CniNode>> Start(const std::string& socket_path, const std::string& node_name,
                                                        const std::vector<std::string>& endpoints,
                                                        tracing::Tracer* tracer = nullptr);
  // As above with an allocator of the caller's (tests).
  static absl::StatusOr<std::unique_ptr<CniNode>> Start(const std::string& socket_path, const std::string& node_name,
                                                        std::unique_ptr<CniAllocator> allocator,
                                                        tracing::Tracer* tracer = nullptr);
  // For the metrics endpoint.
  std::shared_ptr<prometheus::Registry> metrics() const { return metrics_->registry(); }

 private:
  CniNode() = default;
  std::unique_ptr<CniAllocator> allocator_;
  std::unique_ptr<CniService> service_;
  std::unique_ptr<CniMetrics> metrics_;
  std::unique_ptr<CniSocketServer> server_;  // last: stops first
};

}  // namespace abode::node

#endif  // ABODE_NODE_CLIENT_CNI_NODE_H_

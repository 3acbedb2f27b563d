#include "cni_node.h"

#include <unistd.h>

#include "cni_spans.h"

namespace abode::node {
namespace {

prometheus::Histogram::BucketBoundaries LatencyBuckets() {
  return {0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1, 2, 5, 10};
}

}  // namespace

CniMetrics::CniMetrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      requests_(prometheus::BuildCounter()
                    .Name("abode_node_cni_requests_total")
                    .Help("CNI plugin requests served, by verb and answer (ok, or the CNI error code)")
                    .Register(*registry_)),
      node_seconds_(prometheus::BuildHistogram()
                        .Name("abode_node_cni_request_duration_seconds")
                        .Help("Time abode-node took to answer a CNI request, by verb")
                        .Register(*registry_)),
      plugin_seconds_(prometheus::BuildHistogram()
                          .Name("abode_node_cni_plugin_duration_seconds")
                          .Help("The plugin's own time from exec to exit as it reported it, by verb")
                          .Register(*registry_)) {}

void CniMetrics::Record(const CniRequestRecord& record) {
  const std::string verb = record.verb.empty() ? "unreadable" : record.verb;
  requests_.Add({{"verb", verb}, {"result", record.code == 0 ? "ok" : std::to_string(record.code)}}).Increment();
  node_seconds_.Add({{"verb", verb}}, LatencyBuckets()).Observe(record.node_seconds);
  if (record.plugin_seconds > 0) plugin_seconds_.Add({{"verb", verb}}, LatencyBuckets()).Observe(record.plugin_seconds);
}

absl::StatusOr<std::unique_ptr<CniNode>> CniNode::Start(const std::string& socket_path, const std::string& node_name,
                                                        const std::vector<std::string>& endpoints,
                                                        tracing::Tracer* tracer) {
  return Start(socket_path, node_name, NewGrpcCniAllocator(endpoints, tracer), tracer);
}

absl::StatusOr<std::unique_ptr<CniNode>> CniNode::Start(const std::string& socket_path, const std::string& node_name,
                                                        std::unique_ptr<CniAllocator> allocator,
                                                        tracing::Tracer* tracer) {
  std::unique_ptr<CniNode> node(new CniNode());
  node->allocator_ = std::move(allocator);
  node->service_ = std::make_unique<CniService>(node_name, node->allocator_.get());
  node->metrics_ = std::make_unique<CniMetrics>();
  if (tracer != nullptr && !tracer->enabled()) tracer = nullptr;
  auto server = CniSocketServer::Start(
      socket_path,
      [s = node->service_.get(), tracer, node_name](const cni::LocalRequest& r) {
        if (tracer == nullptr) return s->Handle(r);
        return HandleTraced(*tracer, node_name, r, [s](const cni::LocalRequest& t) { return s->Handle(t); });
      },
      [m = node->metrics_.get(), tracer, node_name](const CniRequestRecord& r) {
        m->Record(r);
        if (tracer != nullptr) RecordPluginSpan(*tracer, node_name, r);
      },
      32, ::geteuid());
  if (!server.ok()) return server.status();
  node->server_ = std::move(*server);
  return node;
}

}  // namespace abode::node

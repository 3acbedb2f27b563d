// Prometheus metrics of an allocator replica, served over plain HTTP at /metrics by prometheus-cpp's pull
// exposer (`abode-allocator --metrics-listen HOST:PORT`). Two sources:
//  - RpcMetrics: every gRPC call, counted and timed by a server interceptor, under the names and labels the
//    Go gRPC ecosystem uses (grpc_server_started_total, grpc_server_handled_total{grpc_code},
//    grpc_server_handling_seconds), so existing dashboards and alerts apply;
//  - ReplicaMetrics: read when scraped, never on the request path: raft (role, term, indexes, entries and
//    commands proposed), the state's revision, and every pool's size and live allocations.
// See docs/metrics.md for the full list.
#ifndef ABODE_ALLOCATOR_SERVICE_METRICS_H_
#define ABODE_ALLOCATOR_SERVICE_METRICS_H_

#include <array>
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/support/server_interceptor.h>
#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "replication/cluster_view.h"
#include "storage/pool_listing.h"

namespace abode::allocator {

// Counts and times gRPC calls. Thread-safe; outlives the server it instruments.
class RpcMetrics {
 public:
  explicit RpcMetrics(prometheus::Registry& registry);

  // For ServerBuilder::experimental().SetInterceptorCreators; the factory refers to this object.
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> InterceptorFactory();

  // One method's series. `handled` is filled in per status code on first use.
  struct Method {
    prometheus::Counter* started = nullptr;
    prometheus::Histogram* handling = nullptr;
    std::array<std::atomic<prometheus::Counter*>, 17> handled{};  // by grpc::StatusCode (0..16)
    std::string service, method, type;
  };
  // The series of a fully-qualified method ("/pkg.Service/Method"); created on first use. Names of no
  // service abode serves share one series, service and method "unknown": a client cannot grow the metrics
  // by calling made-up methods.
  Method& ForMethod(const char* full_name, grpc::experimental::ServerRpcInfo::Type type);
  // Records the end of a call with `code` (out-of-range codes count as UNKNOWN).
  void Handled(Method& m, int code, double seconds);

 private:
  prometheus::Family<prometheus::Counter>& started_;
  prometheus::Family<prometheus::Counter>& handled_;
  prometheus::Family<prometheus::Histogram>& handling_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::unique_ptr<Method>> by_name_ ABSL_GUARDED_BY(mu_);
};

// Raft, state and pool figures of one replica, read from the node's status and the pool listing each time
// Prometheus scrapes.
class ReplicaMetrics final : public prometheus::Collectable {
 public:
  ReplicaMetrics(replication::ReplicaStatus& node, storage::PoolListing& pools) : node_(&node), pools_(&pools) {}
  std::vector<prometheus::MetricFamily> Collect() const override;
  // Waits for a scrape under way; later scrapes report nothing of the node (it is going away).
  void Detach();

 private:
  mutable absl::Mutex mu_;
  replication::ReplicaStatus* node_ ABSL_GUARDED_BY(mu_);
  storage::PoolListing* pools_ ABSL_GUARDED_BY(mu_);
};

}  // namespace abode::allocator

#endif  // ABODE_ALLOCATOR_SERVICE_METRICS_H_

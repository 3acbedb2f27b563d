// The HTTP endpoint that serves Prometheus metrics at /metrics (prometheus-cpp's pull exposer), shared by
// abode-allocator and abode-node (`--metrics-listen IPV4:PORT`). See docs/metrics.md.
#ifndef ABODE_METRICS_ENDPOINT_H_
#define ABODE_METRICS_ENDPOINT_H_

#include <memory>
#include <string>

#include <prometheus/collectable.h>
#include <prometheus/exposer.h>

#include "absl/status/statusor.h"

namespace abode::metrics {

// INVALID_ARGUMENT naming --metrics-listen unless `listen` is IPV4:PORT: what Start() accepts, checked without
// binding (for --check-config).
absl::Status CheckMetricsListen(const std::string& listen);

// Serves /metrics until destroyed.
class MetricsEndpoint {
 public:
  // `listen` is IPV4:PORT (port 0 picks a free port; Debian's civetweb binds no IPv6). INVALID_ARGUMENT
  // for anything else, UNAVAILABLE when it cannot be bound; the message names --metrics-listen. Stopping
  // (the destructor) takes up to 2 s: civetweb's listener polls that long.
  static absl::StatusOr<std::unique_ptr<MetricsEndpoint>> Start(const std::string& listen);
  // Adds what /metrics serves; anytime, from any thread. The endpoint keeps only a weak reference.
  void Register(const std::weak_ptr<prometheus::Collectable>& collectable);
  int port() const { return port_; }

 private:
  MetricsEndpoint() = default;
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_ = 0;
};

}  // namespace abode::metrics

#endif  // ABODE_METRICS_ENDPOINT_H_

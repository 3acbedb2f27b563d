// Tracing configuration from the standard OpenTelemetry environment variables:
//   OTEL_SDK_DISABLED=true                 tracing off, whatever else is set
//   OTEL_EXPORTER_OTLP_TRACES_ENDPOINT     where spans go (OTLP/gRPC), else
//   OTEL_EXPORTER_OTLP_ENDPOINT            (http://HOST:PORT, https://HOST:PORT or HOST:PORT); with
//                                          neither set, tracing is off
//   OTEL_SERVICE_NAME                      service.name (default: the program's own name)
//   OTEL_TRACES_SAMPLER                    always_on, always_off, traceidratio, parentbased_always_on,
//                                          parentbased_always_off, parentbased_traceidratio (default)
//   OTEL_TRACES_SAMPLER_ARG                the ratio in [0, 1] of the ratio samplers (default 1)
//   OTEL_RESOURCE_ATTRIBUTES               key=value,key=value (values percent-encoded)
//   OTEL_BSP_MAX_QUEUE_SIZE                spans waiting for export at most (default 4096; more are dropped)
//   OTEL_BSP_MAX_EXPORT_BATCH_SIZE         spans per export at most (default 512; at most the queue)
//   OTEL_BSP_SCHEDULE_DELAY                ms between exports of a batch that is not full (default 500)
//   OTEL_BSP_EXPORT_TIMEOUT                ms an export may take (default 5000)
#ifndef ABODE_TRACING_CONFIG_H_
#define ABODE_TRACING_CONFIG_H_

#include <cstddef>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace abode::tracing {

enum class Sampler { kAlwaysOn, kAlwaysOff, kRatio };

struct TracingConfig {
  bool enabled = false;
  std::string endpoint;  // a gRPC target, HOST:PORT
  bool use_tls = false;  // https:// endpoint
  std::string service_name;
  Sampler sampler = Sampler::kRatio;
  bool parent_based = true;
  double ratio = 1.0;
  std::vector<std::pair<std::string, std::string>> resource;  // besides service.name
  size_t max_queue_spans = 4096;
  size_t max_batch_spans = 512;
  absl::Duration schedule_delay = absl::Milliseconds(500);
  absl::Duration export_timeout = absl::Seconds(5);
  absl::Duration shutdown_timeout = absl::Seconds(5);
};

// Reads the variables above through `getenv` (null for unset). `default_service_name` applies when
// OTEL_SERVICE_NAME is unset. INVALID_ARGUMENT naming the variable for a value it cannot use.
absl::StatusOr<TracingConfig> ConfigFromEnvironment(const std::function<const char*(const char*)>& getenv,
                                                    const std::string& default_service_name);

}  // namespace abode::tracing

#endif  // ABODE_TRACING_CONFIG_H_

// Where finished spans go, a batch at a time: OtlpGrpcExporter sends them to an OTLP/gRPC receiver (Jaeger,
// the OpenTelemetry Collector) as one ExportTraceServiceRequest; tests use their own exporter.
#ifndef ABODE_TRACING_SPAN_EXPORTER_H_
#define ABODE_TRACING_SPAN_EXPORTER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.grpc.pb.h"
#include "tracing/config.h"
#include "tracing/tracer.h"

namespace abode::tracing {

class SpanExporter {
 public:
  virtual ~SpanExporter() = default;
  // Sends `spans`; called from one thread at a time (the tracer's export thread).
  virtual absl::Status Export(const std::vector<SpanData>& spans) = 0;
};

// The OTLP request for `spans`: one ResourceSpans per service (the tracer's resource, with service.name
// replaced for spans recorded on behalf of another program), one scope "abode".
// `out` is empty; it may live on an arena.
void ToOtlp(const TracingConfig& config, const std::vector<SpanData>& spans,
            opentelemetry::proto::collector::trace::v1::ExportTraceServiceRequest* out);
opentelemetry::proto::collector::trace::v1::ExportTraceServiceRequest ToOtlp(const TracingConfig& config,
                                                                             const std::vector<SpanData>& spans);

class OtlpGrpcExporter final : public SpanExporter {
 public:
  // Connects lazily to `config.endpoint` (TLS for an https:// endpoint), uncompressed (compressing costs the
  // exporting process CPU to save bandwidth that a trace receiver rarely lacks). Each request is built on an
  // arena whose first block is kept from one export to the next, so a batch costs few allocations.
  explicit OtlpGrpcExporter(const TracingConfig& config);
  absl::Status Export(const std::vector<SpanData>& spans) override;

 private:
  const TracingConfig config_;
  std::unique_ptr<opentelemetry::proto::collector::trace::v1::TraceService::Stub> stub_;
  std::unique_ptr<char[]> arena_block_;
};

}  // namespace abode::tracing

#endif  // ABODE_TRACING_SPAN_EXPORTER_H_

// Where finished spans go, a batch at a time: OtlpGrpcExporter sends them to an OTLP/gRPC receiver (Jaeger,
// the OpenTelemetry Collector) as one ExportTraceServiceRequest; tests use their own exporter.
#ifndef ABODE_TRACING_SPAN_EXPORTER_H_
#define ABODE_TRACING_SPAN_EXPORTER_H_

#include <memory>
#include <string>

#include <grpcpp/generic/generic_stub.h>

#include "absl/status/status.h"
#include "tracing/config.h"
#include "tracing/tracer.h"

namespace abode::tracing {

class SpanExporter {
 public:
  virtual ~SpanExporter() = default;
  // Sends `spans`; called from one thread at a time (the tracer's export thread).
  virtual absl::Status Export(const SpanBatch& spans) = 0;
};

class OtlpGrpcExporter final : public SpanExporter {
 public:
  // Connects lazily to `config.endpoint` (TLS for an https:// endpoint), uncompressed (compressing costs the
  // exporting process CPU to save bandwidth that a trace receiver rarely lacks). The request is encoded by
  // EncodeOtlp (otlp_encoder.h) into a buffer kept from one export to the next, and sent as it is.
  explicit OtlpGrpcExporter(const TracingConfig& config);
  absl::Status Export(const SpanBatch& spans) override;

 private:
  const TracingConfig config_;
  std::unique_ptr<grpc::GenericStub> stub_;
  std::string request_;
};

}  // namespace abode::tracing

#endif  // ABODE_TRACING_SPAN_EXPORTER_H_

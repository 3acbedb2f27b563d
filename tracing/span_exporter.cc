#include "tracing/span_exporter.h"

#include <chrono>
#include <vector>

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"
#include "tracing/otlp_encoder.h"

namespace abode::tracing {

namespace {

constexpr char kExportMethod[] = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

// The receiver's answer, parsed from its bytes.
absl::Status ParseResponse(const grpc::ByteBuffer& bytes, const std::string& endpoint) {
  std::vector<grpc::Slice> slices;
  if (!bytes.Dump(&slices).ok()) return absl::DataLossError(absl::StrCat(endpoint, " sent an unreadable answer"));
  std::string text;
  for (const grpc::Slice& s : slices) text.append(reinterpret_cast<const char*>(s.begin()), s.size());
  opentelemetry::proto::collector::trace::v1::ExportTraceServiceResponse response;
  if (!response.ParseFromString(text)) {
    return absl::DataLossError(absl::StrCat(endpoint, " sent an answer that is not an ExportTraceServiceResponse"));
  }
  if (response.has_partial_success() && response.partial_success().rejected_spans() > 0) {
    return absl::DataLossError(absl::StrCat(endpoint, " rejected ", response.partial_success().rejected_spans(),
                                            " spans: ", response.partial_success().error_message()));
  }
  return absl::OkStatus();
}

}  // namespace

OtlpGrpcExporter::OtlpGrpcExporter(const TracingConfig& config) : config_(config) {
  auto credentials = config.use_tls ? grpc::SslCredentials(grpc::SslCredentialsOptions())
                                    : grpc::InsecureChannelCredentials();
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 5000);
  stub_ = std::make_unique<grpc::GenericStub>(grpc::CreateCustomChannel(config.endpoint, credentials, args));
}

absl::Status OtlpGrpcExporter::Export(const SpanBatch& spans) {
  EncodeOtlp(config_, spans, &request_);
  grpc::Slice slice(request_.data(), request_.size());
  const grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(config_.export_timeout));
  grpc::Status status;
  absl::Notification done;
  stub_->UnaryCall(&ctx, kExportMethod, grpc::StubOptions(), &request, &response, [&](grpc::Status s) {
    status = std::move(s);
    done.Notify();
  });
  done.WaitForNotification();
  if (!status.ok()) {
    return absl::UnavailableError(absl::StrCat("exporting ", spans.size(), " spans to ", config_.endpoint, ": ",
                                               status.error_message(), " (gRPC code ", status.error_code(), ")"));
  }
  return ParseResponse(response, config_.endpoint);
}

}  // namespace abode::tracing

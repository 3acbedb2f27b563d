#include "tracing/span_exporter.h"

#include <chrono>
#include <map>

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include "absl/strings/str_cat.h"

namespace abode::tracing {
namespace {

namespace otlp_common = opentelemetry::proto::common::v1;
namespace otlp_trace = opentelemetry::proto::trace::v1;
using opentelemetry::proto::collector::trace::v1::ExportTraceServiceRequest;
using opentelemetry::proto::collector::trace::v1::ExportTraceServiceResponse;

constexpr char kScopeName[] = "abode";

void SetValue(const AttributeValue& value, otlp_common::AnyValue* out) {
  if (const auto* s = std::get_if<std::string>(&value)) {
    out->set_string_value(*s);
  } else if (const auto* i = std::get_if<int64_t>(&value)) {
    out->set_int_value(*i);
  } else if (const auto* d = std::get_if<double>(&value)) {
    out->set_double_value(*d);
  } else {
    out->set_bool_value(std::get<bool>(value));
  }
}

void AddAttribute(const std::string& key, const AttributeValue& value,
                  google::protobuf::RepeatedPtrField<otlp_common::KeyValue>* out) {
  otlp_common::KeyValue* kv = out->Add();
  kv->set_key(key);
  SetValue(value, kv->mutable_value());
}

void AddAttributes(const Attributes& attributes, google::protobuf::RepeatedPtrField<otlp_common::KeyValue>* out) {
  for (const auto& [key, value] : attributes) AddAttribute(key, value, out);
}

std::string Bytes(const uint8_t* data, size_t n) { return std::string(reinterpret_cast<const char*>(data), n); }

void ToOtlpSpan(const SpanData& span, otlp_trace::Span* out) {
  out->set_trace_id(Bytes(span.context.trace_id.data(), span.context.trace_id.size()));
  out->set_span_id(Bytes(span.context.span_id.data(), span.context.span_id.size()));
  if (span.parent_span_id != SpanId{}) out->set_parent_span_id(Bytes(span.parent_span_id.data(), span.parent_span_id.size()));
  // W3C flags, and "the parent's remoteness is known" (bit 8) with its value (bit 9).
  uint32_t flags = (span.context.sampled ? 0x01 : 0x00) | 0x100;
  if (span.parent_remote) flags |= 0x200;
  out->set_flags(flags);
  out->set_name(span.name);
  out->set_kind(static_cast<otlp_trace::Span::SpanKind>(span.kind));
  out->set_start_time_unix_nano(static_cast<uint64_t>(span.start_unix_ns));
  out->set_end_time_unix_nano(static_cast<uint64_t>(span.end_unix_ns));
  AddAttributes(span.attributes, out->mutable_attributes());
  for (const SpanEvent& e : span.events) {
    otlp_trace::Span::Event* event = out->add_events();
    event->set_time_unix_nano(static_cast<uint64_t>(e.time_unix_ns));
    event->set_name(e.name);
    AddAttributes(e.attributes, event->mutable_attributes());
  }
  for (const SpanContext& l : span.links) {
    otlp_trace::Span::Link* link = out->add_links();
    link->set_trace_id(Bytes(l.trace_id.data(), l.trace_id.size()));
    link->set_span_id(Bytes(l.span_id.data(), l.span_id.size()));
    link->set_flags((l.sampled ? 0x01 : 0x00) | 0x100 | 0x200);
  }
  if (span.status != StatusCode::kUnset) {
    out->mutable_status()->set_code(static_cast<otlp_trace::Status::StatusCode>(span.status));
    if (span.status == StatusCode::kError) out->mutable_status()->set_message(span.status_message);
  }
}

}  // namespace

ExportTraceServiceRequest ToOtlp(const TracingConfig& config, const std::vector<SpanData>& spans) {
  ExportTraceServiceRequest request;
  ToOtlp(config, spans, &request);
  return request;
}

void ToOtlp(const TracingConfig& config, const std::vector<SpanData>& spans, ExportTraceServiceRequest* out) {
  ExportTraceServiceRequest& request = *out;
  std::map<std::string, otlp_trace::ScopeSpans*> by_service;
  for (const SpanData& span : spans) {
    const std::string& service = span.service_name.empty() ? config.service_name : span.service_name;
    otlp_trace::ScopeSpans*& scope = by_service[service];
    if (scope == nullptr) {
      otlp_trace::ResourceSpans* rs = request.add_resource_spans();
      auto* attributes = rs->mutable_resource()->mutable_attributes();
      AddAttribute("service.name", service, attributes);
      AddAttribute("telemetry.sdk.name", std::string(kScopeName), attributes);
      AddAttribute("telemetry.sdk.language", std::string("cpp"), attributes);
      for (const auto& [key, value] : config.resource) AddAttribute(key, value, attributes);
      scope = rs->add_scope_spans();
      scope->mutable_scope()->set_name(kScopeName);
    }
    ToOtlpSpan(span, scope->add_spans());
  }
}

constexpr size_t kArenaBlockBytes = 1 << 20;

OtlpGrpcExporter::OtlpGrpcExporter(const TracingConfig& config)
    : config_(config), arena_block_(new char[kArenaBlockBytes]) {
  auto credentials = config.use_tls ? grpc::SslCredentials(grpc::SslCredentialsOptions())
                                    : grpc::InsecureChannelCredentials();
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 5000);
  stub_ = opentelemetry::proto::collector::trace::v1::TraceService::NewStub(
      grpc::CreateCustomChannel(config.endpoint, credentials, args));
}

absl::Status OtlpGrpcExporter::Export(const std::vector<SpanData>& spans) {
  google::protobuf::ArenaOptions options;
  options.initial_block = arena_block_.get();
  options.initial_block_size = kArenaBlockBytes;
  google::protobuf::Arena arena(options);
  auto* request = google::protobuf::Arena::CreateMessage<ExportTraceServiceRequest>(&arena);
  ToOtlp(config_, spans, request);
  ExportTraceServiceResponse response;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(config_.export_timeout));
  const grpc::Status s = stub_->Export(&ctx, *request, &response);
  if (!s.ok()) {
    return absl::UnavailableError(absl::StrCat("exporting ", spans.size(), " spans to ", config_.endpoint, ": ",
                                               s.error_message(), " (gRPC code ", s.error_code(), ")"));
  }
  if (response.has_partial_success() && response.partial_success().rejected_spans() > 0) {
    return absl::DataLossError(absl::StrCat(config_.endpoint, " rejected ", response.partial_success().rejected_spans(),
                                            " spans: ", response.partial_success().error_message()));
  }
  return absl::OkStatus();
}

}  // namespace abode::tracing

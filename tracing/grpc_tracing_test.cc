// The interceptors and the OTLP exporter over real gRPC on loopback (port 0). The receiver here is a
// TraceService implemented on the same messages; the proof that they match the OTLP specification is the
// integration test against Jaeger (integration/tracing_test.cc).
#include "tracing/grpc_tracing.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <optional>
#include <prometheus/metric_family.h>

#include "absl/synchronization/mutex.h"
#include "tracing/collecting_exporter.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.grpc.pb.h"
#include "tracing/span_exporter.h"

namespace abode::tracing {
namespace {

using opentelemetry::proto::collector::trace::v1::ExportTraceServiceRequest;
using opentelemetry::proto::collector::trace::v1::ExportTraceServiceResponse;
using opentelemetry::proto::collector::trace::v1::TraceService;

constexpr char kParent[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

class Receiver final : public TraceService::CallbackService {
 public:
  grpc::ServerUnaryReactor* Export(grpc::CallbackServerContext* ctx, const ExportTraceServiceRequest* request,
                                   ExportTraceServiceResponse*) override {
    {
      absl::MutexLock lock(&mu_);
      auto it = ctx->client_metadata().find("traceparent");
      seen_traceparent = it == ctx->client_metadata().end() ? "" : std::string(it->second.data(), it->second.size());
      requests.push_back(*request);
    }
    auto* reactor = ctx->DefaultReactor();
    reactor->Finish(request->resource_spans_size() == 0 ? grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "full")
                                                        : grpc::Status::OK);
    return reactor;
  }
  absl::Mutex mu_;
  std::string seen_traceparent;
  std::vector<ExportTraceServiceRequest> requests;
};

TracingConfig Config(const std::string& service) {
  TracingConfig c;
  c.enabled = true;
  c.endpoint = "unused:1";
  c.service_name = service;
  return c;
}

class GrpcTracingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_tracer_ = *Tracer::Start(Config("server"), std::make_unique<CollectingExporter>(&server_collected_));
    client_tracer_ = *Tracer::Start(Config("client"), std::make_unique<CollectingExporter>(&client_collected_));
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&receiver_);
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
    interceptors.push_back(ServerInterceptorFactory(*server_tracer_));
    builder.experimental().SetInterceptorCreators(std::move(interceptors));
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = TraceService::NewStub(CreateTracedChannel("127.0.0.1:" + std::to_string(port_),
                                                      grpc::InsecureChannelCredentials(), {}, client_tracer_.get()));
  }
  void TearDown() override {
    server_->Shutdown();
    server_tracer_.reset();
    client_tracer_.reset();
  }
  grpc::Status Call(const std::string& traceparent, bool empty) {
    grpc::ClientContext ctx;
    if (!traceparent.empty()) ctx.AddMetadata("traceparent", traceparent);
    ExportTraceServiceRequest req;
    if (!empty) req.add_resource_spans();
    ExportTraceServiceResponse resp;
    return stub_->Export(&ctx, req, &resp);
  }
  // The attribute `key` as the span is exported with it.
  static std::optional<AttributeValue> Attr(const SpanData& s, const std::string& key) {
    std::optional<AttributeValue> found;
    ForEachAttribute(s, [&](std::string_view k, const AttributeRef& v) {
      if (k != key) return;
      if (const auto* text = std::get_if<std::string_view>(&v)) {
        found = std::string(*text);
      } else if (const auto* i = std::get_if<int64_t>(&v)) {
        found = *i;
      }
    });
    return found;
  }

  // Filled by Flushed().
  CollectedSpans server_collected_, client_collected_;
  std::vector<SpanData> server_spans_, client_spans_;
  void Flushed() {
    ASSERT_TRUE(client_tracer_->Flush(absl::Seconds(10)));
    ASSERT_TRUE(server_tracer_->Flush(absl::Seconds(10)));
    client_spans_ = client_collected_.Take();
    server_spans_ = server_collected_.Take();
  }
  std::unique_ptr<Tracer> server_tracer_, client_tracer_;
  Receiver receiver_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<TraceService::Stub> stub_;
};

TEST_F(GrpcTracingTest, ClientAndServerSpansChainUnderTheCallersContext) {
  ASSERT_TRUE(Call(kParent, false).ok());
  Flushed();
  ASSERT_EQ(client_spans_.size(), 1u);
  ASSERT_EQ(server_spans_.size(), 1u);
  const SpanData& client = client_spans_[0];
  const SpanData& server = server_spans_[0];
  EXPECT_EQ(client.name, "opentelemetry.proto.collector.trace.v1.TraceService/Export");
  EXPECT_EQ(client.kind, SpanKind::kClient);
  EXPECT_EQ(server.kind, SpanKind::kServer);
  EXPECT_EQ(ToHex(client.context.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(ToHex(client.parent_span_id), "00f067aa0ba902b7");
  EXPECT_EQ(server.context.trace_id, client.context.trace_id);
  EXPECT_EQ(server.parent_span_id, client.context.span_id);
  // The handler saw the server span's own context.
  EXPECT_EQ(receiver_.seen_traceparent, FormatTraceparent(server.context));
  EXPECT_EQ(std::get<std::string>(*Attr(server, "rpc.system")), "grpc");
  EXPECT_EQ(std::get<std::string>(*Attr(server, "rpc.service")), "opentelemetry.proto.collector.trace.v1.TraceService");
  EXPECT_EQ(std::get<std::string>(*Attr(server, "rpc.method")), "Export");
  EXPECT_EQ(std::get<int64_t>(*Attr(server, "rpc.grpc.status_code")), 0);
  EXPECT_EQ(server.status, StatusCode::kOk);
  EXPECT_LE(client.start_unix_ns, server.start_unix_ns);
  EXPECT_GE(client.end_unix_ns, server.end_unix_ns);
}

TEST_F(GrpcTracingTest, ErrorsSetTheStatusAndCallsWithoutContextGetOnlyAServerSpan) {
  EXPECT_EQ(Call(kParent, true).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(Call("", false).ok());
  Flushed();
  ASSERT_EQ(client_spans_.size(), 1u);
  EXPECT_EQ(client_spans_[0].status, StatusCode::kError);
  EXPECT_EQ(client_spans_[0].status_message, "full");
  ASSERT_EQ(server_spans_.size(), 2u);
  EXPECT_EQ(server_spans_[0].status, StatusCode::kError);
  EXPECT_EQ(std::get<int64_t>(*Attr(server_spans_[0], "rpc.grpc.status_code")), 8);
  // The call without a traceparent: a root server span, and the handler still got a context to pass on.
  EXPECT_EQ(server_spans_[1].parent_span_id, SpanId{});
  EXPECT_EQ(receiver_.seen_traceparent, FormatTraceparent(server_spans_[1].context));
}

TEST_F(GrpcTracingTest, OtlpExporterSendsTheSpans) {
  TracingConfig config = Config("abode-test");
  config.endpoint = "127.0.0.1:" + std::to_string(port_);
  auto tracer = *Tracer::Start(config);
  tracer->StartSpan("one", SpanKind::kInternal, kParent).SetAttribute("pool", "pods");
  ASSERT_TRUE(tracer->Flush(absl::Seconds(10)));
  absl::MutexLock lock(&receiver_.mu_);
  ASSERT_EQ(receiver_.requests.size(), 1u);
  const auto& span = receiver_.requests[0].resource_spans(0).scope_spans(0).spans(0);
  EXPECT_EQ(span.name(), "one");
  EXPECT_EQ(span.parent_span_id(), std::string("\x00\xf0\x67\xaa\x0b\xa9\x02\xb7", 8));
  double exported = 0;
  for (const auto& f : tracer->metrics()->Collect()) {
    if (f.name == "abode_trace_export_spans_total") exported = f.metric[0].counter.value;
  }
  EXPECT_EQ(exported, 1);
}

}  // namespace
}  // namespace abode::tracing

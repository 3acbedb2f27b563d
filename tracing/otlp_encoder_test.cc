// EncodeOtlp's bytes, read back with the code generated from proto/opentelemetry/ (abode's copy of the
// opentelemetry-proto v1.5.0 messages): every field where the specification puts it, and nothing the
// generated parser does not know.
#include "tracing/otlp_encoder.h"

#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <string>

#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"

namespace abode::tracing {
namespace {

using opentelemetry::proto::collector::trace::v1::ExportTraceServiceRequest;
namespace otlp_common = opentelemetry::proto::common::v1;
namespace otlp_trace = opentelemetry::proto::trace::v1;

constexpr char kParent[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

// Whether `message` or any message inside it holds fields the generated parser did not recognise (a wrong
// field number or wire type lands there).
bool HasUnknownFields(const google::protobuf::Message& message) {
  const google::protobuf::Reflection* r = message.GetReflection();
  if (r->GetUnknownFields(message).field_count() > 0) return true;
  std::vector<const google::protobuf::FieldDescriptor*> fields;
  r->ListFields(message, &fields);
  for (const auto* f : fields) {
    if (f->cpp_type() != google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE) continue;
    if (f->is_repeated()) {
      for (int i = 0; i < r->FieldSize(message, f); ++i) {
        if (HasUnknownFields(r->GetRepeatedMessage(message, f, i))) return true;
      }
    } else if (HasUnknownFields(r->GetMessage(message, f))) {
      return true;
    }
  }
  return false;
}

ExportTraceServiceRequest Decode(const TracingConfig& config, const SpanBatch& spans) {
  std::string bytes;
  EncodeOtlp(config, spans, &bytes);
  ExportTraceServiceRequest request;
  EXPECT_TRUE(request.ParseFromString(bytes));
  EXPECT_FALSE(HasUnknownFields(request)) << request.DebugString();
  return request;
}

std::string Text(const otlp_common::KeyValue& kv) { return kv.value().string_value(); }

TracingConfig Config() {
  TracingConfig config;
  config.enabled = true;
  config.service_name = "abode-test";
  config.resource = {{"service.instance.id", "m1"}};
  return config;
}

std::unique_ptr<SpanData> FullSpan() {
  auto span = std::make_unique<SpanData>();
  span->context = *ParseTraceparent(kParent);
  span->parent_span_id = {1, 2, 3, 4, 5, 6, 7, 8};
  span->parent_remote = true;
  span->name = "abode.v1.Allocator/Allocate";
  span->kind = SpanKind::kServer;
  span->start_unix_ns = 1'700'000'000'123'456'789;
  span->end_unix_ns = 1'700'000'000'223'456'789;
  span->attributes = {{"abode.pool", std::string("pods")},
                      {"abode.empty", std::string()},
                      {"abode.zero", int64_t{0}},
                      {"abode.negative", int64_t{-5}},
                      {"abode.ratio", 0.25},
                      {"abode.flag", true},
                      {"abode.long", std::string(300, 'x')}};
  span->grpc_call = true;
  span->grpc_status_code = 8;
  span->events.push_back(SpanEvent{1'700'000'000'200'000'000, "command refused",
                                   {{"abode.error_code", std::string("RESOURCE_EXHAUSTED")}, {"abode.n", int64_t{2}}}});
  span->links = {*ParseTraceparent("00-11111111111111111111111111111111-2222222222222222-01"),
                 *ParseTraceparent("00-33333333333333333333333333333333-4444444444444444-00")};
  span->status = StatusCode::kError;
  span->status_message = "pool full";
  return span;
}

TEST(OtlpEncoder, WritesEveryFieldOfASpan) {
  SpanBatch batch;
  batch.push_back(FullSpan());
  const ExportTraceServiceRequest request = Decode(Config(), batch);
  ASSERT_EQ(request.resource_spans_size(), 1);
  const auto& rs = request.resource_spans(0);
  ASSERT_EQ(rs.resource().attributes_size(), 4);
  EXPECT_EQ(rs.resource().attributes(0).key(), "service.name");
  EXPECT_EQ(Text(rs.resource().attributes(0)), "abode-test");
  EXPECT_EQ(rs.resource().attributes(1).key(), "telemetry.sdk.name");
  EXPECT_EQ(Text(rs.resource().attributes(1)), "abode");
  EXPECT_EQ(rs.resource().attributes(2).key(), "telemetry.sdk.language");
  EXPECT_EQ(Text(rs.resource().attributes(2)), "cpp");
  EXPECT_EQ(rs.resource().attributes(3).key(), "service.instance.id");
  EXPECT_EQ(Text(rs.resource().attributes(3)), "m1");
  ASSERT_EQ(rs.scope_spans_size(), 1);
  EXPECT_EQ(rs.scope_spans(0).scope().name(), "abode");
  ASSERT_EQ(rs.scope_spans(0).spans_size(), 1);

  const otlp_trace::Span& s = rs.scope_spans(0).spans(0);
  EXPECT_EQ(s.trace_id(), std::string("\x4b\xf9\x2f\x35\x77\xb3\x4d\xa6\xa3\xce\x92\x9d\x0e\x0e\x47\x36", 16));
  EXPECT_EQ(s.span_id(), std::string("\x00\xf0\x67\xaa\x0b\xa9\x02\xb7", 8));
  EXPECT_EQ(s.parent_span_id(), std::string("\x01\x02\x03\x04\x05\x06\x07\x08", 8));
  EXPECT_EQ(s.flags(), 0x301u);
  EXPECT_EQ(s.name(), "abode.v1.Allocator/Allocate");
  EXPECT_EQ(s.kind(), otlp_trace::Span::SPAN_KIND_SERVER);
  EXPECT_EQ(s.start_time_unix_nano(), 1'700'000'000'123'456'789u);
  EXPECT_EQ(s.end_time_unix_nano(), 1'700'000'000'223'456'789u);

  ASSERT_EQ(s.attributes_size(), 11);
  EXPECT_EQ(s.attributes(0).key(), "abode.pool");
  EXPECT_EQ(s.attributes(0).value().value_case(), otlp_common::AnyValue::kStringValue);
  EXPECT_EQ(Text(s.attributes(0)), "pods");
  EXPECT_EQ(s.attributes(1).value().value_case(), otlp_common::AnyValue::kStringValue) << "an empty string is set";
  EXPECT_EQ(Text(s.attributes(1)), "");
  EXPECT_EQ(s.attributes(2).value().value_case(), otlp_common::AnyValue::kIntValue) << "a zero is set";
  EXPECT_EQ(s.attributes(2).value().int_value(), 0);
  EXPECT_EQ(s.attributes(3).value().int_value(), -5);
  EXPECT_EQ(s.attributes(4).value().value_case(), otlp_common::AnyValue::kDoubleValue);
  EXPECT_EQ(s.attributes(4).value().double_value(), 0.25);
  EXPECT_EQ(s.attributes(5).value().value_case(), otlp_common::AnyValue::kBoolValue);
  EXPECT_TRUE(s.attributes(5).value().bool_value());
  EXPECT_EQ(Text(s.attributes(6)), std::string(300, 'x')) << "a length past one varint byte";
  EXPECT_EQ(s.attributes(7).key(), "rpc.system");
  EXPECT_EQ(Text(s.attributes(7)), "grpc");
  EXPECT_EQ(s.attributes(8).key(), "rpc.service");
  EXPECT_EQ(Text(s.attributes(8)), "abode.v1.Allocator");
  EXPECT_EQ(s.attributes(9).key(), "rpc.method");
  EXPECT_EQ(Text(s.attributes(9)), "Allocate");
  EXPECT_EQ(s.attributes(10).key(), "rpc.grpc.status_code");
  EXPECT_EQ(s.attributes(10).value().int_value(), 8);

  ASSERT_EQ(s.events_size(), 1);
  EXPECT_EQ(s.events(0).time_unix_nano(), 1'700'000'000'200'000'000u);
  EXPECT_EQ(s.events(0).name(), "command refused");
  ASSERT_EQ(s.events(0).attributes_size(), 2);
  EXPECT_EQ(Text(s.events(0).attributes(0)), "RESOURCE_EXHAUSTED");
  EXPECT_EQ(s.events(0).attributes(1).value().int_value(), 2);

  ASSERT_EQ(s.links_size(), 2);
  EXPECT_EQ(s.links(0).trace_id(), std::string(16, '\x11'));
  EXPECT_EQ(s.links(0).span_id(), std::string(8, '\x22'));
  EXPECT_EQ(s.links(0).flags(), 0x301u);
  EXPECT_EQ(s.links(1).trace_id(), std::string(16, '\x33'));
  EXPECT_EQ(s.links(1).flags(), 0x300u);

  EXPECT_EQ(s.status().code(), otlp_trace::Status::STATUS_CODE_ERROR);
  EXPECT_EQ(s.status().message(), "pool full");
}

TEST(OtlpEncoder, ARootSpanWithoutStatusHasNoParentNorStatus) {
  SpanBatch batch;
  batch.push_back(std::make_unique<SpanData>());
  batch[0]->context = *ParseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
  batch[0]->name = "raft.commit";
  batch.push_back(std::make_unique<SpanData>(*batch[0]));
  batch[1]->status = StatusCode::kOk;
  batch[1]->status_message = "ignored unless an error";
  const ExportTraceServiceRequest request = Decode(Config(), batch);
  const auto& spans = request.resource_spans(0).scope_spans(0).spans();
  ASSERT_EQ(spans.size(), 2);
  EXPECT_EQ(spans[0].parent_span_id(), "");
  EXPECT_EQ(spans[0].flags(), 0x100u);
  EXPECT_EQ(spans[0].kind(), otlp_trace::Span::SPAN_KIND_INTERNAL);
  EXPECT_FALSE(spans[0].has_status());
  EXPECT_EQ(spans[0].attributes_size(), 0);
  EXPECT_EQ(spans[1].status().code(), otlp_trace::Status::STATUS_CODE_OK);
  EXPECT_EQ(spans[1].status().message(), "");
}

TEST(OtlpEncoder, GroupsSpansByServiceInTheOrderServicesFirstAppear) {
  SpanBatch batch;
  for (const char* service : {"", "abode-cni", "", "abode-cni", ""}) {
    batch.push_back(FullSpan());
    batch.back()->service_name = service;
    batch.back()->name = std::string("from ") + (*service ? service : "own");
  }
  const ExportTraceServiceRequest request = Decode(Config(), batch);
  ASSERT_EQ(request.resource_spans_size(), 2);
  EXPECT_EQ(Text(request.resource_spans(0).resource().attributes(0)), "abode-test");
  EXPECT_EQ(Text(request.resource_spans(1).resource().attributes(0)), "abode-cni");
  EXPECT_EQ(Text(request.resource_spans(1).resource().attributes(3)), "m1") << "the process's resource otherwise";
  ASSERT_EQ(request.resource_spans(0).scope_spans(0).spans_size(), 3);
  ASSERT_EQ(request.resource_spans(1).scope_spans(0).spans_size(), 2);
  for (const auto& s : request.resource_spans(0).scope_spans(0).spans()) EXPECT_EQ(s.name(), "from own");
  for (const auto& s : request.resource_spans(1).scope_spans(0).spans()) EXPECT_EQ(s.name(), "from abode-cni");
}

TEST(OtlpEncoder, ALargeBatchKeepsEverySpan) {
  SpanBatch batch;
  for (int i = 0; i < 600; ++i) {
    batch.push_back(FullSpan());
    batch.back()->start_unix_ns = i;
  }
  std::string reused(1 << 16, 'z');  // what a previous export left: replaced, not appended to
  EncodeOtlp(Config(), batch, &reused);
  ExportTraceServiceRequest request;
  ASSERT_TRUE(request.ParseFromString(reused));
  const auto& spans = request.resource_spans(0).scope_spans(0).spans();
  ASSERT_EQ(spans.size(), 600);
  for (int i = 0; i < 600; ++i) EXPECT_EQ(spans[i].start_time_unix_nano(), static_cast<uint64_t>(i));
}

// A length is written after its contents: one byte for a tiny span, three for one over 16 KiB (an entry's
// span linking to very many callers), two otherwise. Each must come out whole, beside its neighbours.
TEST(OtlpEncoder, SpansOfEverySizeComeOutWhole) {
  SpanBatch batch;
  auto tiny = std::make_unique<SpanData>();
  tiny->context = *ParseTraceparent(kParent);
  tiny->name = "t";
  batch.push_back(std::move(tiny));
  auto huge = FullSpan();
  huge->name = "huge";
  huge->links.assign(1000, *ParseTraceparent("00-11111111111111111111111111111111-2222222222222222-01"));
  huge->events.push_back(SpanEvent{5, "big event", {{"abode.blob", std::string(20000, 'b')}}});
  batch.push_back(std::move(huge));
  batch.push_back(FullSpan());
  const ExportTraceServiceRequest request = Decode(Config(), batch);
  const auto& spans = request.resource_spans(0).scope_spans(0).spans();
  ASSERT_EQ(spans.size(), 3);
  EXPECT_EQ(spans[0].name(), "t");
  EXPECT_EQ(spans[0].attributes_size(), 0);
  EXPECT_EQ(spans[1].name(), "huge");
  EXPECT_EQ(spans[1].links_size(), 1000);
  ASSERT_EQ(spans[1].events_size(), 2);
  EXPECT_EQ(spans[1].events(1).attributes(0).value().string_value(), std::string(20000, 'b'));
  EXPECT_EQ(spans[2].name(), "abode.v1.Allocator/Allocate");
  EXPECT_EQ(spans[2].attributes_size(), 11);
  EXPECT_EQ(request.resource_spans(0).resource().attributes(0).value().string_value(), "abode-test");
}

}  // namespace
}  // namespace abode::tracing

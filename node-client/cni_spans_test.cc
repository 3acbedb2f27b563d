#include "cni_spans.h"

#include <gtest/gtest.h>

#include "tracing/collecting_exporter.h"
#include "tracing/current_span.h"

namespace abode::node {
namespace {

using tracing::CollectedSpans;
using tracing::ParseTraceparent;
using tracing::ToHex;

constexpr char kPlugin[] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
constexpr char kRuntime[] = "00-0af7651916cd43dd8448eb211c80319c-1111111111111111-01";

const tracing::AttributeValue* Attr(const tracing::SpanData& s, const std::string& key) {
  for (const auto& [k, v] : s.attributes) {
    if (k == key) return &v;
  }
  return nullptr;
}

TEST(CniSpans, TheHandlerRunsUnderTheNodesSpanAChildOfThePlugins) {
  CollectedSpans collected;
  auto tracer = tracing::CollectingTracer(&collected);
  cni::LocalRequest request;
  request.verb = "ADD";
  request.container_id = "c1";
  request.ifname = "eth0";
  request.traceparent = kPlugin;
  std::string seen;
  std::string logged_span;
  cni::LocalResponse response = HandleTraced(*tracer, "node-a", request, [&](const cni::LocalRequest& r) {
    seen = r.traceparent;
    logged_span = tracing::CurrentLogIds().span_id;
    cni::LocalResponse ok;
    ok.ips.push_back(cni::AllocatedIp{"10.1.0.7", 24, "", "pods"});
    return ok;
  });
  EXPECT_FALSE(response.error);
  ASSERT_TRUE(tracer->Flush(absl::Seconds(10)));
  auto spans = collected.Take();
  ASSERT_EQ(spans.size(), 1u);
  const tracing::SpanData& node = spans[0];
  EXPECT_EQ(node.name, "cni ADD");
  EXPECT_EQ(node.kind, tracing::SpanKind::kServer);
  EXPECT_EQ(ToHex(node.parent_span_id), "b7ad6b7169203331");
  EXPECT_EQ(seen, tracing::FormatTraceparent(node.context));
  EXPECT_EQ(logged_span, ToHex(node.context.span_id));
  EXPECT_EQ(std::get<std::string>(*Attr(node, "abode.address")), "10.1.0.7");
  EXPECT_EQ(std::get<std::string>(*Attr(node, "cni.container_id")), "c1");
  EXPECT_EQ(node.status, tracing::StatusCode::kOk);
  EXPECT_EQ(tracing::CurrentSpanContext(), nullptr);
}

TEST(CniSpans, AFailedRequestIsAnError) {
  CollectedSpans collected;
  auto tracer = tracing::CollectingTracer(&collected);
  cni::LocalRequest request;
  request.verb = "ADD";
  request.traceparent = kPlugin;
  HandleTraced(*tracer, "node-a", request, [](const cni::LocalRequest&) {
    cni::LocalResponse full;
    full.error = cni::CniError{cni::kPoolExhausted, "pool \"pods\" is full", ""};
    return full;
  });
  ASSERT_TRUE(tracer->Flush(absl::Seconds(10)));
  auto spans = collected.Take();
  ASSERT_EQ(spans.size(), 1u);
  EXPECT_EQ(spans[0].status, tracing::StatusCode::kError);
  EXPECT_EQ(spans[0].status_message, "pool \"pods\" is full");
}

TEST(CniSpans, ThePluginsSpanIsRecordedAsAbodeCniWithItsOwnTimes) {
  CollectedSpans collected;
  auto tracer = tracing::CollectingTracer(&collected);
  CniRequestRecord record;
  record.verb = "ADD";
  record.code = cni::kPoolExhausted;
  record.message = "full";
  record.traceparent = kPlugin;
  record.parent_traceparent = kRuntime;
  record.container_id = "c1";
  record.plugin_start_unix_ns = 1'000'000'000;
  record.plugin_end_unix_ns = 1'004'000'000;
  RecordPluginSpan(*tracer, "node-a", record);
  // Nothing for a plugin that sent no times, or no sampled context.
  CniRequestRecord untimed = record;
  untimed.plugin_end_unix_ns = 0;
  RecordPluginSpan(*tracer, "node-a", untimed);
  CniRequestRecord unsampled = record;
  unsampled.traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
  RecordPluginSpan(*tracer, "node-a", unsampled);
  ASSERT_TRUE(tracer->Flush(absl::Seconds(10)));
  auto spans = collected.Take();
  ASSERT_EQ(spans.size(), 1u);
  const tracing::SpanData& plugin = spans[0];
  EXPECT_EQ(plugin.service_name, "abode-cni");
  EXPECT_EQ(plugin.context, *ParseTraceparent(kPlugin));
  EXPECT_EQ(ToHex(plugin.parent_span_id), "1111111111111111");
  EXPECT_EQ(plugin.start_unix_ns, 1'000'000'000);
  EXPECT_EQ(plugin.end_unix_ns, 1'004'000'000);
  EXPECT_EQ(plugin.kind, tracing::SpanKind::kClient);
  EXPECT_EQ(plugin.status, tracing::StatusCode::kError);
  EXPECT_EQ(std::get<int64_t>(*Attr(plugin, "cni.error_code")), cni::kPoolExhausted);
}

}  // namespace
}  // namespace abode::node

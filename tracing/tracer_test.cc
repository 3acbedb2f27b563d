#include "tracing/tracer.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <thread>
#include <vector>
#include <prometheus/metric_family.h>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "tracing/collecting_exporter.h"
#include "tracing/span_exporter.h"

namespace abode::tracing {
namespace {

namespace otlp_trace = opentelemetry::proto::trace::v1;

constexpr char kParent[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

// Keeps what it is given; optionally holds every export until released, or fails them.
class RecordingExporter final : public SpanExporter {
 public:
  absl::Status Export(const std::vector<SpanData>& spans) override {
    if (hold_ != nullptr) hold_->WaitForNotification();
    absl::MutexLock lock(&mu_);
    ++calls_;
    if (fail_) return absl::UnavailableError("receiver down");
    spans_.insert(spans_.end(), spans.begin(), spans.end());
    return absl::OkStatus();
  }
  std::vector<SpanData> spans() {
    absl::MutexLock lock(&mu_);
    return spans_;
  }
  absl::Notification* hold_ = nullptr;
  bool fail_ = false;

 private:
  absl::Mutex mu_;
  int calls_ = 0;
  std::vector<SpanData> spans_;
};

TracingConfig Enabled() {
  TracingConfig c;
  c.enabled = true;
  c.endpoint = "unused:1";
  c.service_name = "abode-test";
  return c;
}

std::unique_ptr<Tracer> Make(const TracingConfig& config, RecordingExporter** exporter) {
  auto owned = std::make_unique<RecordingExporter>();
  *exporter = owned.get();
  auto tracer = Tracer::Start(config, std::move(owned));
  EXPECT_TRUE(tracer.ok()) << tracer.status();
  return std::move(*tracer);
}

TEST(Tracer, RecordsAChildSpanWithEverythingSetOnIt) {
  RecordingExporter* exporter;
  auto tracer = Make(Enabled(), &exporter);
  SpanContext child_context;
  {
    Span span = tracer->StartSpan("work", SpanKind::kServer, kParent);
    ASSERT_TRUE(span.recording());
    child_context = span.context();
    span.SetAttribute("pool", "pods").SetAttribute("raft.index", uint64_t{42}).SetAttribute("ok", true);
    span.AddEvent("midway", {{"n", int64_t{3}}});
    span.AddLink(*ParseTraceparent("00-11111111111111111111111111111111-2222222222222222-01"));
    span.SetError("pool full");
    span.SetOk();  // does not clear the error
  }
  ASSERT_TRUE(tracer->Flush(absl::Seconds(10)));
  auto spans = exporter->spans();
  ASSERT_EQ(spans.size(), 1u);
  const SpanData& s = spans[0];
  EXPECT_EQ(s.name, "work");
  EXPECT_EQ(s.kind, SpanKind::kServer);
  EXPECT_EQ(ToHex(s.context.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(ToHex(s.parent_span_id), "00f067aa0ba902b7");
  EXPECT_TRUE(s.parent_remote);
  EXPECT_EQ(s.context, child_context);
  EXPECT_LE(s.start_unix_ns, s.end_unix_ns);
  EXPECT_GT(s.start_unix_ns, 0);
  ASSERT_EQ(s.attributes.size(), 3u);
  EXPECT_EQ(std::get<std::string>(s.attributes[0].second), "pods");
  EXPECT_EQ(std::get<int64_t>(s.attributes[1].second), 42);
  ASSERT_EQ(s.events.size(), 1u);
  EXPECT_EQ(s.events[0].name, "midway");
  ASSERT_EQ(s.links.size(), 1u);
  EXPECT_EQ(s.status, StatusCode::kError);
  EXPECT_EQ(s.status_message, "pool full");
}

TEST(Tracer, SamplesByParentThenByRatio) {
  TracingConfig config = Enabled();
  config.ratio = 0;
  RecordingExporter* exporter;
  auto tracer = Make(config, &exporter);
  // A sampled parent is followed even at ratio 0; an unsampled one too, but its context still passes on.
  EXPECT_TRUE(tracer->StartSpan("a", SpanKind::kInternal, kParent).recording());
  Span unsampled = tracer->StartSpan("b", SpanKind::kInternal, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
  EXPECT_FALSE(unsampled.recording());
  EXPECT_EQ(ToHex(unsampled.context().trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_FALSE(unsampled.context().sampled);
  // A root at ratio 0: not sampled.
  EXPECT_FALSE(tracer->StartSpan("c", SpanKind::kInternal, "").recording());

  config.ratio = 0.5;
  auto half = Make(config, &exporter);
  int sampled = 0;
  for (int i = 0; i < 2000; ++i) sampled += half->StartSpan("r", SpanKind::kInternal, "").recording() ? 1 : 0;
  EXPECT_GT(sampled, 800);
  EXPECT_LT(sampled, 1200);
}

TEST(Tracer, IdsAreUniqueAcrossThreadsAndTracers) {
  RecordingExporter* exporter;
  auto one = Make(Enabled(), &exporter);
  auto two = Make(Enabled(), &exporter);
  // Spans on four threads of one tracer, and on another tracer (another process, as far as ids go).
  std::vector<std::vector<SpanContext>> made(5);
  std::vector<std::thread> threads;
  for (int t = 0; t < 5; ++t) {
    threads.emplace_back([&, t] {
      Tracer& tracer = t < 4 ? *one : *two;
      for (int i = 0; i < 2000; ++i) {
        Span span = tracer.StartSpan("s", SpanKind::kInternal, "");
        made[t].push_back(span.context());
      }
    });
  }
  for (auto& t : threads) t.join();
  std::set<std::string> trace_ids, span_ids;
  for (const auto& contexts : made) {
    for (const SpanContext& c : contexts) {
      EXPECT_TRUE(c.valid());
      trace_ids.insert(ToHex(c.trace_id));
      span_ids.insert(ToHex(c.span_id));
    }
  }
  EXPECT_EQ(trace_ids.size(), 10000u);
  EXPECT_EQ(span_ids.size(), 10000u);
}

TEST(Tracer, ALinkedSpanIsANewTraceSampledWhenACallerIs) {
  TracingConfig config = Enabled();
  config.ratio = 0;
  RecordingExporter* exporter;
  auto tracer = Make(config, &exporter);
  const SpanContext sampled = *ParseTraceparent(kParent);
  const SpanContext unsampled = *ParseTraceparent("00-11111111111111111111111111111111-2222222222222222-00");
  {
    Span both = tracer->StartLinkedSpan("batch", SpanKind::kInternal, {unsampled, sampled});
    EXPECT_TRUE(both.recording());
    EXPECT_NE(both.context().trace_id, sampled.trace_id);
  }
  EXPECT_FALSE(tracer->StartLinkedSpan("batch", SpanKind::kInternal, {unsampled}).recording());
  ASSERT_TRUE(tracer->Flush(absl::Seconds(10)));
  auto spans = exporter->spans();
  ASSERT_EQ(spans.size(), 1u);
  EXPECT_EQ(spans[0].parent_span_id, SpanId{});
  ASSERT_EQ(spans[0].links.size(), 2u);
  EXPECT_EQ(spans[0].links[1], sampled);
}

TEST(Tracer, DisabledRecordsNothingButPassesTheParentOn) {
  TracingConfig config = Enabled();
  config.enabled = false;
  auto tracer = Tracer::Start(config);
  ASSERT_TRUE(tracer.ok());
  Span span = (*tracer)->StartSpan("x", SpanKind::kServer, kParent);
  EXPECT_FALSE(span.recording());
  EXPECT_EQ(span.traceparent(), kParent);
  EXPECT_EQ((*tracer)->StartSpan("y", SpanKind::kServer, "").traceparent(), "");
}

TEST(Tracer, AFullQueueDropsAndCountsWithoutBlocking) {
  TracingConfig config = Enabled();
  config.max_queue_spans = 4;
  config.max_batch_spans = 1;
  absl::Notification release;
  RecordingExporter* exporter;
  auto owned = std::make_unique<RecordingExporter>();
  exporter = owned.get();
  exporter->hold_ = &release;
  auto tracer = *Tracer::Start(config, std::move(owned));
  // One span is taken by the export thread (held there), four fill the queue, the rest are dropped.
  tracer->StartSpan("first", SpanKind::kInternal, "").End();
  auto series = [&](const std::string& name) {
    for (const auto& f : tracer->metrics()->Collect()) {
      if (f.name == name) {
        return f.type == prometheus::MetricType::Gauge ? f.metric[0].gauge.value : f.metric[0].counter.value;
      }
    }
    return -1.0;
  };
  // Wait until the export thread holds the first span (the queue is empty again), without sleeping.
  while (series("abode_trace_export_queue_length") != 0) std::this_thread::yield();
  for (int i = 0; i < 10; ++i) tracer->StartSpan("more", SpanKind::kInternal, "").End();
  EXPECT_EQ(series("abode_trace_export_queue_length"), 4);
  EXPECT_EQ(series("abode_trace_export_dropped_total"), 6);
  release.Notify();
  ASSERT_TRUE(tracer->Flush(absl::Seconds(10)));
  EXPECT_EQ(exporter->spans().size(), 5u);
  EXPECT_EQ(series("abode_trace_export_spans_total"), 5);
  EXPECT_EQ(series("abode_trace_export_errors_total"), 0);
}

TEST(Tracer, ExportErrorsAreCounted) {
  RecordingExporter* exporter;
  auto tracer = Make(Enabled(), &exporter);
  exporter->fail_ = true;
  tracer->StartSpan("lost", SpanKind::kInternal, "").End();
  ASSERT_TRUE(tracer->Flush(absl::Seconds(10)));
  double errors = -1;
  for (const auto& f : tracer->metrics()->Collect()) {
    if (f.name == "abode_trace_export_errors_total") errors = f.metric[0].counter.value;
  }
  EXPECT_EQ(errors, 1);
}

TEST(Tracer, ShutdownExportsWhatIsQueued) {
  TracingConfig config = Enabled();
  config.schedule_delay = absl::Hours(1);
  CollectedSpans received;
  auto tracer = *Tracer::Start(config, std::make_unique<CollectingExporter>(&received));
  for (int i = 0; i < 3; ++i) tracer->StartSpan("s", SpanKind::kInternal, "").End();
  tracer.reset();
  EXPECT_EQ(received.Take().size(), 3u);
}

TEST(Otlp, GroupsByServiceAndSetsWireFields) {
  TracingConfig config = Enabled();
  config.resource = {{"service.instance.id", "m1"}};
  SpanData own;
  own.context = *ParseTraceparent(kParent);
  own.parent_span_id = {1, 2, 3, 4, 5, 6, 7, 8};
  own.parent_remote = true;
  own.name = "abode.v1.Allocator/Allocate";
  own.kind = SpanKind::kServer;
  own.start_unix_ns = 1000;
  own.end_unix_ns = 2000;
  own.attributes = {{"rpc.grpc.status_code", int64_t{8}}};
  own.status = StatusCode::kError;
  own.status_message = "full";
  own.links = {*ParseTraceparent("00-11111111111111111111111111111111-2222222222222222-01")};
  SpanData plugin = own;
  plugin.service_name = "abode-cni";
  auto request = ToOtlp(config, {own, plugin, own});
  ASSERT_EQ(request.resource_spans_size(), 2);
  const auto& rs = request.resource_spans(0);
  EXPECT_EQ(rs.resource().attributes(0).key(), "service.name");
  EXPECT_EQ(rs.resource().attributes(0).value().string_value(), "abode-test");
  EXPECT_EQ(request.resource_spans(1).resource().attributes(0).value().string_value(), "abode-cni");
  ASSERT_EQ(rs.scope_spans(0).spans_size(), 2);
  const otlp_trace::Span& s = rs.scope_spans(0).spans(0);
  EXPECT_EQ(s.trace_id().size(), 16u);
  EXPECT_EQ(s.span_id().size(), 8u);
  EXPECT_EQ(s.parent_span_id(), std::string("\x01\x02\x03\x04\x05\x06\x07\x08", 8));
  EXPECT_EQ(s.flags(), 0x301u);
  EXPECT_EQ(s.kind(), otlp_trace::Span::SPAN_KIND_SERVER);
  EXPECT_EQ(s.start_time_unix_nano(), 1000u);
  EXPECT_EQ(s.status().code(), otlp_trace::Status::STATUS_CODE_ERROR);
  EXPECT_EQ(s.status().message(), "full");
  EXPECT_EQ(s.attributes(0).value().int_value(), 8);
  EXPECT_EQ(s.links_size(), 1);
}

}  // namespace
}  // namespace abode::tracing

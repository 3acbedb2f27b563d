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

constexpr char kParent[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

// Keeps what it is given; optionally holds every export until released, or fails them.
class RecordingExporter final : public SpanExporter {
 public:
  absl::Status Export(const SpanBatch& spans) override {
    if (hold_ != nullptr) hold_->WaitForNotification();
    absl::MutexLock lock(&mu_);
    ++calls_;
    if (fail_) return absl::UnavailableError("receiver down");
    for (const auto& span : spans) spans_.push_back(*span);
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

TEST(Tracer, ASpanRecordedIntoARecycledOneCarriesNothingOfIt) {
  TracingConfig config = Enabled();
  config.max_batch_spans = 1;
  RecordingExporter* exporter;
  auto tracer = Make(config, &exporter);
  {
    Span full = tracer->StartSpan("abode.v1.Allocator/Allocate", SpanKind::kServer, kParent);
    full.SetAttribute("pool", "pods").AddEvent("midway", {{"n", int64_t{3}}}).MarkGrpcCall().SetGrpcStatusCode(8);
    full.AddLink(*ParseTraceparent("00-11111111111111111111111111111111-2222222222222222-01")).SetError("full");
  }
  ASSERT_TRUE(tracer->Flush(absl::Seconds(10)));
  // The export thread has put the first span's data back in the pool: the next span is recorded into it.
  tracer->StartSpan("plain", SpanKind::kInternal, "").End();
  ASSERT_TRUE(tracer->Flush(absl::Seconds(10)));
  auto spans = exporter->spans();
  ASSERT_EQ(spans.size(), 2u);
  EXPECT_TRUE(spans[0].grpc_call);
  EXPECT_EQ(spans[0].attributes.size(), 1u);
  const SpanData& plain = spans[1];
  EXPECT_EQ(plain.name, "plain");
  EXPECT_EQ(plain.kind, SpanKind::kInternal);
  EXPECT_EQ(plain.parent_span_id, SpanId{});
  EXPECT_FALSE(plain.parent_remote);
  EXPECT_TRUE(plain.attributes.empty());
  EXPECT_TRUE(plain.events.empty());
  EXPECT_TRUE(plain.links.empty());
  EXPECT_EQ(plain.status, StatusCode::kUnset);
  EXPECT_EQ(plain.status_message, "");
  EXPECT_FALSE(plain.grpc_call);
  EXPECT_EQ(plain.grpc_status_code, -1);
  int attributes = 0;
  ForEachAttribute(plain, [&](std::string_view, const AttributeRef&) { ++attributes; });
  EXPECT_EQ(attributes, 0);
}

TEST(Tracer, AGrpcCallIsExportedWithItsRpcAttributes) {
  RecordingExporter* exporter;
  auto tracer = Make(Enabled(), &exporter);
  tracer->StartSpan("abode.v1.Allocator/Allocate", SpanKind::kServer, "")
      .SetAttribute("abode.pool", "pods")
      .MarkGrpcCall()
      .SetGrpcStatusCode(0);
  tracer->StartSpan("abode.v1.Allocator/Release", SpanKind::kServer, "").MarkGrpcCall();  // no status yet
  ASSERT_TRUE(tracer->Flush(absl::Seconds(10)));
  auto spans = exporter->spans();
  ASSERT_EQ(spans.size(), 2u);
  auto attributes = [](const SpanData& s) {
    std::vector<std::pair<std::string, std::string>> out;
    ForEachAttribute(s, [&](std::string_view key, const AttributeRef& v) {
      const auto* text = std::get_if<std::string_view>(&v);
      out.emplace_back(std::string(key), text ? std::string(*text) : std::to_string(std::get<int64_t>(v)));
    });
    return out;
  };
  using Pairs = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(attributes(spans[0]), (Pairs{{"abode.pool", "pods"},
                                         {"rpc.system", "grpc"},
                                         {"rpc.service", "abode.v1.Allocator"},
                                         {"rpc.method", "Allocate"},
                                         {"rpc.grpc.status_code", "0"}}));
  EXPECT_EQ(attributes(spans[1]),
            (Pairs{{"rpc.system", "grpc"}, {"rpc.service", "abode.v1.Allocator"}, {"rpc.method", "Release"}}));
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

}  // namespace
}  // namespace abode::tracing

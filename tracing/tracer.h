// abode's tracer: spans with attributes, events, links and status, sampled parent-based, exported in
// batches over OTLP/gRPC (span_exporter.h). Not a global: the daemon makes one Tracer and passes it to what
// it instruments. See docs/tracing.md for the spans abode records.
//
// Thread safety: a Tracer is thread-safe. A Span belongs to one thread at a time (move it between threads
// freely); ending it hands its data to the tracer's queue, which never blocks: when the queue is full the
// span is dropped and counted.
//
// Cost: recording allocates nothing once warm. A span's data comes from a pool the export thread refills
// after each export (strings and vectors keep their capacity), and facts that can be derived (a gRPC call's
// rpc.* attributes) are recorded as plain values and written out as attributes only when exported.
#ifndef ABODE_TRACING_TRACER_H_
#define ABODE_TRACING_TRACER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <prometheus/collectable.h>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tracing/config.h"
#include "tracing/trace_context.h"

namespace abode::tracing {

enum class SpanKind { kInternal = 1, kServer = 2, kClient = 3, kProducer = 4, kConsumer = 5 };
enum class StatusCode { kUnset = 0, kOk = 1, kError = 2 };

using AttributeValue = std::variant<std::string, int64_t, double, bool>;
using Attributes = std::vector<std::pair<std::string, AttributeValue>>;
// An attribute as exported, referring to the span's own storage.
using AttributeRef = std::variant<std::string_view, int64_t, double, bool>;
AttributeRef RefTo(const AttributeValue& value);

struct SpanEvent {
  int64_t time_unix_ns = 0;
  std::string name;
  Attributes attributes;
};

// Everything recorded about one span; what the exporter sends.
struct SpanData {
  SpanContext context;
  SpanId parent_span_id{};  // all zero: a root span
  bool parent_remote = false;
  std::string name;
  SpanKind kind = SpanKind::kInternal;
  int64_t start_unix_ns = 0;
  int64_t end_unix_ns = 0;
  Attributes attributes;
  std::vector<SpanEvent> events;
  std::vector<SpanContext> links;
  StatusCode status = StatusCode::kUnset;
  std::string status_message;
  // Exported under this service.name instead of the tracer's own ("" for the tracer's): a span recorded on
  // behalf of another program (the CNI plugin's).
  std::string service_name;
  // A gRPC call whose name is "pkg.Service/Method": exported with the attributes rpc.system "grpc",
  // rpc.service and rpc.method (from the name) and, once known (>= 0), rpc.grpc.status_code.
  bool grpc_call = false;
  int grpc_status_code = -1;

  // Back to a default-constructed span, keeping the capacity of its strings and vectors.
  void Reset();
};

// What the exporter is handed: ended spans, owned by the tracer's queue.
using SpanBatch = std::vector<std::unique_ptr<SpanData>>;

// Calls `visit` with every attribute `span` is exported with: its own, then those derived for a gRPC call.
void ForEachAttribute(const SpanData& span, absl::FunctionRef<void(std::string_view, const AttributeRef&)> visit);

class Tracer;

// One span. Move-only; ends (and is queued for export) when End() is called or it is destroyed. A span that
// is not sampled records nothing, but still has a context to pass on, so that a caller's trace continues
// through abode whether or not abode exports its own part.
class Span {
 public:
  Span() = default;
  Span(Span&& other) noexcept;
  Span& operator=(Span&& other) noexcept;
  Span(const Span&) = delete;
  Span& operator=(const Span&) = delete;
  ~Span() { End(); }

  const SpanContext& context() const { return context_; }
  // The W3C traceparent that makes a callee's span a child of this one; "" when there is no context.
  std::string traceparent() const { return context_.valid() ? FormatTraceparent(context_) : std::string(); }
  // Whether this span records (it is sampled and tracing is on).
  bool recording() const { return data_ != nullptr; }

  Span& SetAttribute(std::string key, std::string_view value);
  Span& SetAttribute(std::string key, const char* value) { return SetAttribute(std::move(key), std::string_view(value)); }
  Span& SetAttribute(std::string key, int64_t value);
  Span& SetAttribute(std::string key, uint64_t value) { return SetAttribute(std::move(key), static_cast<int64_t>(value)); }
  Span& SetAttribute(std::string key, int value) { return SetAttribute(std::move(key), static_cast<int64_t>(value)); }
  Span& SetAttribute(std::string key, uint32_t value) { return SetAttribute(std::move(key), static_cast<int64_t>(value)); }
  Span& SetAttribute(std::string key, double value);
  Span& SetAttribute(std::string key, bool value);
  Span& AddEvent(std::string name, Attributes attributes = {});
  Span& AddLink(const SpanContext& other);
  // Marks a gRPC call's span (its name "pkg.Service/Method"), exported with rpc.system, rpc.service and
  // rpc.method; SetGrpcStatusCode adds rpc.grpc.status_code.
  Span& MarkGrpcCall();
  Span& SetGrpcStatusCode(int code);
  // An error: the span's status is ERROR with `message`. Once set, SetOk() does not clear it.
  Span& SetError(std::string_view message);
  Span& SetOk();
  void End();
  void EndAt(int64_t end_unix_ns);

 private:
  friend class Tracer;
  Span(Tracer* tracer, SpanContext context, std::unique_ptr<SpanData> data)
      : tracer_(tracer), context_(context), data_(std::move(data)) {}

  Tracer* tracer_ = nullptr;
  SpanContext context_;
  std::unique_ptr<SpanData> data_;  // null when not recording
};

class SpanExporter;
class BatchSpanProcessor;

class Tracer {
 public:
  // Exports over OTLP/gRPC to `config.endpoint`. A disabled config gives a tracer that records nothing (and
  // makes no ids: spans carry their parent's context on).
  static absl::StatusOr<std::unique_ptr<Tracer>> Start(const TracingConfig& config);
  // As above, exporting through `exporter` (tests).
  static absl::StatusOr<std::unique_ptr<Tracer>> Start(const TracingConfig& config,
                                                       std::unique_ptr<SpanExporter> exporter);
  // Exports what is queued (up to config.shutdown_timeout) and stops the export thread.
  ~Tracer();
  Tracer(const Tracer&) = delete;
  Tracer& operator=(const Tracer&) = delete;

  // A span that is a child of `parent` (a traceparent text; empty or invalid: a new trace).
  Span StartSpan(std::string_view name, SpanKind kind, std::string_view parent);
  Span StartSpan(std::string_view name, SpanKind kind, const SpanContext& parent);
  // A span starting at `start_unix_ns` (0: now).
  Span StartSpanAt(std::string_view name, SpanKind kind, const SpanContext& parent, int64_t start_unix_ns);
  // As above, a child of the traceparent text `parent` (a remote parent: its context came from elsewhere).
  Span StartSpanAt(std::string_view name, SpanKind kind, std::string_view parent, int64_t start_unix_ns);
  // The root of a new trace that links to each of `links` (work done for many callers at once, such as a log
  // entry). Sampled when any link is (parent-based samplers), else as a root.
  Span StartLinkedSpan(std::string_view name, SpanKind kind, const std::vector<SpanContext>& links) {
    return StartLinkedSpanAt(name, kind, links, 0);
  }
  // As above, starting at `start_unix_ns` (0: now). Invalid links are left out.
  Span StartLinkedSpanAt(std::string_view name, SpanKind kind, const std::vector<SpanContext>& links,
                         int64_t start_unix_ns);
  // Queues a span recorded elsewhere, as it is (its context decides nothing here: the caller sampled it).
  void Record(SpanData span);
  // Blocks until everything queued so far has been exported or dropped, or `timeout` passed. False on timeout.
  bool Flush(absl::Duration timeout);

#ifdef ABODE_TRACING_COMPILED_OUT
  // Built with ABODE_TRACING=OFF: never enabled, so every recording site folds away.
  static constexpr bool enabled() { return false; }
#else
  bool enabled() const { return processor_ != nullptr; }
#endif
  const TracingConfig& config() const { return config_; }
  // abode_trace_* series: queue length, spans exported, dropped, export errors (docs/metrics.md).
  std::shared_ptr<prometheus::Collectable> metrics() const { return metrics_; }
  // Wall-clock now in ns since the epoch; the clock of spans.
  int64_t Now() const { return now_(); }

 private:
  friend class Span;
  Tracer(TracingConfig config, std::unique_ptr<BatchSpanProcessor> processor);
  bool Sample(const SpanContext& parent, const TraceId& trace_id) const;
  void Finish(std::unique_ptr<SpanData> data);
  // New ids without a system call per span: a counter from a random start, mixed (splitmix64, a bijection,
  // so no id repeats within 2^64 draws); never all zero.
  uint64_t NextRandom();
  TraceId NewTraceId();
  SpanId NewSpanId();

  const TracingConfig config_;
  std::function<int64_t()> now_;
  std::unique_ptr<BatchSpanProcessor> processor_;  // null when disabled
  std::shared_ptr<prometheus::Collectable> metrics_;
  std::atomic<uint64_t> id_state_;
};

}  // namespace abode::tracing

#endif  // ABODE_TRACING_TRACER_H_

#include "tracing/tracer.h"

#include <chrono>
#include <cstring>

#include "metrics/family.h"
#include "tracing/batch_span_processor.h"
#include "tracing/span_exporter.h"

namespace abode::tracing {
namespace {

int64_t WallNowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The tracer's series, read when scraped.
class TracerMetrics final : public prometheus::Collectable {
 public:
  explicit TracerMetrics(const BatchSpanProcessor* processor) : processor_(processor) {}
  std::vector<prometheus::MetricFamily> Collect() const override {
    using metrics::Family;
    using metrics::Sample;
    using prometheus::MetricType;
    const BatchSpanProcessor::Counts c = processor_ ? processor_->counts() : BatchSpanProcessor::Counts{};
    std::vector<prometheus::MetricFamily> out;
    out.push_back(Family("abode_trace_export_queue_length", "Ended spans waiting for export", MetricType::Gauge,
                         {Sample(static_cast<double>(c.queued))}));
    out.push_back(Family("abode_trace_export_spans_total", "Spans the OTLP receiver accepted", MetricType::Counter,
                         {Sample(static_cast<double>(c.exported))}));
    out.push_back(Family("abode_trace_export_dropped_total", "Spans dropped because the export queue was full",
                         MetricType::Counter, {Sample(static_cast<double>(c.dropped))}));
    out.push_back(Family("abode_trace_export_errors_total", "Export calls that failed (their spans are lost)",
                         MetricType::Counter, {Sample(static_cast<double>(c.export_errors))}));
    out.push_back(Family("abode_trace_export_failed_spans_total", "Spans lost in failed export calls",
                         MetricType::Counter, {Sample(static_cast<double>(c.failed_spans))}));
    return out;
  }

 private:
  const BatchSpanProcessor* processor_;
};

}  // namespace

void SpanData::Reset() {
  context = SpanContext{};
  parent_span_id = SpanId{};
  parent_remote = false;
  name.clear();
  kind = SpanKind::kInternal;
  start_unix_ns = 0;
  end_unix_ns = 0;
  attributes.clear();
  events.clear();
  links.clear();
  status = StatusCode::kUnset;
  status_message.clear();
  service_name.clear();
  grpc_call = false;
  grpc_status_code = -1;
}

AttributeRef RefTo(const AttributeValue& value) {
  if (const auto* s = std::get_if<std::string>(&value)) return AttributeRef(std::string_view(*s));
  if (const auto* i = std::get_if<int64_t>(&value)) return AttributeRef(*i);
  if (const auto* d = std::get_if<double>(&value)) return AttributeRef(*d);
  return AttributeRef(std::get<bool>(value));
}

void ForEachAttribute(const SpanData& span, absl::FunctionRef<void(std::string_view, const AttributeRef&)> visit) {
  for (const auto& [key, value] : span.attributes) visit(key, RefTo(value));
  if (!span.grpc_call) return;
  visit("rpc.system", AttributeRef(std::string_view("grpc")));
  const std::string_view name(span.name);
  if (const size_t slash = name.find('/'); slash != std::string_view::npos) {
    visit("rpc.service", AttributeRef(name.substr(0, slash)));
    visit("rpc.method", AttributeRef(name.substr(slash + 1)));
  }
  if (span.grpc_status_code >= 0) visit("rpc.grpc.status_code", AttributeRef(int64_t{span.grpc_status_code}));
}

Span::Span(Span&& other) noexcept
    : tracer_(other.tracer_), context_(other.context_), data_(std::move(other.data_)) {}

Span& Span::operator=(Span&& other) noexcept {
  if (this != &other) {
    End();
    tracer_ = other.tracer_;
    context_ = other.context_;
    data_ = std::move(other.data_);
  }
  return *this;
}

Span& Span::SetAttribute(std::string key, std::string_view value) {
  if (data_) data_->attributes.emplace_back(std::move(key), std::string(value));
  return *this;
}
Span& Span::SetAttribute(std::string key, int64_t value) {
  if (data_) data_->attributes.emplace_back(std::move(key), value);
  return *this;
}
Span& Span::SetAttribute(std::string key, double value) {
  if (data_) data_->attributes.emplace_back(std::move(key), value);
  return *this;
}
Span& Span::SetAttribute(std::string key, bool value) {
  if (data_) data_->attributes.emplace_back(std::move(key), value);
  return *this;
}

Span& Span::AddEvent(std::string name, Attributes attributes) {
  if (data_) data_->events.push_back(SpanEvent{tracer_->Now(), std::move(name), std::move(attributes)});
  return *this;
}

Span& Span::AddLink(const SpanContext& other) {
  if (data_ && other.valid()) data_->links.push_back(other);
  return *this;
}

Span& Span::MarkGrpcCall() {
  if (data_) data_->grpc_call = true;
  return *this;
}

Span& Span::SetGrpcStatusCode(int code) {
  if (data_) data_->grpc_status_code = code;
  return *this;
}

Span& Span::SetError(std::string_view message) {
  if (data_) {
    data_->status = StatusCode::kError;
    data_->status_message.assign(message.data(), message.size());
  }
  return *this;
}

Span& Span::SetOk() {
  if (data_ && data_->status != StatusCode::kError) data_->status = StatusCode::kOk;
  return *this;
}

void Span::End() {
  if (data_) EndAt(tracer_->Now());
}

void Span::EndAt(int64_t end_unix_ns) {
  if (!data_) return;
  data_->end_unix_ns = std::max(end_unix_ns, data_->start_unix_ns);
  tracer_->Finish(std::move(data_));
}

absl::StatusOr<std::unique_ptr<Tracer>> Tracer::Start(const TracingConfig& config) {
  return Start(config, nullptr);
}

absl::StatusOr<std::unique_ptr<Tracer>> Tracer::Start(const TracingConfig& config,
                                                      std::unique_ptr<SpanExporter> exporter) {
  if (!config.enabled) return std::unique_ptr<Tracer>(new Tracer(config, nullptr));
#ifdef ABODE_TRACING_COMPILED_OUT
  exporter.reset();
  return absl::FailedPreconditionError(
      "tracing: this build has tracing compiled out (ABODE_TRACING=OFF); unset OTEL_EXPORTER_OTLP_ENDPOINT or set "
      "OTEL_SDK_DISABLED=true");
#else
  if (config.max_queue_spans == 0 || config.max_batch_spans == 0) {
    return absl::InvalidArgumentError("tracing: the export queue and batch sizes must be positive");
  }
  if (exporter == nullptr) exporter = std::make_unique<OtlpGrpcExporter>(config);
  return std::unique_ptr<Tracer>(new Tracer(config, std::make_unique<BatchSpanProcessor>(config, std::move(exporter))));
#endif
}

Tracer::Tracer(TracingConfig config, std::unique_ptr<BatchSpanProcessor> processor)
    : config_(std::move(config)),
      now_(WallNowNs),
      processor_(std::move(processor)),
      metrics_(std::make_shared<TracerMetrics>(processor_.get())) {
  const TraceId seed = RandomTraceId();
  uint64_t start = 0;
  for (size_t i = 0; i < 8; ++i) start = start << 8 | seed[i];
  id_state_.store(start, std::memory_order_relaxed);
}

uint64_t Tracer::NextRandom() {
  uint64_t z = id_state_.fetch_add(0x9e3779b97f4a7c15, std::memory_order_relaxed) + 0x9e3779b97f4a7c15;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
  z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
  return z ^ (z >> 31);
}

TraceId Tracer::NewTraceId() {
  TraceId id;
  uint64_t high = 0, low = 0;
  do {
    high = NextRandom();
    low = NextRandom();
  } while ((high | low) == 0);
  for (size_t i = 0; i < 8; ++i) {
    id[i] = static_cast<uint8_t>(high >> (56 - 8 * i));
    id[8 + i] = static_cast<uint8_t>(low >> (56 - 8 * i));
  }
  return id;
}

SpanId Tracer::NewSpanId() {
  SpanId id;
  uint64_t v = 0;
  do {
    v = NextRandom();
  } while (v == 0);
  for (size_t i = 0; i < 8; ++i) id[i] = static_cast<uint8_t>(v >> (56 - 8 * i));
  return id;
}

Tracer::~Tracer() = default;  // the processor flushes as it goes

bool Tracer::Sample(const SpanContext& parent, const TraceId& trace_id) const {
  if (config_.parent_based && parent.valid()) return parent.sampled;
  switch (config_.sampler) {
    case Sampler::kAlwaysOn:
      return true;
    case Sampler::kAlwaysOff:
      return false;
    case Sampler::kRatio:
      break;
  }
  if (config_.ratio >= 1.0) return true;
  // The trace id's last 8 bytes as a number below ratio * 2^64 (every process decides alike for one trace).
  uint64_t low = 0;
  for (size_t i = 8; i < 16; ++i) low = low << 8 | trace_id[i];
  return static_cast<double>(low) < config_.ratio * 18446744073709551616.0;
}

Span Tracer::StartSpan(std::string_view name, SpanKind kind, std::string_view parent) {
  return StartSpanAt(name, kind, parent, 0);
}

Span Tracer::StartSpanAt(std::string_view name, SpanKind kind, std::string_view parent, int64_t start_unix_ns) {
  auto p = ParseTraceparent(parent);
  Span span = StartSpanAt(name, kind, p ? *p : SpanContext{}, start_unix_ns);
  if (span.data_ && p) span.data_->parent_remote = true;
  return span;
}

Span Tracer::StartSpan(std::string_view name, SpanKind kind, const SpanContext& parent) {
  return StartSpanAt(name, kind, parent, 0);
}

Span Tracer::StartSpanAt(std::string_view name, SpanKind kind, const SpanContext& parent, int64_t start_unix_ns) {
  // Off: no ids are made; the parent's context passes on unchanged.
  if (!enabled()) return Span(this, parent.valid() ? parent : SpanContext{}, nullptr);
  SpanContext context;
  context.trace_id = parent.valid() ? parent.trace_id : NewTraceId();
  context.span_id = NewSpanId();
  context.sampled = Sample(parent, context.trace_id);
  if (!context.sampled) return Span(this, context, nullptr);
  std::unique_ptr<SpanData> data = processor_->Acquire();
  data->context = context;
  if (parent.valid()) data->parent_span_id = parent.span_id;
  data->name.assign(name.data(), name.size());
  data->kind = kind;
  data->start_unix_ns = start_unix_ns > 0 ? start_unix_ns : Now();
  return Span(this, context, std::move(data));
}

Span Tracer::StartLinkedSpanAt(std::string_view name, SpanKind kind, const std::vector<SpanContext>& links,
                               int64_t start_unix_ns) {
  if (!enabled()) return Span(this, SpanContext{}, nullptr);
  // A stand-in parent that carries only the links' verdict, so Sample() decides as for a child.
  SpanContext verdict;
  for (const SpanContext& l : links) {
    if (!l.valid()) continue;
    verdict = l;
    if (l.sampled) break;
  }
  SpanContext context;
  context.trace_id = NewTraceId();
  context.span_id = NewSpanId();
  context.sampled = Sample(verdict, context.trace_id);
  if (!context.sampled) return Span(this, context, nullptr);
  std::unique_ptr<SpanData> data = processor_->Acquire();
  data->context = context;
  data->name.assign(name.data(), name.size());
  data->kind = kind;
  data->start_unix_ns = start_unix_ns > 0 ? start_unix_ns : Now();
  data->links.reserve(links.size());
  for (const SpanContext& l : links) {
    if (l.valid()) data->links.push_back(l);
  }
  return Span(this, context, std::move(data));
}

void Tracer::Record(SpanData span) {
  if (processor_) processor_->Enqueue(std::make_unique<SpanData>(std::move(span)));
}

bool Tracer::Flush(absl::Duration timeout) { return processor_ == nullptr || processor_->Flush(timeout); }

void Tracer::Finish(std::unique_ptr<SpanData> data) {
  if (processor_) processor_->Enqueue(std::move(data));
}

}  // namespace abode::tracing

// For tests: an exporter that keeps every span it is given, in a list the test owns (the tracer owns and
// destroys its exporter, so the list outlives it).
#ifndef ABODE_TRACING_COLLECTING_EXPORTER_H_
#define ABODE_TRACING_COLLECTING_EXPORTER_H_

#include <vector>

#include "absl/synchronization/mutex.h"
#include "tracing/span_exporter.h"

namespace abode::tracing {

struct CollectedSpans {
  absl::Mutex mu;
  std::vector<SpanData> spans ABSL_GUARDED_BY(mu);
  std::vector<SpanData> Take() {
    absl::MutexLock lock(&mu);
    return std::move(spans);
  }
};

class CollectingExporter final : public SpanExporter {
 public:
  explicit CollectingExporter(CollectedSpans* out) : out_(out) {}
  absl::Status Export(const SpanBatch& spans) override {
    absl::MutexLock lock(&out_->mu);
    for (const auto& span : spans) out_->spans.push_back(*span);
    return absl::OkStatus();
  }

 private:
  CollectedSpans* out_;
};

// An enabled tracer (service "test") that exports into `out`.
inline std::unique_ptr<Tracer> CollectingTracer(CollectedSpans* out) {
  TracingConfig config;
  config.enabled = true;
  config.endpoint = "unused:1";
  config.service_name = "test";
  return *Tracer::Start(config, std::make_unique<CollectingExporter>(out));
}

}  // namespace abode::tracing

#endif  // ABODE_TRACING_COLLECTING_EXPORTER_H_

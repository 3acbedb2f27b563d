// The queue between ended spans and the exporter: bounded, never blocking a span's End() beyond a short
// lock; when full, the span is dropped and counted. One thread exports a batch when max_batch_spans are
// queued or schedule_delay has passed since the last export, whichever comes first.
//
// It also keeps the pool that spans are recorded into: after an export the thread resets the spans it sent
// and puts them back, so that recording a span, once warm, allocates nothing (its strings and vectors keep
// their capacity) and the recording threads never free what the export thread used.
#ifndef ABODE_TRACING_BATCH_SPAN_PROCESSOR_H_
#define ABODE_TRACING_BATCH_SPAN_PROCESSOR_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "tracing/config.h"
#include "tracing/span_exporter.h"
#include "tracing/tracer.h"

namespace abode::tracing {

class BatchSpanProcessor {
 public:
  BatchSpanProcessor(const TracingConfig& config, std::unique_ptr<SpanExporter> exporter);
  // Exports what is queued, for up to shutdown_timeout, then stops the thread.
  ~BatchSpanProcessor();
  BatchSpanProcessor(const BatchSpanProcessor&) = delete;
  BatchSpanProcessor& operator=(const BatchSpanProcessor&) = delete;

  // A reset span to record into: from the pool, or new when the pool is empty.
  std::unique_ptr<SpanData> Acquire();
  void Enqueue(std::unique_ptr<SpanData> span);
  // Waits until every span enqueued before the call is exported (or failed to be), up to `timeout`.
  bool Flush(absl::Duration timeout);

  struct Counts {
    uint64_t queued = 0;  // waiting now
    uint64_t exported = 0;
    uint64_t dropped = 0;  // the queue was full
    uint64_t export_errors = 0;  // failed export calls
    uint64_t failed_spans = 0;   // spans in failed export calls
  };
  Counts counts() const;

 private:
  void Run();
  // Resets the spans of `batch` and returns them to the pool (up to its bound); empties `batch`.
  void Recycle(SpanBatch& batch);

  const size_t max_queue_;
  const size_t max_batch_;
  const absl::Duration delay_;
  const absl::Duration shutdown_timeout_;
  const std::unique_ptr<SpanExporter> exporter_;
  mutable absl::Mutex mu_;
  // Wakes the export thread: signalled when the queue reaches a batch, on a flush and on stop. A condition
  // variable rather than a Mutex condition, so that the recording threads' unlocks stay on the fast path
  // while the export thread waits.
  absl::CondVar wake_;
  SpanBatch queue_ ABSL_GUARDED_BY(mu_);
  uint64_t enqueued_ ABSL_GUARDED_BY(mu_) = 0;  // spans accepted so far
  uint64_t done_ ABSL_GUARDED_BY(mu_) = 0;      // of those, exported or failed
  uint64_t flush_wanted_ ABSL_GUARDED_BY(mu_) = 0;  // export at once up to this count
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Mutex pool_mu_ ABSL_ACQUIRED_AFTER(mu_);
  SpanBatch pool_ ABSL_GUARDED_BY(pool_mu_);  // reset spans, at most max_queue_ + max_batch_
  std::atomic<uint64_t> exported_{0};
  std::atomic<uint64_t> dropped_{0};
  std::atomic<uint64_t> export_errors_{0};
  std::atomic<uint64_t> failed_spans_{0};
  std::thread thread_;
};

}  // namespace abode::tracing

#endif  // ABODE_TRACING_BATCH_SPAN_PROCESSOR_H_

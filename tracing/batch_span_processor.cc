#include "tracing/batch_span_processor.h"

#include <pthread.h>

#include <vector>

#include <spdlog/spdlog.h>

namespace abode::tracing {

BatchSpanProcessor::BatchSpanProcessor(const TracingConfig& config, std::unique_ptr<SpanExporter> exporter)
    : max_queue_(config.max_queue_spans),
      max_batch_(config.max_batch_spans),
      delay_(config.schedule_delay),
      shutdown_timeout_(config.shutdown_timeout),
      exporter_(std::move(exporter)) {
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "abode-trace-exp");  // named, so profiles and top tell its cost apart
    Run();
  });
}

BatchSpanProcessor::~BatchSpanProcessor() {
  Flush(shutdown_timeout_);
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

void BatchSpanProcessor::Enqueue(SpanData span) {
  absl::MutexLock lock(&mu_);
  if (queue_.size() >= max_queue_ || stopping_) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  queue_.push_back(std::move(span));
  ++enqueued_;
}

bool BatchSpanProcessor::Flush(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  const uint64_t target = enqueued_;
  if (flush_wanted_ < target) flush_wanted_ = target;
  auto flushed = [this, target]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return done_ >= target; };
  return mu_.AwaitWithTimeout(absl::Condition(&flushed), timeout);
}

BatchSpanProcessor::Counts BatchSpanProcessor::counts() const {
  Counts c;
  {
    absl::MutexLock lock(&mu_);
    c.queued = queue_.size();
  }
  c.exported = exported_.load(std::memory_order_relaxed);
  c.dropped = dropped_.load(std::memory_order_relaxed);
  c.export_errors = export_errors_.load(std::memory_order_relaxed);
  c.failed_spans = failed_spans_.load(std::memory_order_relaxed);
  return c;
}

void BatchSpanProcessor::Run() {
  absl::Time last_export = absl::Now();
  while (true) {
    std::vector<SpanData> batch;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || queue_.size() >= max_batch_ || (!queue_.empty() && flush_wanted_ > done_);
      };
      // Wake for a full batch, a flush or stop; else after the delay, if there is anything at all.
      mu_.AwaitWithDeadline(absl::Condition(&ready), last_export + delay_);
      if (stopping_) {
        // The destructor's flush is over (done or timed out): what is left is dropped.
        dropped_.fetch_add(queue_.size(), std::memory_order_relaxed);
        queue_.clear();
        return;
      }
      const size_t n = std::min(queue_.size(), max_batch_);
      batch.reserve(n);
      for (size_t i = 0; i < n; ++i) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    last_export = absl::Now();
    if (batch.empty()) continue;
    const absl::Status s = exporter_->Export(batch);
    if (s.ok()) {
      exported_.fetch_add(batch.size(), std::memory_order_relaxed);
    } else {
      // Counted for the metrics; logged at most now and then, not per batch.
      if (export_errors_.fetch_add(1, std::memory_order_relaxed) % 100 == 0) {
        spdlog::warn("tracing: {} (spans are dropped until it answers)", std::string(s.message()));
      }
      failed_spans_.fetch_add(batch.size(), std::memory_order_relaxed);
    }
    absl::MutexLock lock(&mu_);
    done_ += batch.size();
  }
}

}  // namespace abode::tracing

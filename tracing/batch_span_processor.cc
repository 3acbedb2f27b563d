#include "tracing/batch_span_processor.h"

#include <pthread.h>


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
    wake_.Signal();
  }
  thread_.join();
}

std::unique_ptr<SpanData> BatchSpanProcessor::Acquire() {
  {
    absl::MutexLock lock(&pool_mu_);
    if (!pool_.empty()) {
      std::unique_ptr<SpanData> span = std::move(pool_.back());
      pool_.pop_back();
      return span;
    }
  }
  return std::make_unique<SpanData>();
}

void BatchSpanProcessor::Enqueue(std::unique_ptr<SpanData> span) {
  {
    absl::MutexLock lock(&mu_);
    if (queue_.size() < max_queue_ && !stopping_) {
      queue_.push_back(std::move(span));
      ++enqueued_;
      if (queue_.size() == max_batch_) wake_.Signal();
      return;
    }
  }
  dropped_.fetch_add(1, std::memory_order_relaxed);
  SpanBatch dropped;
  dropped.push_back(std::move(span));
  Recycle(dropped);
}

void BatchSpanProcessor::Recycle(SpanBatch& batch) {
  // A span that once held very many links or attributes gives its memory back rather than keep it pooled.
  constexpr size_t kMaxKept = 256;
  for (auto& span : batch) {
    if (span->links.capacity() > kMaxKept || span->attributes.capacity() > kMaxKept) {
      span = std::make_unique<SpanData>();
    } else {
      span->Reset();
    }
  }
  absl::MutexLock lock(&pool_mu_);
  for (auto& span : batch) {
    if (pool_.size() >= max_queue_ + max_batch_) break;
    pool_.push_back(std::move(span));
  }
  batch.clear();
}

bool BatchSpanProcessor::Flush(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  const uint64_t target = enqueued_;
  if (flush_wanted_ < target) flush_wanted_ = target;
  wake_.Signal();
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
  SpanBatch batch;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || queue_.size() >= max_batch_ || (!queue_.empty() && flush_wanted_ > done_);
      };
      // Wake for a full batch, a flush or stop; else after the delay, if there is anything at all.
      const absl::Time deadline = last_export + delay_;
      while (!ready() && !wake_.WaitWithDeadline(&mu_, deadline)) {
      }
      if (stopping_) {
        // The destructor's flush is over (done or timed out): what is left is dropped.
        dropped_.fetch_add(queue_.size(), std::memory_order_relaxed);
        queue_.clear();
        return;
      }
      if (queue_.size() <= max_batch_) {
        batch.swap(queue_);
      } else {
        batch.assign(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.begin() + max_batch_));
        queue_.erase(queue_.begin(), queue_.begin() + max_batch_);
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
    const size_t n = batch.size();
    Recycle(batch);
    absl::MutexLock lock(&mu_);
    done_ += n;
  }
}

}  // namespace abode::tracing

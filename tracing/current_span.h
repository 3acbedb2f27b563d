// The span the calling thread works for, so that log lines can name it. A ScopedSpanContext sets it for its
// own lifetime on its own thread (scopes nest); code that hands work to another thread passes the context
// along explicitly and opens a scope there.
#ifndef ABODE_TRACING_CURRENT_SPAN_H_
#define ABODE_TRACING_CURRENT_SPAN_H_

#include <string>

#include "tracing/trace_context.h"

namespace abode::tracing {

class ScopedSpanContext {
 public:
  // An invalid `context` makes a scope with no current span.
  explicit ScopedSpanContext(const SpanContext& context);
  ~ScopedSpanContext();
  ScopedSpanContext(const ScopedSpanContext&) = delete;
  ScopedSpanContext& operator=(const ScopedSpanContext&) = delete;

 private:
  SpanContext context_;
  const SpanContext* previous_;
};

// The innermost scope's context on this thread; null outside every scope (or in one with no span).
const SpanContext* CurrentSpanContext();

// The ids for a log line: 32 and 16 lower-case hex digits, both empty outside a traced scope.
struct LogIds {
  std::string trace_id;
  std::string span_id;
};
LogIds CurrentLogIds();

}  // namespace abode::tracing

#endif  // ABODE_TRACING_CURRENT_SPAN_H_

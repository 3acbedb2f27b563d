#include "tracing/current_span.h"

namespace abode::tracing {
namespace {

// Per thread, the innermost open scope's context. Each thread sees only its own.
thread_local const SpanContext* current = nullptr;

}  // namespace

ScopedSpanContext::ScopedSpanContext(const SpanContext& context) : context_(context), previous_(current) {
  current = context_.valid() ? &context_ : nullptr;
}

ScopedSpanContext::~ScopedSpanContext() { current = previous_; }

const SpanContext* CurrentSpanContext() { return current; }

LogIds CurrentLogIds() {
  if (current == nullptr) return {};
  return LogIds{ToHex(current->trace_id), ToHex(current->span_id)};
}

}  // namespace abode::tracing

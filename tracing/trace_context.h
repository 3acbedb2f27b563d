// W3C trace context (https://www.w3.org/TR/trace-context/): the ids of one span and the `traceparent`
// text that carries them between processes. Plain C++ without abseil or gRPC, so that the CNI plugin (which
// links neither) shares it with the daemons.
#ifndef ABODE_TRACING_TRACE_CONTEXT_H_
#define ABODE_TRACING_TRACE_CONTEXT_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace abode::tracing {

using TraceId = std::array<uint8_t, 16>;
using SpanId = std::array<uint8_t, 8>;

struct SpanContext {
  TraceId trace_id{};
  SpanId span_id{};
  bool sampled = false;

  // A context with a non-zero trace id and span id.
  bool valid() const;
  bool operator==(const SpanContext&) const = default;
};

// `00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`. Versions other than 00 are read as the spec asks
// (the first four fields; a longer text must continue with '-'); version ff, upper-case hex, all-zero ids
// and wrong lengths are refused (nullopt).
std::optional<SpanContext> ParseTraceparent(std::string_view text);
std::string FormatTraceparent(const SpanContext& context);
// The length of a version-00 traceparent.
inline constexpr size_t kTraceparentSize = 55;
// As above, into `out` (no terminating zero): no allocation.
void FormatTraceparent(const SpanContext& context, char (&out)[kTraceparentSize]);

std::string ToHex(const uint8_t* bytes, size_t n);
inline std::string ToHex(const TraceId& id) { return ToHex(id.data(), id.size()); }
inline std::string ToHex(const SpanId& id) { return ToHex(id.data(), id.size()); }

// Random ids from the kernel (getrandom), never all zero.
TraceId RandomTraceId();
SpanId RandomSpanId();

// A new span's context: a child of `parent` (its trace id and sampled flag) when it is a valid traceparent,
// else the root of a new trace, sampled.
SpanContext ChildOf(std::string_view parent);

}  // namespace abode::tracing

#endif  // ABODE_TRACING_TRACE_CONTEXT_H_

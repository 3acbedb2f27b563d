// How one log line looks: human text (the default) or one JSON object per line, each with the trace and span
// of the request it was written in, when there is one. See docs/logging.md.
#ifndef ABODE_LOGGING_LOG_LINE_H_
#define ABODE_LOGGING_LOG_LINE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"
#include "spdlog/formatter.h"

namespace abode::logging {

enum class LogFormat { kText, kJson };

// The W3C ids of the span a line is written in: trace_id 32 and span_id 16 lowercase hex digits.
struct TraceContext {
  std::string trace_id;
  std::string span_id;
};

// Called for every line on the thread that writes it; returns the calling thread's current span, or nothing
// outside a traced request. Must be thread-safe and must not log.
using TraceContextProvider = std::function<std::optional<TraceContext>()>;

// "text" or "json"; INVALID_ARGUMENT saying what is accepted otherwise (the caller names its flag).
absl::StatusOr<LogFormat> ParseLogFormat(absl::string_view text);
// trace, debug, info, warn (or warning), error, critical, off; INVALID_ARGUMENT otherwise, as above.
absl::StatusOr<spdlog::level::level_enum> ParseLogLevel(absl::string_view text);
// The name --log-level takes for `level` (warn, not spdlog's "warning").
absl::string_view LevelName(spdlog::level::level_enum level);

// Formats spdlog messages as abode's log lines.
//   text: 2026-12-06T01:02:03.456789Z info abode-allocator: message trace_id=... span_id=...
//   json: {"time":"2026-12-06T01:02:03.456789Z","level":"info","logger":"abode-allocator","message":"...",
//          "thread":1234,"source":"file.cc:12","trace_id":"...","span_id":"..."}
// Time is UTC, RFC 3339 with microseconds. JSON strings are escaped completely (quotes, backslashes, control
// characters); bytes that are not UTF-8 become U+FFFD, so every line parses. "source" appears when the call
// site is known, the trace fields when the provider returns a context. spdlog calls format() under its sink's
// lock, so one formatter is used by one thread at a time.
class LineFormatter final : public spdlog::formatter {
 public:
  explicit LineFormatter(LogFormat format, TraceContextProvider trace_context = nullptr);

  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override;
  std::unique_ptr<spdlog::formatter> clone() const override;

 private:
  // The time as RFC 3339; the seconds part is kept from the previous line of the same second.
  void AppendTime(spdlog::log_clock::time_point time, spdlog::memory_buf_t& dest);
  void FormatText(const spdlog::details::log_msg& msg, const std::optional<TraceContext>& trace,
                  spdlog::memory_buf_t& dest);
  void FormatJson(const spdlog::details::log_msg& msg, const std::optional<TraceContext>& trace,
                  spdlog::memory_buf_t& dest);

  const LogFormat format_;
  const TraceContextProvider trace_context_;
  int64_t cached_second_ = -1;
  char cached_prefix_[64] = {};  // "YYYY-MM-DDTHH:MM:SS" of cached_second_ (room for any year)
};

}  // namespace abode::logging

#endif  // ABODE_LOGGING_LOG_LINE_H_

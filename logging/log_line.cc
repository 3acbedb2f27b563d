#include "logging/log_line.h"

#include <time.h>

#include <chrono>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace abode::logging {
namespace {

constexpr absl::string_view kLevelNames[] = {"trace", "debug", "info", "warn", "error", "critical", "off"};

void Append(spdlog::memory_buf_t& dest, absl::string_view text) { dest.append(text.data(), text.data() + text.size()); }

// `text` as a JSON string, quotes included. nlohmann's serializer escapes what JSON requires and replaces
// bytes that are not UTF-8 with U+FFFD.
void AppendJsonString(spdlog::memory_buf_t& dest, absl::string_view text) {
  Append(dest, nlohmann::json(std::string(text)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

}  // namespace

absl::StatusOr<LogFormat> ParseLogFormat(absl::string_view text) {
  if (text == "text") return LogFormat::kText;
  if (text == "json") return LogFormat::kJson;
  return absl::InvalidArgumentError(absl::StrCat("\"", text, "\" is not one of text, json"));
}

absl::StatusOr<spdlog::level::level_enum> ParseLogLevel(absl::string_view text) {
  if (text == "warning") return spdlog::level::warn;
  for (size_t i = 0; i < std::size(kLevelNames); ++i) {
    if (text == kLevelNames[i]) return static_cast<spdlog::level::level_enum>(i);
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "\"", text, "\" is not one of trace, debug, info, warn, error, critical, off"));
}

absl::string_view LevelName(spdlog::level::level_enum level) {
  const auto i = static_cast<size_t>(level);
  return i < std::size(kLevelNames) ? kLevelNames[i] : "unknown";
}

LineFormatter::LineFormatter(LogFormat format, TraceContextProvider trace_context)
    : format_(format), trace_context_(std::move(trace_context)) {}

std::unique_ptr<spdlog::formatter> LineFormatter::clone() const {
  return std::make_unique<LineFormatter>(format_, trace_context_);
}

void LineFormatter::format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) {
  std::optional<TraceContext> trace;
  if (trace_context_) trace = trace_context_();
  if (trace && (trace->trace_id.empty() || trace->span_id.empty())) trace.reset();
  if (format_ == LogFormat::kJson) {
    FormatJson(msg, trace, dest);
  } else {
    FormatText(msg, trace, dest);
  }
}

void LineFormatter::AppendTime(spdlog::log_clock::time_point time, spdlog::memory_buf_t& dest) {
  const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(time.time_since_epoch()).count();
  int64_t second = micros / 1'000'000;
  int64_t fraction = micros % 1'000'000;
  if (fraction < 0) {  // before 1970
    fraction += 1'000'000;
    second -= 1;
  }
  if (second != cached_second_) {
    const time_t t = static_cast<time_t>(second);
    tm utc{};
    ::gmtime_r(&t, &utc);
    std::snprintf(cached_prefix_, sizeof(cached_prefix_), "%04d-%02d-%02dT%02d:%02d:%02d", utc.tm_year + 1900,
                  utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec);
    cached_second_ = second;
  }
  char tail[16];
  const int n = std::snprintf(tail, sizeof(tail), ".%06lldZ", static_cast<long long>(fraction));
  Append(dest, cached_prefix_);
  Append(dest, absl::string_view(tail, static_cast<size_t>(n)));
}

void LineFormatter::FormatText(const spdlog::details::log_msg& msg, const std::optional<TraceContext>& trace,
                               spdlog::memory_buf_t& dest) {
  AppendTime(msg.time, dest);
  dest.push_back(' ');
  Append(dest, LevelName(msg.level));
  dest.push_back(' ');
  if (msg.logger_name.size() > 0) {
    Append(dest, absl::string_view(msg.logger_name.data(), msg.logger_name.size()));
    Append(dest, ": ");
  }
  Append(dest, absl::string_view(msg.payload.data(), msg.payload.size()));
  if (trace) {
    Append(dest, " trace_id=");
    Append(dest, trace->trace_id);
    Append(dest, " span_id=");
    Append(dest, trace->span_id);
  }
  dest.push_back('\n');
}

void LineFormatter::FormatJson(const spdlog::details::log_msg& msg, const std::optional<TraceContext>& trace,
                               spdlog::memory_buf_t& dest) {
  Append(dest, "{\"time\":\"");
  AppendTime(msg.time, dest);
  Append(dest, "\",\"level\":\"");
  Append(dest, LevelName(msg.level));
  Append(dest, "\",\"logger\":");
  AppendJsonString(dest, absl::string_view(msg.logger_name.data(), msg.logger_name.size()));
  Append(dest, ",\"message\":");
  AppendJsonString(dest, absl::string_view(msg.payload.data(), msg.payload.size()));
  Append(dest, ",\"thread\":");
  Append(dest, std::to_string(msg.thread_id));
  if (!msg.source.empty()) {
    Append(dest, ",\"source\":");
    AppendJsonString(dest, absl::StrCat(msg.source.filename, ":", msg.source.line));
  }
  if (trace) {
    Append(dest, ",\"trace_id\":");
    AppendJsonString(dest, trace->trace_id);
    Append(dest, ",\"span_id\":");
    AppendJsonString(dest, trace->span_id);
  }
  Append(dest, "}\n");
}

}  // namespace abode::logging

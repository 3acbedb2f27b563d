#include "logging/log_line.h"

#include <chrono>
#include <regex>
#include <string>

#include <gtest/gtest.h>

#include "nlohmann/json.hpp"
#include "spdlog/details/log_msg.h"

namespace abode::logging {
namespace {

using Clock = spdlog::log_clock;

// 2026-12-06T01:02:03.456789Z
Clock::time_point SampleTime() {
  return Clock::time_point(std::chrono::duration_cast<Clock::duration>(std::chrono::microseconds(1796518923456789LL)));
}

std::string Format(LineFormatter& formatter, std::string_view message,
                   spdlog::level::level_enum level = spdlog::level::info, std::string_view logger = "abode-test",
                   spdlog::source_loc source = {}) {
  const spdlog::details::log_msg msg(SampleTime(), source, spdlog::string_view_t(logger.data(), logger.size()), level,
                                     spdlog::string_view_t(message.data(), message.size()));
  spdlog::memory_buf_t out;
  formatter.format(msg, out);
  return std::string(out.data(), out.size());
}

TraceContextProvider Fixed(std::optional<TraceContext> context) {
  return [context] { return context; };
}

const TraceContext kTrace{"4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"};

TEST(LineFormatterTest, TextLineHasUtcTimeLevelLoggerAndMessage) {
  LineFormatter f(LogFormat::kText);
  EXPECT_EQ(Format(f, "serving on port 7"), "2026-12-06T01:02:03.456789Z info abode-test: serving on port 7\n");
  EXPECT_EQ(Format(f, "slow", spdlog::level::warn), "2026-12-06T01:02:03.456789Z warn abode-test: slow\n");
  EXPECT_EQ(Format(f, "x", spdlog::level::critical, ""), "2026-12-06T01:02:03.456789Z critical x\n");
}

TEST(LineFormatterTest, TimesKeepMicrosecondsAcrossSecondsAndBefore1970) {
  LineFormatter f(LogFormat::kText);
  const auto at = [&](int64_t micros) {
    const spdlog::details::log_msg msg(
        Clock::time_point(std::chrono::duration_cast<Clock::duration>(std::chrono::microseconds(micros))),
        spdlog::source_loc{}, "", spdlog::level::info, "m");
    spdlog::memory_buf_t out;
    f.format(msg, out);
    return std::string(out.data(), out.size()).substr(0, 27);
  };
  EXPECT_EQ(at(0), "1970-01-01T00:00:00.000000Z");
  EXPECT_EQ(at(1), "1970-01-01T00:00:00.000001Z");
  EXPECT_EQ(at(999'999), "1970-01-01T00:00:00.999999Z");
  EXPECT_EQ(at(1'000'000), "1970-01-01T00:00:01.000000Z");  // the cached second moves on
  EXPECT_EQ(at(-1), "1969-12-31T23:59:59.999999Z");
}

TEST(LineFormatterTest, TextLineInsideATraceEndsWithTheIds) {
  LineFormatter f(LogFormat::kText, Fixed(kTrace));
  EXPECT_EQ(Format(f, "allocated"),
            "2026-12-06T01:02:03.456789Z info abode-test: allocated trace_id=4bf92f3577b34da6a3ce929d0e0e4736 "
            "span_id=00f067aa0ba902b7\n");
}

TEST(LineFormatterTest, NoIdsOutsideATraceOrForAnIncompleteContext) {
  for (const std::optional<TraceContext>& none :
       {std::optional<TraceContext>(), std::optional<TraceContext>(TraceContext{"", "00f067aa0ba902b7"}),
        std::optional<TraceContext>(TraceContext{"4bf92f3577b34da6a3ce929d0e0e4736", ""})}) {
    LineFormatter text(LogFormat::kText, Fixed(none));
    EXPECT_EQ(Format(text, "m"), "2026-12-06T01:02:03.456789Z info abode-test: m\n");
    LineFormatter json(LogFormat::kJson, Fixed(none));
    const auto line = nlohmann::json::parse(Format(json, "m"));
    EXPECT_FALSE(line.contains("trace_id")) << line;
    EXPECT_FALSE(line.contains("span_id")) << line;
  }
}

TEST(LineFormatterTest, JsonLineHasEveryField) {
  LineFormatter f(LogFormat::kJson);
  const std::string text = Format(f, "serving on port 7", spdlog::level::warn, "abode-allocator",
                                  spdlog::source_loc{"server.cc", 42, "Start"});
  ASSERT_EQ(text.back(), '\n');
  ASSERT_EQ(text.find('\n'), text.size() - 1) << text;
  const auto line = nlohmann::json::parse(text);
  EXPECT_EQ(line["time"], "2026-12-06T01:02:03.456789Z");
  EXPECT_EQ(line["level"], "warn");
  EXPECT_EQ(line["logger"], "abode-allocator");
  EXPECT_EQ(line["message"], "serving on port 7");
  EXPECT_TRUE(line["thread"].is_number_unsigned()) << line;
  EXPECT_EQ(line["source"], "server.cc:42");
  EXPECT_FALSE(line.contains("trace_id"));
  // Without a known call site there is no source field.
  EXPECT_FALSE(nlohmann::json::parse(Format(f, "m")).contains("source"));
}

TEST(LineFormatterTest, JsonLineInsideATraceCarriesTheIds) {
  LineFormatter f(LogFormat::kJson, Fixed(kTrace));
  const auto line = nlohmann::json::parse(Format(f, "allocated"));
  EXPECT_EQ(line["trace_id"], kTrace.trace_id);
  EXPECT_EQ(line["span_id"], kTrace.span_id);
  EXPECT_EQ(line["message"], "allocated");
}

TEST(LineFormatterTest, JsonEscapesQuotesControlCharactersAndBadUtf8) {
  LineFormatter f(LogFormat::kJson, Fixed(TraceContext{"a\"b", "c\nd"}));
  const std::string message = std::string("say \"hi\" \\ back\nnext\tline\r\x01\x1f\x7f caf\xc3\xa9 ") +
                              "\xff\xfe bad \xc3 cut \xe2\x82" + std::string(1, '\0') + " nul";
  const std::string text = Format(f, message, spdlog::level::err, "log\"ger\n");
  // One line: the newlines inside are escaped.
  ASSERT_EQ(text.find('\n'), text.size() - 1) << text;
  for (char c : text.substr(0, text.size() - 1)) {
    EXPECT_FALSE(static_cast<unsigned char>(c) < 0x20) << "raw control character in " << text;
  }
  const auto line = nlohmann::json::parse(text);
  EXPECT_EQ(line["message"], std::string("say \"hi\" \\ back\nnext\tline\r\x01\x1f\x7f caf\xc3\xa9 ") +
                                 "\xef\xbf\xbd\xef\xbf\xbd bad \xef\xbf\xbd cut \xef\xbf\xbd" + std::string(1, '\0') +
                                 " nul");
  EXPECT_EQ(line["logger"], "log\"ger\n");
  EXPECT_EQ(line["trace_id"], "a\"b");
  EXPECT_EQ(line["span_id"], "c\nd");
}

TEST(LineFormatterTest, CloneKeepsFormatAndProvider) {
  LineFormatter f(LogFormat::kJson, Fixed(kTrace));
  auto copy = f.clone();
  const spdlog::details::log_msg msg(SampleTime(), spdlog::source_loc{}, "n", spdlog::level::info, "m");
  spdlog::memory_buf_t out;
  copy->format(msg, out);
  const auto line = nlohmann::json::parse(std::string(out.data(), out.size()));
  EXPECT_EQ(line["trace_id"], kTrace.trace_id);
}

TEST(LogFlagValuesTest, LevelsAndFormats) {
  EXPECT_EQ(*ParseLogLevel("trace"), spdlog::level::trace);
  EXPECT_EQ(*ParseLogLevel("debug"), spdlog::level::debug);
  EXPECT_EQ(*ParseLogLevel("info"), spdlog::level::info);
  EXPECT_EQ(*ParseLogLevel("warn"), spdlog::level::warn);
  EXPECT_EQ(*ParseLogLevel("warning"), spdlog::level::warn);
  EXPECT_EQ(*ParseLogLevel("error"), spdlog::level::err);
  EXPECT_EQ(*ParseLogLevel("critical"), spdlog::level::critical);
  EXPECT_EQ(*ParseLogLevel("off"), spdlog::level::off);
  for (const char* bad : {"loud", "", "INFO", "err", "info "}) {
    const auto level = ParseLogLevel(bad);
    ASSERT_FALSE(level.ok()) << bad;
    EXPECT_EQ(level.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(level.status().message().find(std::string("\"") + bad + "\""), std::string::npos) << level.status();
  }
  EXPECT_EQ(*ParseLogFormat("text"), LogFormat::kText);
  EXPECT_EQ(*ParseLogFormat("json"), LogFormat::kJson);
  EXPECT_EQ(ParseLogFormat("xml").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(LevelName(spdlog::level::warn), "warn");
  EXPECT_EQ(LevelName(spdlog::level::err), "error");
}

}  // namespace
}  // namespace abode::logging

#include "logging/process_log.h"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "grpc/support/log.h"
#include "nlohmann/json.hpp"
#include "spdlog/sinks/base_sink.h"
#include "spdlog/spdlog.h"

namespace abode::logging {
namespace {

// Keeps every formatted line; WaitFor blocks until one contains a text.
class CaptureSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  std::vector<std::string> lines() {
    std::lock_guard<std::mutex> lock(lines_mu_);
    return lines_;
  }
  bool Contains(const std::string& text) {
    std::lock_guard<std::mutex> lock(lines_mu_);
    return Find(text);
  }
  // True once a line contains `text`; false after 10 s without one.
  bool WaitFor(const std::string& text) {
    std::unique_lock<std::mutex> lock(lines_mu_);
    return added_.wait_for(lock, std::chrono::seconds(10), [&] { return Find(text); });
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t out;
    formatter_->format(msg, out);
    std::lock_guard<std::mutex> lock(lines_mu_);
    lines_.emplace_back(out.data(), out.size());
    added_.notify_all();
  }
  void flush_() override {}

 private:
  bool Find(const std::string& text) {
    for (const std::string& line : lines_) {
      if (line.find(text) != std::string::npos) return true;
    }
    return false;
  }
  std::mutex lines_mu_;
  std::condition_variable added_;
  std::vector<std::string> lines_;
};

std::unique_ptr<ProcessLog> Install(const std::shared_ptr<CaptureSink>& sink, spdlog::level::level_enum level,
                                    LogFormat format = LogFormat::kText, TraceContextProvider trace = nullptr) {
  LogOptions options;
  options.component = "abode-test";
  options.level = level;
  options.format = format;
  options.sink = sink;
  options.trace_context = std::move(trace);
  return ProcessLog::Install(std::move(options));
}

TEST(ProcessLogTest, DefaultLoggerWritesAtItsLevelAndAbove) {
  auto sink = std::make_shared<CaptureSink>();
  auto log = Install(sink, spdlog::level::warn);
  spdlog::info("quiet {}", 1);
  spdlog::warn("loud {}", 2);
  spdlog::error("louder {}", 3);
  const auto lines = sink->lines();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_NE(lines[0].find(" warn abode-test: loud 2\n"), std::string::npos) << lines[0];
  EXPECT_NE(lines[1].find(" error abode-test: louder 3\n"), std::string::npos) << lines[1];
}

TEST(ProcessLogTest, VerbosityStepsWithinTraceAndCriticalAndEveryChangeIsWritten) {
  auto sink = std::make_shared<CaptureSink>();
  auto log = Install(sink, spdlog::level::info);
  EXPECT_EQ(log->RaiseVerbosity("test"), spdlog::level::debug);
  EXPECT_TRUE(sink->Contains("info abode-test: log level is now debug, was info (test)"));
  spdlog::debug("now visible");
  EXPECT_TRUE(sink->Contains("debug abode-test: now visible"));
  EXPECT_EQ(log->RaiseVerbosity("test"), spdlog::level::trace);
  EXPECT_EQ(log->RaiseVerbosity("test"), spdlog::level::trace);
  EXPECT_TRUE(sink->Contains("log level stays trace (test)"));
  for (auto want : {spdlog::level::debug, spdlog::level::info, spdlog::level::warn, spdlog::level::err,
                    spdlog::level::critical, spdlog::level::critical}) {
    EXPECT_EQ(log->LowerVerbosity("test"), want);
    EXPECT_EQ(log->level(), want);
  }
  // Written although the level is above info.
  EXPECT_TRUE(sink->Contains("log level is now critical, was error (test)"));
  EXPECT_TRUE(sink->Contains("log level stays critical (test)"));
  spdlog::error("hidden");
  EXPECT_FALSE(sink->Contains("hidden"));
  log->SetLevel(spdlog::level::off, "admin");
  EXPECT_TRUE(sink->Contains("log level is now off, was critical (admin)"));
  spdlog::critical("hidden too");
  EXPECT_FALSE(sink->Contains("hidden too"));
}

TEST(ProcessLogTest, SignalsChangeTheLevelOnTheirOwnThread) {
  auto sink = std::make_shared<CaptureSink>();
  auto log = Install(sink, spdlog::level::info);
  ASSERT_TRUE(log->HandleLevelSignals().ok());
  EXPECT_FALSE(log->HandleLevelSignals().ok());
  ASSERT_EQ(::kill(::getpid(), SIGUSR1), 0);
  ASSERT_TRUE(sink->WaitFor("log level is now debug, was info (SIGUSR1)"));
  EXPECT_EQ(log->level(), spdlog::level::debug);
  ASSERT_EQ(::kill(::getpid(), SIGUSR2), 0);
  ASSERT_TRUE(sink->WaitFor("log level is now info, was debug (SIGUSR2)"));
  ASSERT_EQ(::kill(::getpid(), SIGUSR2), 0);
  ASSERT_TRUE(sink->WaitFor("log level is now warn, was info (SIGUSR2)"));
  EXPECT_EQ(log->level(), spdlog::level::warn);
}

TEST(ProcessLogTest, GrpcMessagesBecomeLinesOfTheLog) {
  auto sink = std::make_shared<CaptureSink>();
  auto log = Install(sink, spdlog::level::info, LogFormat::kJson);
  gpr_log_verbosity_init();  // what grpc_init does first: errors are written from then on
  gpr_log(GPR_ERROR, "connection \"%s\" failed: %d", "peer", 7);
  const auto lines = sink->lines();
  ASSERT_EQ(lines.size(), 1u);
  const auto line = nlohmann::json::parse(lines[0]);
  EXPECT_EQ(line["level"], "error");
  EXPECT_EQ(line["message"], "grpc: connection \"peer\" failed: 7");
  EXPECT_NE(line["source"].get<std::string>().find("process_log_test.cc:"), std::string::npos) << line;
}

// The provider answers per thread, as a tracer's "current span" does.
thread_local std::optional<TraceContext> current_span;

TEST(ProcessLogTest, LinesInsideATracedRequestCarryItsIds) {
  auto sink = std::make_shared<CaptureSink>();
  auto log = Install(sink, spdlog::level::info, LogFormat::kJson);
  spdlog::info("before the provider");
  log->SetTraceContextProvider([] { return current_span; });
  std::thread traced([] {
    current_span = TraceContext{"4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"};
    spdlog::info("inside");
  });
  traced.join();
  spdlog::info("outside");
  const auto lines = sink->lines();
  ASSERT_EQ(lines.size(), 3u);
  std::vector<nlohmann::json> parsed;
  for (const std::string& line : lines) parsed.push_back(nlohmann::json::parse(line));
  EXPECT_FALSE(parsed[0].contains("trace_id"));
  EXPECT_EQ(parsed[1]["message"], "inside");
  EXPECT_EQ(parsed[1]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(parsed[1]["span_id"], "00f067aa0ba902b7");
  EXPECT_EQ(parsed[2]["message"], "outside");
  EXPECT_FALSE(parsed[2].contains("trace_id"));
  EXPECT_EQ(parsed[2]["logger"], "abode-test");
}

// The flags refuse unknown values naming the flag, and parse known ones.
std::string ParseError(std::vector<std::string> args) {
  CLI::App app;
  LogFlags flags;
  AddLogFlags(app, &flags);
  std::reverse(args.begin(), args.end());
  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    return e.what();
  }
  return "";
}

TEST(LogFlagsTest, UnknownValuesAreRefusedNamingTheFlag) {
  EXPECT_NE(ParseError({"--log-level=loud"}).find("--log-level"), std::string::npos);
  EXPECT_NE(ParseError({"--log-level=loud"}).find("\"loud\""), std::string::npos);
  EXPECT_NE(ParseError({"--log-format=xml"}).find("--log-format"), std::string::npos);
  EXPECT_EQ(ParseError({"--log-format=json", "--log-level=debug"}), "");

  CLI::App app;
  LogFlags flags;
  AddLogFlags(app, &flags);
  app.parse(std::vector<std::string>{"warning", "--log-level", "json", "--log-format"});
  const LogOptions options = flags.Options("abode-node");
  EXPECT_EQ(options.component, "abode-node");
  EXPECT_EQ(options.level, spdlog::level::warn);
  EXPECT_EQ(options.format, LogFormat::kJson);
}

}  // namespace
}  // namespace abode::logging

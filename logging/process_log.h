// The log of one abode daemon: spdlog's default logger, writing LineFormatter lines (text or JSON) to standard
// error, at a level set with --log-level and changed at runtime by SIGUSR1 (one step more verbose) and SIGUSR2
// (one step less). Every spdlog::info(...) and friends in the process goes through it, and gRPC's own messages.
// See docs/logging.md.
#ifndef ABODE_LOGGING_PROCESS_LOG_H_
#define ABODE_LOGGING_PROCESS_LOG_H_

#include <memory>
#include <string>
#include "absl/strings/string_view.h"
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "logging/log_line.h"
#include "spdlog/logger.h"

namespace abode::logging {

struct LogOptions {
  std::string component;  // the logger's name on every line: "abode-allocator", "abode-node"
  LogFormat format = LogFormat::kText;
  spdlog::level::level_enum level = spdlog::level::info;
  TraceContextProvider trace_context;  // may be empty: no trace ids on any line
  spdlog::sink_ptr sink;               // where lines go; null: standard error
};

// The command-line flags of the daemons: --log-level and --log-format (environment ABODE_LOG_LEVEL and
// ABODE_LOG_FORMAT). A value they do not know makes CLI11 refuse the command line, naming the flag.
struct LogFlags {
  std::string level = "info";
  std::string format = "text";
  // `component` with the parsed flags. Only after the command line was parsed.
  LogOptions Options(std::string component) const;
};
void AddLogFlags(CLI::App& app, LogFlags* flags);

class ProcessLog {
 public:
  // Makes the logger described by `options` spdlog's default logger, and sends gRPC's own messages to it.
  static std::unique_ptr<ProcessLog> Install(LogOptions options);
  // Stops handling the level signals (they stay blocked).
  ~ProcessLog();
  ProcessLog(const ProcessLog&) = delete;
  ProcessLog& operator=(const ProcessLog&) = delete;

  // Every line written from now on asks `provider` for its trace and span. Thread-safe.
  void SetTraceContextProvider(TraceContextProvider provider);

  spdlog::level::level_enum level() const { return logger_->level(); }
  // Sets the level and writes a line saying so, whatever the new level (`why` says what asked for it).
  void SetLevel(spdlog::level::level_enum level, absl::string_view why);
  // One step more verbose (towards trace) or less (towards critical; `off` only by SetLevel), then as SetLevel.
  // At either end the level stays and the line says so. Return the new level.
  spdlog::level::level_enum RaiseVerbosity(absl::string_view why);
  spdlog::level::level_enum LowerVerbosity(absl::string_view why);

  // From now on SIGUSR1 raises and SIGUSR2 lowers the verbosity, handled on a thread of this object (never
  // inside a signal handler). Blocks both signals in the calling thread. REQUIRES: the process has started no
  // other thread yet (threads started later inherit the mask; an earlier one would die of the signal).
  absl::Status HandleLevelSignals();

  std::shared_ptr<spdlog::logger> logger() const { return logger_; }

 private:
  explicit ProcessLog(LogOptions options);
  void WatchSignals();

  const LogFormat format_;
  std::shared_ptr<spdlog::logger> logger_;
  int signal_fd_ = -1;  // signalfd for SIGUSR1 and SIGUSR2
  int stop_fd_ = -1;    // eventfd: the destructor ends the signal thread through it
  std::thread signal_thread_;
};

}  // namespace abode::logging

#endif  // ABODE_LOGGING_PROCESS_LOG_H_

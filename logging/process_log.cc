#include "logging/process_log.h"

#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "grpc/support/log.h"
#include "spdlog/sinks/stdout_sinks.h"
#include "spdlog/spdlog.h"

namespace abode::logging {
namespace {

// A CLI11 check that accepts what `parse` accepts; CLI11 puts the flag's name before the message.
template <typename Parse>
CLI::Validator Accepts(Parse parse, std::string what) {
  return CLI::Validator(
      [parse](std::string& value) -> std::string {
        const auto parsed = parse(value);
        return parsed.ok() ? "" : std::string(parsed.status().message());
      },
      std::move(what));
}

// gRPC's own messages (those its GRPC_VERBOSITY lets through, errors by default) as lines of the default
// logger, so that a JSON log stays JSON.
void LogGrpcMessage(gpr_log_func_args* args) {
  spdlog::level::level_enum level = spdlog::level::err;
  if (args->severity == GPR_LOG_SEVERITY_DEBUG) level = spdlog::level::debug;
  if (args->severity == GPR_LOG_SEVERITY_INFO) level = spdlog::level::info;
  spdlog::default_logger_raw()->log(spdlog::source_loc{args->file, args->line, ""}, level, "grpc: {}",
                                    args->message != nullptr ? args->message : "");
}

}  // namespace

void AddLogFlags(CLI::App& app, LogFlags* flags) {
  app.add_option("--log-level", flags->level, "trace|debug|info|warn|error|critical|off (SIGUSR1/SIGUSR2 change it)")
      ->envname("ABODE_LOG_LEVEL")
      ->check(Accepts(ParseLogLevel, "LEVEL"))
      ->capture_default_str();
  app.add_option("--log-format", flags->format, "text (for people) or json (one object per line)")
      ->envname("ABODE_LOG_FORMAT")
      ->check(Accepts(ParseLogFormat, "FORMAT"))
      ->capture_default_str();
}

LogOptions LogFlags::Options(std::string component) const {
  LogOptions options;
  options.component = std::move(component);
  // Checked by AddLogFlags' validators; a value they let through parses.
  options.level = ParseLogLevel(level).value_or(spdlog::level::info);
  options.format = ParseLogFormat(format).value_or(LogFormat::kText);
  return options;
}

std::unique_ptr<ProcessLog> ProcessLog::Install(LogOptions options) {
  std::unique_ptr<ProcessLog> log(new ProcessLog(std::move(options)));
  spdlog::set_default_logger(log->logger_);
  gpr_set_log_function(LogGrpcMessage);
  return log;
}

ProcessLog::ProcessLog(LogOptions options) : format_(options.format) {
  spdlog::sink_ptr sink = options.sink != nullptr ? options.sink : std::make_shared<spdlog::sinks::stderr_sink_mt>();
  logger_ = std::make_shared<spdlog::logger>(options.component, std::move(sink));
  logger_->set_formatter(std::make_unique<LineFormatter>(format_, std::move(options.trace_context)));
  logger_->set_level(options.level);
  // Warnings and errors reach the sink at once, whatever buffers the sink has.
  logger_->flush_on(spdlog::level::warn);
}

ProcessLog::~ProcessLog() {
  if (signal_thread_.joinable()) {
    const uint64_t one = 1;
    if (::write(stop_fd_, &one, sizeof(one)) != sizeof(one)) {
      // An eventfd write fails only on overflow, which a single write cannot reach.
    }
    signal_thread_.join();
  }
  if (signal_fd_ >= 0) ::close(signal_fd_);
  if (stop_fd_ >= 0) ::close(stop_fd_);
}

void ProcessLog::SetTraceContextProvider(TraceContextProvider provider) {
  logger_->set_formatter(std::make_unique<LineFormatter>(format_, std::move(provider)));
}

void ProcessLog::SetLevel(spdlog::level::level_enum level, absl::string_view why) {
  const spdlog::level::level_enum before = logger_->level();
  logger_->set_level(level);
  const std::string text =
      before == level ? absl::StrCat("log level stays ", LevelName(level), " (", why, ")")
                      : absl::StrCat("log level is now ", LevelName(level), ", was ", LevelName(before), " (", why, ")");
  // Written past the logger's level, so that the change shows even at error or off.
  const spdlog::details::log_msg msg(logger_->name(), spdlog::level::info, text);
  for (const spdlog::sink_ptr& sink : logger_->sinks()) {
    sink->log(msg);
    sink->flush();
  }
}

spdlog::level::level_enum ProcessLog::RaiseVerbosity(absl::string_view why) {
  const spdlog::level::level_enum now = logger_->level();
  const auto next = now == spdlog::level::trace ? now : static_cast<spdlog::level::level_enum>(now - 1);
  SetLevel(next, why);
  return next;
}

spdlog::level::level_enum ProcessLog::LowerVerbosity(absl::string_view why) {
  const spdlog::level::level_enum now = logger_->level();
  const auto next = now >= spdlog::level::critical ? now : static_cast<spdlog::level::level_enum>(now + 1);
  SetLevel(next, why);
  return next;
}

absl::Status ProcessLog::HandleLevelSignals() {
  if (signal_thread_.joinable()) return absl::FailedPreconditionError("level signals are already handled");
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGUSR1);
  sigaddset(&signals, SIGUSR2);
  if (const int e = pthread_sigmask(SIG_BLOCK, &signals, nullptr); e != 0) {
    return absl::InternalError(absl::StrCat("blocking SIGUSR1 and SIGUSR2: ", std::strerror(e)));
  }
  signal_fd_ = ::signalfd(-1, &signals, SFD_CLOEXEC);
  if (signal_fd_ < 0) return absl::InternalError(absl::StrCat("signalfd: ", std::strerror(errno)));
  stop_fd_ = ::eventfd(0, EFD_CLOEXEC);
  if (stop_fd_ < 0) return absl::InternalError(absl::StrCat("eventfd: ", std::strerror(errno)));
  signal_thread_ = std::thread([this] { WatchSignals(); });
  return absl::OkStatus();
}

void ProcessLog::WatchSignals() {
  pollfd fds[2] = {{signal_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
  while (true) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      spdlog::error("level signals: poll: {}", std::strerror(errno));
      return;
    }
    if (fds[1].revents != 0) return;
    signalfd_siginfo info{};
    if (::read(signal_fd_, &info, sizeof(info)) != sizeof(info)) continue;
    if (info.ssi_signo == SIGUSR1) RaiseVerbosity("SIGUSR1");
    if (info.ssi_signo == SIGUSR2) LowerVerbosity("SIGUSR2");
  }
}

}  // namespace abode::logging

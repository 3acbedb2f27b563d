#include "cli/abodectl.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <map>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace abode::cli {
namespace {

// The command tree. A new command group registers here; a new command in an existing group, in its Add*.
void AddCommands(CLI::App& app, CommandAction& selected) {
  AddPoolCommands(app, selected);
  AddAllocationCommands(app, selected);
  AddClusterCommands(app, selected);
  AddAddressCommands(app, selected);
  AddNodeCommands(app, selected);
  AddImportCommands(app, selected);
}

std::string UsageError(const CLI::App& app, const std::string& reason) {
  // help() describes the deepest subcommand the parse reached, which is the usage the user needs.
  return absl::StrCat("error: ", reason, "\n\n", app.help());
}

}  // namespace

absl::Status CheckServer(const std::string& server) {
  if (absl::StrContains(server, "://") || absl::StartsWith(server, "unix:")) return absl::OkStatus();
  const size_t colon = server.rfind(':');
  int port = 0;
  if (colon == std::string::npos || colon == 0 || !absl::SimpleAtoi(server.substr(colon + 1), &port) || port < 1 ||
      port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("--server: \"", server, "\" is not HOST:PORT"));
  }
  const std::string host = server.substr(0, colon);
  if (host.front() == '[' ? host.back() != ']' : host.find(':') != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("--server: \"", server, "\": an IPv6 host goes in brackets"));
  }
  return absl::OkStatus();
}

ParsedCommandLine ParseCommandLine(const std::vector<std::string>& args,
                                   const std::optional<std::string>& server_from_env) {
  ParsedCommandLine parsed;
  GlobalOptions global;
  global.server = server_from_env.value_or(kDefaultServer);
  double timeout_seconds = 10;
  CommandAction selected;

  CLI::App app("abodectl: operate the abode address authority", "abodectl");
  app.fallthrough();  // global flags may follow the command
  app.add_option("--server", global.server, "Allocator address HOST:PORT ($ABODE_SERVER)")
      ->capture_default_str()
      ->check(CLI::Validator(
          [](std::string& server) { return server.empty() ? std::string("must be HOST:PORT") : std::string(); }, ""));
  AddChoice(&app, "-o,--output", global.format, {{"table", OutputFormat::kTable}, {"json", OutputFormat::kJson}},
            "Output format (default table)");
  app.add_option("--timeout", timeout_seconds, "Deadline of every call, in seconds")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_flag("--check-config", global.check_config,
               "Validate the command line and $ABODE_SERVER, print what would be called and exit without dialing");
  AddCommands(app, selected);

  try {
    std::vector<std::string> reversed(args.rbegin(), args.rend());
    app.parse(std::move(reversed));
  } catch (const CLI::Success&) {  // --help
    parsed.out = app.help();
    return parsed;
  } catch (const CLI::ParseError& e) {
    parsed.exit_code = kExitUsage;
    parsed.err = UsageError(app, e.what());
    return parsed;
  }
  if (global.check_config) {
    if (absl::Status s = CheckServer(global.server); !s.ok()) {
      parsed.exit_code = kExitUsage;
      parsed.err = absl::StrCat("error: ", s.message(), "\n");
      return parsed;
    }
    parsed.out = absl::StrCat("abodectl: configuration ok: server ", global.server, "\n");
    return parsed;
  }
  if (!selected) {  // every leaf command selects an action; a group alone is refused by require_subcommand
    parsed.exit_code = kExitUsage;
    parsed.err = UsageError(app, "a command is required");
    return parsed;
  }
  global.timeout =
      std::chrono::milliseconds(std::max<long long>(1, std::llround(std::min(timeout_seconds, 1e9) * 1000)));
  parsed.invocation = Invocation{std::move(global), std::move(selected)};
  return parsed;
}

int RunAbodectl(const std::vector<std::string>& args, const std::optional<std::string>& server_from_env,
                const Dialer& dial, std::ostream& out, std::ostream& err) {
  try {
    ParsedCommandLine parsed = ParseCommandLine(args, server_from_env);
    out << parsed.out;
    err << parsed.err;
    if (!parsed.invocation) return parsed.exit_code;
    std::unique_ptr<Transport> transport = dial(parsed.invocation->global);
    Output output(parsed.invocation->global.format, out);
    Session session{*transport, output, parsed.invocation->global.timeout};
    const absl::Status status = parsed.invocation->action(session);
    out.flush();
    if (!status.ok()) {
      err << "error: " << absl::StatusCodeToString(status.code()) << ": " << status.message() << "\n";
      return kExitRpcError;
    }
    return kExitOk;
  } catch (const std::exception& e) {
    // Only allocation failures and library bugs get here; report them like any other failure.
    err << "error: INTERNAL: " << e.what() << "\n";
    return kExitRpcError;
  } catch (...) {
    err << "error: INTERNAL: unexpected failure\n";
    return kExitRpcError;
  }
}

}  // namespace abode::cli

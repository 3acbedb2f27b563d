// abodectl from argv to exit code: parse the command line, dial the server, run the selected command,
// report. Everything here returns values; nothing throws to the caller.
#ifndef ABODE_CLI_ABODECTL_H_
#define ABODE_CLI_ABODECTL_H_

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "cli/commands.h"
#include "cli/output.h"
#include "cli/transport.h"

namespace abode::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitRpcError = 1;
inline constexpr int kExitUsage = 2;

inline constexpr char kDefaultServer[] = "127.0.0.1:7443";

struct GlobalOptions {
  std::string server;
  OutputFormat format = OutputFormat::kTable;
  std::chrono::milliseconds timeout{10'000};
  // --check-config: validate the command line and exit without dialing; the command may be left out.
  bool check_config = false;
};

// A command line that asks for work: the global options and the selected command.
struct Invocation {
  GlobalOptions global;
  CommandAction action;
};

// What parsing decided: an invocation to run, or an exit with text to print (help, or a usage error).
struct ParsedCommandLine {
  std::optional<Invocation> invocation;
  int exit_code = kExitOk;
  std::string out;  // for stdout
  std::string err;  // for stderr
};

// `args` excludes the program name. `server_from_env` is $ABODE_SERVER if set; --server overrides it.
ParsedCommandLine ParseCommandLine(const std::vector<std::string>& args,
                                   const std::optional<std::string>& server_from_env);

// --check-config's test of --server: a gRPC target, HOST:PORT with a port in 1..65535 unless it is a URI
// (dns:///..., unix:...). INVALID_ARGUMENT naming --server otherwise.
absl::Status CheckServer(const std::string& server);

// Opens the transport for a run; DialInsecure in the binary, a fake in tests.
using Dialer = std::function<std::unique_ptr<Transport>(const GlobalOptions&)>;

// Parses, dials, runs and reports, returning the process exit code: 0, kExitRpcError after
// "error: CODE: message" on `err`, or kExitUsage after the reason and the usage.
int RunAbodectl(const std::vector<std::string>& args, const std::optional<std::string>& server_from_env,
                const Dialer& dial, std::ostream& out, std::ostream& err);

}  // namespace abode::cli

#endif  // ABODE_CLI_ABODECTL_H_

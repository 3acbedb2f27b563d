// abodectl's commands. A command is one function that declares its flags on a CLI11 (sub)command and
// says what to run when the command line selects it; the action gets a Session with the transport and the
// output. Flags live in state owned by the action, so parsing and running share no globals.
//
// Adding a command:
//   1. api_methods.h: a UnaryMethod constant for its RPC (api_methods_test checks it against the proto).
//   2. output.h: a Write* function for its response, if no existing one fits (JSON keys are a contract).
//   3. A function `void FooCommand(CLI::App& parent, CommandAction& selected)` beside its group
//      (pool_commands.cc, allocation_commands.cc, cluster_commands.cc, address_commands.cc, node_commands.cc,
//      or a new *_commands.cc whose Add*Commands is listed in abodectl.cc): add the subcommand and flags, then
//      OnSelected(command, selected, [request](Session& s) { return CallAndWrite(s, kFoo, *request, &WriteFoo); });
//   4. A test beside its group's (abodectl_test.cc, *_commands_test.cc): every flag lands in its request
//      field; bad usage exits 2.
// A streaming RPC is a StreamMethod used through OpenStream (see `watch` in node_commands.cc).
#ifndef ABODE_CLI_COMMANDS_H_
#define ABODE_CLI_COMMANDS_H_

#include <CLI/CLI.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "cli/output.h"
#include "cli/transport.h"

namespace abode::cli {

// What a running command may use. Transport and output outlive the command.
struct Session {
  Transport& transport;
  Output& output;
  std::chrono::milliseconds timeout;  // --timeout, which the transport applies to unary calls itself
};

// The work of the selected command. A non-OK status is reported as "error: CODE: message", exit code 1.
using CommandAction = std::function<absl::Status(Session&)>;

// Calls `method` and hands the response to `write(Output&, const Response&)`: the whole of most commands.
template <typename Request, typename Response, typename Write>
absl::Status CallAndWrite(Session& session, UnaryMethod<Request, Response> method, const Request& request,
                          Write write) {
  absl::StatusOr<Response> response = Call(session.transport, method, request);
  if (!response.ok()) return response.status();
  write(session.output, *response);
  return absl::OkStatus();
}

// Makes `command`, once parsed, put `action` into `selected`. `check` runs first; it reports usage rules
// CLI11 cannot express by throwing CLI::ValidationError (a usage error, exit code 2).
void OnSelected(CLI::App* command, CommandAction& selected, CommandAction action, std::function<void()> check = {});

// A usage rule for OnSelected's `check`: exactly one of `a` and `b` is given. Also marks them exclusive.
std::function<void()> ExactlyOneOf(CLI::Option* a, CLI::Option* b);

// A flag whose value is one of `choices` (spelled as the keys; help shows "a|b"); stores the mapped value.
template <typename T>
CLI::Option* AddChoice(CLI::App* command, const std::string& name, T& target, std::map<std::string, T> choices,
                       const std::string& description) {
  std::vector<std::string> names;
  for (const auto& choice : choices) names.push_back(choice.first);
  std::string type_name;
  for (const std::string& choice : names) type_name += (type_name.empty() ? "" : "|") + choice;
  return command
      ->add_option_function<std::string>(
          name, [&target, choices](const std::string& value) { target = choices.at(value); }, description)
      ->check(CLI::IsMember(names).description(""))
      ->type_name(type_name);
}

// The KEY=VALUE arguments and --remove KEY flags of the label commands (`label`, `nodes label`).
struct LabelEdit {
  std::vector<std::string> set;     // KEY=VALUE, checked by KeyValueValidator
  std::vector<std::string> remove;  // KEY
  // `current` with the keys removed and the values set.
  std::map<std::string, std::string> Apply(std::map<std::string, std::string> current) const;
};
// Declares them on `command`; the returned check (for OnSelected) refuses an edit that sets and removes
// nothing, and a key both set and removed.
std::function<void()> AddLabelEdit(CLI::App* command, LabelEdit& edit);

// Validators for flag values that have a fixed shape.
CLI::Validator KeyValueValidator();  // key=value with a non-empty key
CLI::Validator TimeValidator();      // see ParseTimeArgument

// The command groups; each adds its commands under `app`.
void AddPoolCommands(CLI::App& app, CommandAction& selected);
void AddAllocationCommands(CLI::App& app, CommandAction& selected);
void AddClusterCommands(CLI::App& app, CommandAction& selected);
void AddAddressCommands(CLI::App& app, CommandAction& selected);
void AddNodeCommands(CLI::App& app, CommandAction& selected);
void AddImportCommands(CLI::App& app, CommandAction& selected);

}  // namespace abode::cli

#endif  // ABODE_CLI_COMMANDS_H_

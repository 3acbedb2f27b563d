#include "cli/commands.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "cli/time_text.h"

namespace abode::cli {

void OnSelected(CLI::App* command, CommandAction& selected, CommandAction action, std::function<void()> check) {
  command->final_callback([&selected, action = std::move(action), check = std::move(check)] {
    if (check) check();
    selected = action;
  });
}

std::function<void()> ExactlyOneOf(CLI::Option* a, CLI::Option* b) {
  a->excludes(b);
  return [a, b] {
    if (a->count() + b->count() != 1) {
      throw CLI::ValidationError(absl::StrCat("exactly one of ", a->get_name(), " or ", b->get_name(), " is required"));
    }
  };
}

CLI::Validator KeyValueValidator() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        const auto equals = text.find('=');
        if (equals == std::string::npos || equals == 0) return absl::StrCat("\"", text, "\" is not key=value");
        return {};
      },
      "KEY=VALUE");
}

CLI::Validator TimeValidator() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        auto unix_ms = ParseTimeArgument(text);
        return unix_ms.ok() ? std::string() : std::string(unix_ms.status().message());
      },
      "TIME");
}

}  // namespace abode::cli

#include "cli/commands.h"

#include <set>
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

std::map<std::string, std::string> LabelEdit::Apply(std::map<std::string, std::string> current) const {
  for (const std::string& key : remove) current.erase(key);
  for (const std::string& label : set) {
    const auto equals = label.find('=');
    current[label.substr(0, equals)] = label.substr(equals + 1);
  }
  return current;
}

std::function<void()> AddLabelEdit(CLI::App* command, LabelEdit& edit) {
  command->add_option("LABEL", edit.set, "KEY=VALUE to set (repeatable); other labels stay")
      ->check(KeyValueValidator());
  command->add_option("--remove", edit.remove, "Label key to remove (repeatable)")->allow_extra_args(false);
  return [&edit] {
    if (edit.set.empty() && edit.remove.empty()) {
      throw CLI::ValidationError("LABEL", "give at least one KEY=VALUE to set or --remove KEY");
    }
    const std::set<std::string> removed(edit.remove.begin(), edit.remove.end());
    for (const std::string& label : edit.set) {
      const std::string key = label.substr(0, label.find('='));
      if (removed.count(key)) {
        throw CLI::ValidationError("--remove", absl::StrCat("key \"", key, "\" is also set by ", label));
      }
    }
  };
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

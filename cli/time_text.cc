#include "cli/time_text.h"

#include <charconv>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace abode::cli {

absl::StatusOr<std::int64_t> ParseTimeArgument(std::string_view text) {
  const bool all_digits = !text.empty() && text.find_first_not_of("0123456789") == std::string_view::npos;
  if (all_digits) {
    std::int64_t unix_ms = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), unix_ms);
    if (error == std::errc() && end == text.data() + text.size()) return unix_ms;
    return absl::InvalidArgumentError(absl::StrCat("time out of range: ", std::string(text)));
  }
  absl::Time time;
  std::string error;
  if (!absl::ParseTime(absl::RFC3339_full, std::string(text), &time, &error)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "time \"", std::string(text), "\" is neither RFC3339 (2026-11-22T14:05:00Z) nor unix milliseconds"));
  }
  return absl::ToUnixMillis(time);
}

std::string FormatUnixMillis(std::int64_t unix_ms) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E*SZ", absl::FromUnixMillis(unix_ms), absl::UTCTimeZone());
}

}  // namespace abode::cli

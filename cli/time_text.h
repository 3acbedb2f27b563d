// Times on the command line and in output. The API carries unix milliseconds; people read RFC3339 in UTC.
#ifndef ABODE_CLI_TIME_TEXT_H_
#define ABODE_CLI_TIME_TEXT_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace abode::cli {

// Parses "2026-11-22T14:05:00Z" (RFC3339, any offset, optional fraction) or unix milliseconds
// ("1795356300000") into unix milliseconds. INVALID_ARGUMENT for anything else.
absl::StatusOr<std::int64_t> ParseTimeArgument(std::string_view text);

// RFC3339 in UTC with a "Z" suffix; the fraction only when the milliseconds are not zero.
std::string FormatUnixMillis(std::int64_t unix_ms);

}  // namespace abode::cli

#endif  // ABODE_CLI_TIME_TEXT_H_

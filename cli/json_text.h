// JSON text for scripts: nlohmann::json values, pretty-printed, with one addition: integers of any size.
// Pool sizes are decimal strings in the API (an IPv6 pool can hold more than 2^64 addresses), yet scripts
// want numbers; nlohmann keeps at most 64-bit integers, so larger ones ride in the tree as a tagged binary
// value that only DumpJson knows how to write.
#ifndef ABODE_CLI_JSON_TEXT_H_
#define ABODE_CLI_JSON_TEXT_H_

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace abode::cli {

// A JSON number with exactly these decimal digits. Values that fit in 64 bits become ordinary numbers.
// Text that is not a plain unsigned decimal ("" or "12a") becomes a JSON string, so the output stays valid.
nlohmann::json DecimalNumber(std::string_view digits);

// Pretty-prints `value` (two-space indent, keys in sorted order, invalid UTF-8 replaced), no trailing newline.
std::string DumpJson(const nlohmann::json& value);

// The same text on one line without spaces (JSON Lines), no trailing newline.
std::string DumpJsonLine(const nlohmann::json& value);

}  // namespace abode::cli

#endif  // ABODE_CLI_JSON_TEXT_H_

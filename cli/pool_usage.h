// How full a pool is. Sizes arrive as decimal strings that may exceed 2^64 (IPv6), so the arithmetic is
// done in long double, which holds any such size with 64 significant bits: plenty for a percentage.
#ifndef ABODE_CLI_POOL_USAGE_H_
#define ABODE_CLI_POOL_USAGE_H_

#include <cstdint>
#include <string>
#include <string_view>

namespace abode::cli {

// 100 * used / size. 0 when size is zero or not a decimal number.
double UtilizationPercent(std::uint64_t used, std::string_view size);

// The percentage with one decimal and a percent sign: "12.5%".
std::string FormatPercent(double percent);

}  // namespace abode::cli

#endif  // ABODE_CLI_POOL_USAGE_H_

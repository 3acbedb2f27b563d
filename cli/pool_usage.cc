#include "cli/pool_usage.h"

#include <cstdio>

namespace abode::cli {

double UtilizationPercent(std::uint64_t used, std::string_view size) {
  if (size.empty()) return 0;
  long double total = 0;
  for (char c : size) {
    if (c < '0' || c > '9') return 0;
    total = total * 10 + (c - '0');
  }
  if (total == 0) return 0;
  return static_cast<double>(static_cast<long double>(used) * 100 / total);
}

std::string FormatPercent(double percent) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.1f%%", percent);
  return text;
}

}  // namespace abode::cli

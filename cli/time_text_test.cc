#include "cli/time_text.h"

#include <gtest/gtest.h>

namespace abode::cli {
namespace {

// 2026-11-22T14:05:00Z.
constexpr std::int64_t kExampleUnixMs = 1795356300000;

TEST(TimeTextTest, ParsesRfc3339) {
  EXPECT_EQ(ParseTimeArgument("2026-11-22T14:05:00Z").value(), kExampleUnixMs);
  EXPECT_EQ(ParseTimeArgument("2026-11-22T16:05:00+02:00").value(), kExampleUnixMs);
  EXPECT_EQ(ParseTimeArgument("2026-11-22T14:05:00.250Z").value(), kExampleUnixMs + 250);
}

TEST(TimeTextTest, ParsesUnixMilliseconds) {
  EXPECT_EQ(ParseTimeArgument("1795356300000").value(), kExampleUnixMs);
  EXPECT_EQ(ParseTimeArgument("0").value(), 0);
}

TEST(TimeTextTest, RejectsEverythingElse) {
  for (const char* text :
       {"", "yesterday", "2026-11-22", "2026-11-22 14:05:00", "-5", "1.5", "99999999999999999999999"}) {
    SCOPED_TRACE(text);
    EXPECT_EQ(ParseTimeArgument(text).status().code(), absl::StatusCode::kInvalidArgument);
  }
}

TEST(TimeTextTest, FormatsUtcWithZ) {
  EXPECT_EQ(FormatUnixMillis(kExampleUnixMs), "2026-11-22T14:05:00Z");
  EXPECT_EQ(FormatUnixMillis(kExampleUnixMs + 250), "2026-11-22T14:05:00.25Z");
  EXPECT_EQ(FormatUnixMillis(0), "1970-01-01T00:00:00Z");
}

}  // namespace
}  // namespace abode::cli

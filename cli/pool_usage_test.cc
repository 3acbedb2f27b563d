#include "cli/pool_usage.h"

#include <gtest/gtest.h>

namespace abode::cli {
namespace {

TEST(PoolUsageTest, Ipv4Pools) {
  EXPECT_DOUBLE_EQ(UtilizationPercent(0, "254"), 0);
  EXPECT_DOUBLE_EQ(UtilizationPercent(254, "254"), 100);
  EXPECT_NEAR(UtilizationPercent(64, "254"), 25.19685, 1e-4);
  EXPECT_EQ(FormatPercent(UtilizationPercent(64, "254")), "25.2%");
  // A /8 less network and broadcast: 16777214 addresses.
  EXPECT_EQ(FormatPercent(UtilizationPercent(1000000, "16777214")), "6.0%");
  EXPECT_EQ(FormatPercent(UtilizationPercent(2000000, "16777214")), "11.9%");
}

TEST(PoolUsageTest, HugeIpv6PoolDoesNotOverflow) {
  // A /48 holds 2^80 addresses; 2^64 - 1 of them used is 2^-16 of the pool.
  EXPECT_NEAR(UtilizationPercent(18446744073709551615ull, "1208925819614629174706176"), 100.0 / 65536, 1e-12);
  EXPECT_EQ(FormatPercent(UtilizationPercent(1000000, "1208925819614629174706176")), "0.0%");
  // A /64 (2^64 addresses, past uint64) with 2^63 used.
  EXPECT_EQ(FormatPercent(UtilizationPercent(9223372036854775808ull, "18446744073709551616")), "50.0%");
  // The whole IPv6 space, 2^128.
  EXPECT_GT(UtilizationPercent(1, "340282366920938463463374607431768211456"), 0);
}

TEST(PoolUsageTest, EmptyOrMalformedSizeIsZero) {
  EXPECT_EQ(UtilizationPercent(5, "0"), 0);
  EXPECT_EQ(UtilizationPercent(5, ""), 0);
  EXPECT_EQ(UtilizationPercent(5, "1e9"), 0);
  EXPECT_EQ(FormatPercent(0), "0.0%");
}

}  // namespace
}  // namespace abode::cli

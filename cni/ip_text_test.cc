#include "cni/ip_text.h"

#include <gtest/gtest.h>

namespace abode::cni {
namespace {

TEST(IpTextTest, ParsesAndPrintsBothFamilies) {
  auto v4 = Ip::Parse("10.1.2.3");
  ASSERT_TRUE(v4);
  EXPECT_EQ(v4->version, 4);
  EXPECT_EQ(v4->ToString(), "10.1.2.3");
  auto v6 = Ip::Parse("FD00:0::1");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->version, 6);
  EXPECT_EQ(v6->ToString(), "fd00::1");
  EXPECT_FALSE(Ip::Parse("10.1.2"));
  EXPECT_FALSE(Ip::Parse(""));
  EXPECT_FALSE(Ip::Parse("10.1.2.3/24"));
}

TEST(IpTextTest, PrefixNetworkLastAndContains) {
  auto p = Prefix::Parse("10.1.2.3/24");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->Network().ToString(), "10.1.2.0");
  EXPECT_EQ(p->Last().ToString(), "10.1.2.255");
  EXPECT_TRUE(p->Contains(*Ip::Parse("10.1.2.200")));
  EXPECT_FALSE(p->Contains(*Ip::Parse("10.1.3.1")));
  EXPECT_FALSE(p->Contains(*Ip::Parse("::a01:201")));
  auto v6 = Prefix::Parse("fd00:1::/64");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->Last().ToString(), "fd00:1::ffff:ffff:ffff:ffff");
  EXPECT_TRUE(v6->Contains(*Ip::Parse("fd00:1::8000:0:0:1")));
  auto all = Prefix::Parse("0.0.0.0/0");
  ASSERT_TRUE(all);
  EXPECT_TRUE(all->Contains(*Ip::Parse("255.255.255.255")));
}

TEST(IpTextTest, RejectsBadPrefixes) {
  EXPECT_FALSE(Prefix::Parse("10.0.0.0/33"));
  EXPECT_FALSE(Prefix::Parse("10.0.0.0/"));
  EXPECT_FALSE(Prefix::Parse("10.0.0.0/2x"));
  EXPECT_FALSE(Prefix::Parse("10.0.0.0"));
  ASSERT_TRUE(Prefix::Parse("10.0.0.7", true));
  EXPECT_EQ(Prefix::Parse("10.0.0.7", true)->length, 32);
  EXPECT_EQ(Prefix::Parse("fd00::7", true)->length, 128);
}

}  // namespace
}  // namespace abode::cni

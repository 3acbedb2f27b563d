#include "domain/pool_layout.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace abode::domain {
namespace {

using ::testing::HasSubstr;

v1::PoolSpec Spec(const std::string& cidr) {
  v1::PoolSpec s;
  s.set_name("p");
  s.set_cidr(cidr);
  return s;
}

u128 V(const std::string& text) {
  auto a = IpAddress::Parse(text, "test");
  EXPECT_TRUE(a.ok()) << text;
  return a.ok() ? a->value() : 0;
}

PoolLayout Layout(const v1::PoolSpec& spec) {
  auto l = PoolLayout::FromSpec(spec);
  EXPECT_TRUE(l.ok()) << l.status();
  return l.ok() ? *l : PoolLayout();
}

std::vector<std::string> AssignableText(const PoolLayout& l) {
  std::vector<std::string> out;
  const FreeSet s = l.Assignable();
  s.ForEachInterval([&](u128 lo, u128 hi) {
    for (u128 v = lo;; ++v) {
      out.push_back(IpAddress(l.family(), v).ToString());
      if (v == hi) break;
    }
  });
  return out;
}

void ExpectInvalid(const v1::PoolSpec& spec, const std::string& field, const std::string& detail = "") {
  auto l = PoolLayout::FromSpec(spec);
  ASSERT_FALSE(l.ok()) << spec.ShortDebugString();
  EXPECT_EQ(l.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(l.status().message()), ::testing::StartsWith(field + ":")) << l.status();
  if (!detail.empty()) {
    EXPECT_THAT(std::string(l.status().message()), HasSubstr(detail));
  }
}

TEST(PoolLayoutTest, Ipv4ExcludesNetworkAndBroadcastBelowSlash31) {
  const PoolLayout l = Layout(Spec("10.0.0.0/24"));
  EXPECT_EQ(l.size(), 254u);
  EXPECT_FALSE(l.IsAssignable(V("10.0.0.0")));
  EXPECT_FALSE(l.IsAssignable(V("10.0.0.255")));
  EXPECT_TRUE(l.IsAssignable(V("10.0.0.1")));
  EXPECT_TRUE(l.IsAssignable(V("10.0.0.254")));
  EXPECT_EQ(l.WhyNotAssignable(V("10.0.0.0")), "the network address");
  EXPECT_EQ(l.WhyNotAssignable(V("10.0.0.255")), "the broadcast address");
  EXPECT_EQ(l.Assignable().Lowest(), V("10.0.0.1"));

  EXPECT_THAT(AssignableText(Layout(Spec("10.0.0.4/30"))), ::testing::ElementsAre("10.0.0.5", "10.0.0.6"));
}

TEST(PoolLayoutTest, Ipv4Slash31AndSlash32UseEveryAddress) {
  EXPECT_THAT(AssignableText(Layout(Spec("10.0.0.2/31"))), ::testing::ElementsAre("10.0.0.2", "10.0.0.3"));
  EXPECT_THAT(AssignableText(Layout(Spec("10.0.0.9/32"))), ::testing::ElementsAre("10.0.0.9"));
  EXPECT_THAT(AssignableText(Layout(Spec("255.255.255.255/32"))), ::testing::ElementsAre("255.255.255.255"));
}

TEST(PoolLayoutTest, Ipv6ExcludesSubnetRouterAnycastExceptSlash127And128) {
  const PoolLayout l = Layout(Spec("fd00::/120"));
  EXPECT_EQ(l.size(), 255u);
  EXPECT_FALSE(l.IsAssignable(V("fd00::")));
  EXPECT_EQ(l.WhyNotAssignable(V("fd00::")), "the subnet-router anycast address");
  EXPECT_TRUE(l.IsAssignable(V("fd00::ff")));  // no broadcast in IPv6

  EXPECT_THAT(AssignableText(Layout(Spec("fd00::/127"))), ::testing::ElementsAre("fd00::", "fd00::1"));
  EXPECT_THAT(AssignableText(Layout(Spec("fd00::7/128"))), ::testing::ElementsAre("fd00::7"));
  EXPECT_THAT(AssignableText(Layout(Spec("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128"))),
              ::testing::ElementsAre("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
}

TEST(PoolLayoutTest, GatewayIsNeverAssignable) {
  v1::PoolSpec s = Spec("10.0.0.0/29");
  s.set_gateway("10.0.0.1");
  const PoolLayout l = Layout(s);
  ASSERT_TRUE(l.gateway().has_value());
  EXPECT_EQ(l.gateway()->ToString(), "10.0.0.1");
  EXPECT_EQ(l.size(), 5u);
  EXPECT_EQ(l.WhyNotAssignable(V("10.0.0.1")), "the pool's gateway");
  EXPECT_THAT(AssignableText(l), ::testing::ElementsAre("10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"));

  // A gateway on a /32 leaves nothing; on the network address it is not counted twice.
  v1::PoolSpec one = Spec("10.0.0.1/32");
  one.set_gateway("10.0.0.1");
  EXPECT_EQ(Layout(one).size(), 0u);
  v1::PoolSpec net = Spec("10.0.0.0/29");
  net.set_gateway("10.0.0.0");
  EXPECT_EQ(Layout(net).size(), 6u);

  v1::PoolSpec v6 = Spec("fd00::/126");
  v6.set_gateway("fd00::1");
  EXPECT_THAT(AssignableText(Layout(v6)), ::testing::ElementsAre("fd00::2", "fd00::3"));
}

TEST(PoolLayoutTest, ExcludesAtRangeBoundaries) {
  v1::PoolSpec s = Spec("10.0.0.0/24");
  s.add_exclude("10.0.0.0/30");    // overlaps the network address at the bottom
  s.add_exclude("10.0.0.252/30");  // overlaps the broadcast address at the top
  s.add_exclude("10.0.0.16/28");
  s.add_exclude("10.0.0.20/32");  // inside another exclude
  const PoolLayout l = Layout(s);
  EXPECT_EQ(l.size(), 256u - 4 - 4 - 16);
  EXPECT_EQ(l.Assignable().Lowest(), V("10.0.0.4"));
  EXPECT_FALSE(l.IsAssignable(V("10.0.0.3")));
  EXPECT_EQ(l.WhyNotAssignable(V("10.0.0.3")), "excluded by 10.0.0.0/30");
  EXPECT_EQ(l.WhyNotAssignable(V("10.0.0.16")), "excluded by 10.0.0.16/28");
  EXPECT_EQ(l.WhyNotAssignable(V("10.0.0.31")), "excluded by 10.0.0.16/28");
  EXPECT_TRUE(l.IsAssignable(V("10.0.0.15")));
  EXPECT_TRUE(l.IsAssignable(V("10.0.0.32")));
  EXPECT_TRUE(l.IsAssignable(V("10.0.0.251")));
  EXPECT_FALSE(l.IsAssignable(V("10.0.0.252")));
  EXPECT_EQ(l.Assignable().count(), l.size());

  // Excluding the whole CIDR leaves an empty pool.
  v1::PoolSpec all = Spec("10.0.0.0/30");
  all.add_exclude("10.0.0.0/30");
  EXPECT_EQ(Layout(all).size(), 0u);
  EXPECT_TRUE(Layout(all).Assignable().empty());
}

TEST(PoolLayoutTest, RangeNarrowsTheCidr) {
  v1::PoolSpec s = Spec("10.0.0.0/24");
  s.set_range_start("10.0.0.100");
  s.set_range_end("10.0.0.109");
  const PoolLayout l = Layout(s);
  EXPECT_EQ(l.range_first(), V("10.0.0.100"));
  EXPECT_EQ(l.range_last(), V("10.0.0.109"));
  EXPECT_EQ(l.size(), 10u);
  EXPECT_THAT(l.WhyNotAssignable(V("10.0.0.99")), HasSubstr("outside the pool's range 10.0.0.100-10.0.0.109"));
  EXPECT_FALSE(l.IsAssignable(V("10.0.0.110")));
  EXPECT_TRUE(l.IsAssignable(V("10.0.0.100")));
  EXPECT_TRUE(l.IsAssignable(V("10.0.0.109")));

  // A range that includes the network and broadcast addresses still skips them.
  v1::PoolSpec wide = Spec("10.0.0.0/24");
  wide.set_range_start("10.0.0.0");
  wide.set_range_end("10.0.0.255");
  EXPECT_EQ(Layout(wide).size(), 254u);

  // Only one end given: the other is the CIDR's.
  v1::PoolSpec start_only = Spec("10.0.0.0/24");
  start_only.set_range_start("10.0.0.200");
  EXPECT_EQ(Layout(start_only).size(), 55u);  // .200 - .254
  v1::PoolSpec end_only = Spec("10.0.0.0/24");
  end_only.set_range_end("10.0.0.9");
  EXPECT_EQ(Layout(end_only).size(), 9u);  // .1 - .9

  // A one-address range.
  v1::PoolSpec single = Spec("fd00::/64");
  single.set_range_start("fd00::5");
  single.set_range_end("fd00::5");
  EXPECT_THAT(AssignableText(Layout(single)), ::testing::ElementsAre("fd00::5"));
}

TEST(PoolLayoutTest, ReversedRangeIsRefused) {
  v1::PoolSpec s = Spec("10.0.0.0/24");
  s.set_range_start("10.0.0.20");
  s.set_range_end("10.0.0.10");
  ExpectInvalid(s, "pool.range_end", "below pool.range_start 10.0.0.20");
}

TEST(PoolLayoutTest, AddressesOutsideTheCidrAreRefused) {
  v1::PoolSpec start = Spec("10.0.0.0/24");
  start.set_range_start("10.0.1.1");
  ExpectInvalid(start, "pool.range_start", "outside the pool cidr 10.0.0.0/24");

  v1::PoolSpec end = Spec("10.0.0.0/24");
  end.set_range_end("9.255.255.255");
  ExpectInvalid(end, "pool.range_end", "outside the pool cidr");

  v1::PoolSpec gw = Spec("10.0.0.0/24");
  gw.set_gateway("10.0.1.1");
  ExpectInvalid(gw, "pool.gateway", "outside the pool cidr");

  v1::PoolSpec ex = Spec("10.0.0.0/24");
  ex.add_exclude("10.0.0.0/28");
  ex.add_exclude("10.0.0.0/23");  // wider than the pool
  ExpectInvalid(ex, "pool.exclude[1]", "outside the pool cidr");

  v1::PoolSpec ex2 = Spec("10.0.0.0/24");
  ex2.add_exclude("10.9.0.0/28");
  ExpectInvalid(ex2, "pool.exclude[0]");
}

TEST(PoolLayoutTest, FamilyMismatchIsRefused) {
  v1::PoolSpec gw = Spec("10.0.0.0/24");
  gw.set_gateway("fd00::1");
  ExpectInvalid(gw, "pool.gateway", "is IPv6 but the pool cidr 10.0.0.0/24 is IPv4");

  v1::PoolSpec start = Spec("fd00::/64");
  start.set_range_start("10.0.0.1");
  ExpectInvalid(start, "pool.range_start", "is IPv4 but the pool cidr fd00::/64 is IPv6");

  v1::PoolSpec ex = Spec("fd00::/64");
  ex.add_exclude("fd00::/120");
  ex.add_exclude("10.0.0.0/8");
  ExpectInvalid(ex, "pool.exclude[1]");
}

TEST(PoolLayoutTest, MalformedFieldsNameTheField) {
  ExpectInvalid(Spec(""), "pool.cidr", "must not be empty");
  ExpectInvalid(Spec("10.0.0.0"), "pool.cidr");
  ExpectInvalid(Spec("10.0.0.1/24"), "pool.cidr", "did you mean 10.0.0.0/24?");
  ExpectInvalid(Spec("10.0.0.0/33"), "pool.cidr");

  v1::PoolSpec start = Spec("10.0.0.0/24");
  start.set_range_start("10.0.0.x");
  ExpectInvalid(start, "pool.range_start");

  v1::PoolSpec ex = Spec("10.0.0.0/24");
  ex.add_exclude("10.0.0.0/28");
  ex.add_exclude("10.0.0.1/28");
  ExpectInvalid(ex, "pool.exclude[1]", "did you mean 10.0.0.0/28?");

  v1::PoolSpec name = Spec("10.0.0.0/24");
  name.set_name("Bad_Name");
  ExpectInvalid(name, "pool.name");
  name.set_name("");
  ExpectInvalid(name, "pool.name", "must not be empty");

  v1::PoolSpec net = Spec("10.0.0.0/24");
  net.set_network("-net");
  ExpectInvalid(net, "pool.network");

  v1::PoolSpec strategy = Spec("10.0.0.0/24");
  strategy.set_strategy(static_cast<v1::AllocationStrategy>(99));
  ExpectInvalid(strategy, "pool.strategy");

  v1::PoolSpec purpose = Spec("10.0.0.0/24");
  purpose.set_purpose(static_cast<v1::PoolPurpose>(42));
  ExpectInvalid(purpose, "pool.purpose");
}

TEST(PoolLayoutTest, HugePoolsAreSizedWithoutEnumeration) {
  const PoolLayout v4 = Layout(Spec("10.0.0.0/8"));
  EXPECT_EQ(v4.size(), (u128{1} << 24) - 2);
  EXPECT_EQ(U128ToString(v4.size()), "16777214");

  const PoolLayout v6 = Layout(Spec("fd00:1:2::/48"));
  EXPECT_EQ(v6.size(), (u128{1} << 80) - 1);
  EXPECT_EQ(U128ToString(v6.size()), "1208925819614629174706175");
  EXPECT_EQ(v6.Assignable().interval_count(), 1u);

  v1::PoolSpec holes = Spec("fd00::/64");
  holes.set_gateway("fd00::1");
  holes.add_exclude("fd00::ff00:0:0/96");
  const PoolLayout l = Layout(holes);
  EXPECT_EQ(l.size(), (u128{1} << 64) - 2 - (u128{1} << 32));
  EXPECT_EQ(U128ToString(l.size()), "18446744069414584318");

  // The whole IPv6 space minus the anycast address is 2^128 - 1, the largest count there is.
  EXPECT_EQ(U128ToString(Layout(Spec("::/0")).size()), "340282366920938463463374607431768211455");
}

}  // namespace
}  // namespace abode::domain

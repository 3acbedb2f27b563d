#include "domain/address.h"

#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace abode::domain {
namespace {

using ::testing::HasSubstr;

constexpr u128 kMax = ~u128{0};

std::string RoundTrip(const std::string& text) {
  auto a = IpAddress::Parse(text, "address");
  EXPECT_TRUE(a.ok()) << text << ": " << a.status();
  return a.ok() ? a->ToString() : std::string();
}

TEST(IpAddressTest, ParsesAndFormatsIpv4) {
  auto a = IpAddress::Parse("10.1.2.3", "address");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->family(), Family::kV4);
  EXPECT_EQ(a->value(), (u128{10} << 24) | (u128{1} << 16) | (u128{2} << 8) | 3);
  EXPECT_EQ(a->ToString(), "10.1.2.3");
  EXPECT_EQ(RoundTrip("0.0.0.0"), "0.0.0.0");
  EXPECT_EQ(RoundTrip("255.255.255.255"), "255.255.255.255");
  EXPECT_EQ(RoundTrip("1.20.0.255"), "1.20.0.255");
  EXPECT_EQ(RoundTrip("192.168.100.7"), "192.168.100.7");
  EXPECT_EQ(IpAddress::Parse("255.255.255.255", "a")->value(), u128{0xffffffff});
}

TEST(IpAddressTest, FormatsIpv6CanonicallyPerRfc5952) {
  EXPECT_EQ(RoundTrip("::"), "::");
  EXPECT_EQ(RoundTrip("::1"), "::1");
  EXPECT_EQ(RoundTrip("FD00:0000:0000:0000:0000:0000:0000:0001"), "fd00::1");
  EXPECT_EQ(RoundTrip("fd00::0001"), "fd00::1");
  // The longest run of zero groups is compressed; on a tie the first one.
  EXPECT_EQ(RoundTrip("2001:db8:0:0:1:0:0:1"), "2001:db8::1:0:0:1");
  EXPECT_EQ(RoundTrip("2001:0:0:1:0:0:0:1"), "2001:0:0:1::1");
  // A single zero group is not compressed.
  EXPECT_EQ(RoundTrip("2001:db8:0:1:1:1:1:1"), "2001:db8:0:1:1:1:1:1");
  EXPECT_EQ(RoundTrip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
  // IPv4-mapped addresses keep the dotted tail (RFC 5952 section 5).
  EXPECT_EQ(RoundTrip("::ffff:10.0.0.1"), "::ffff:10.0.0.1");
  // Other addresses inside ::/96 are plain hexadecimal, never the deprecated IPv4-compatible form.
  EXPECT_EQ(RoundTrip("::1:2"), "::1:2");
  EXPECT_EQ(RoundTrip("::102:304"), "::102:304");
  EXPECT_EQ(RoundTrip("::ffff"), "::ffff");
  EXPECT_EQ(RoundTrip("::1.2.3.4"), "::102:304");
}

TEST(IpAddressTest, Ipv6ValueIsBigEndian) {
  auto a = IpAddress::Parse("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "address");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->family(), Family::kV6);
  EXPECT_EQ(a->value(), kMax);
  EXPECT_EQ(IpAddress::Parse("1::", "address")->value(), u128{1} << 112);
  EXPECT_EQ(IpAddress(Family::kV6, (u128{0xfd00} << 112) | 1).ToString(), "fd00::1");
}

TEST(IpAddressTest, BytesRoundTrip) {
  for (const char* text : {"10.0.0.1", "0.0.0.0", "255.255.255.255", "fd00::1", "::", "ffff::ffff"}) {
    auto a = IpAddress::Parse(text, "address");
    ASSERT_TRUE(a.ok()) << text;
    const std::string bytes = a->ToBytes();
    EXPECT_EQ(bytes.size(), a->family() == Family::kV4 ? 4u : 16u);
    auto b = IpAddress::FromBytes(bytes);
    ASSERT_TRUE(b.ok());
    EXPECT_EQ(*a, *b) << text;
  }
  EXPECT_EQ(IpAddress::Parse("10.0.0.1", "a")->ToBytes(), std::string("\x0a\x00\x00\x01", 4));
  EXPECT_EQ(IpAddress::FromBytes(std::string(5, '\0')).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(IpAddress::FromBytes("").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(IpAddressTest, OrdersByFamilyThenValue) {
  const IpAddress v4(Family::kV4, 5);
  const IpAddress v4b(Family::kV4, 6);
  const IpAddress v6(Family::kV6, 5);
  EXPECT_LT(v4, v4b);
  EXPECT_LT(v4, v6);
  EXPECT_NE(v4, v6);
}

TEST(IpAddressTest, GarbageIsRefusedNamingTheField) {
  for (const char* text : {"", "10.0.0", "10.0.0.256", "10.0.0.1.2", "010.0.0.1", "hello", "10.0.0.1 ", " 10.0.0.1",
                           "fd00:::1", "fd00::1::2", "fe80::1%eth0", "1:2:3:4:5:6:7:8:9", "g::1", "10.0.0.1/32"}) {
    auto a = IpAddress::Parse(text, "pool.gateway");
    ASSERT_FALSE(a.ok()) << '"' << text << '"';
    EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(std::string(a.status().message()), HasSubstr("pool.gateway")) << text;
  }
  // Overlong input is cut in the message rather than echoed whole.
  const std::string huge(10000, '1');
  auto a = IpAddress::Parse(huge, "address");
  ASSERT_FALSE(a.ok());
  EXPECT_THAT(std::string(a.status().message()), HasSubstr("address"));
  EXPECT_LT(a.status().message().size(), 200u);
}

TEST(U128ToStringTest, Decimal) {
  EXPECT_EQ(U128ToString(0), "0");
  EXPECT_EQ(U128ToString(7), "7");
  EXPECT_EQ(U128ToString(10), "10");
  EXPECT_EQ(U128ToString(u128{1} << 64), "18446744073709551616");
  EXPECT_EQ(U128ToString((u128{1} << 80) - 1), "1208925819614629174706175");
  EXPECT_EQ(U128ToString(kMax), "340282366920938463463374607431768211455");
}

absl::StatusOr<Prefix> P(const std::string& text) { return Prefix::Parse(text, "pool.cidr"); }

TEST(PrefixTest, Ipv4LengthsAtTheEnds) {
  auto all = P("0.0.0.0/0");
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->length(), 0);
  EXPECT_EQ(all->first(), 0u);
  EXPECT_EQ(all->last(), u128{0xffffffff});
  EXPECT_EQ(all->size(), u128{1} << 32);

  auto p31 = P("10.0.0.2/31");
  ASSERT_TRUE(p31.ok()) << p31.status();
  EXPECT_EQ(p31->size(), 2u);
  EXPECT_EQ(IpAddress(Family::kV4, p31->last()).ToString(), "10.0.0.3");

  auto p32 = P("10.0.0.7/32");
  ASSERT_TRUE(p32.ok());
  EXPECT_EQ(p32->size(), 1u);
  EXPECT_EQ(p32->first(), p32->last());

  auto top = P("255.255.255.255/32");
  ASSERT_TRUE(top.ok());
  EXPECT_EQ(top->size(), 1u);
  EXPECT_EQ(top->last(), u128{0xffffffff});
  EXPECT_EQ(top->ToString(), "255.255.255.255/32");

  auto p8 = P("10.0.0.0/8");
  ASSERT_TRUE(p8.ok());
  EXPECT_EQ(p8->size(), u128{1} << 24);
  EXPECT_EQ(IpAddress(Family::kV4, p8->last()).ToString(), "10.255.255.255");
}

TEST(PrefixTest, Ipv6LengthsAtTheEnds) {
  auto all = P("::/0");
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->first(), 0u);
  EXPECT_EQ(all->last(), kMax);
  EXPECT_EQ(all->size(), kMax) << "2^128 does not fit: size saturates";

  auto p127 = P("fd00::/127");
  ASSERT_TRUE(p127.ok());
  EXPECT_EQ(p127->size(), 2u);

  auto p128 = P("fd00::5/128");
  ASSERT_TRUE(p128.ok());
  EXPECT_EQ(p128->size(), 1u);

  auto top = P("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128");
  ASSERT_TRUE(top.ok()) << top.status();
  EXPECT_EQ(top->first(), kMax);
  EXPECT_EQ(top->last(), kMax);
  EXPECT_EQ(top->size(), 1u);

  auto p1 = P("8000::/1");
  ASSERT_TRUE(p1.ok());
  EXPECT_EQ(p1->size(), u128{1} << 127);
  EXPECT_EQ(p1->last(), kMax);

  auto p48 = P("fd00:1:2::/48");
  ASSERT_TRUE(p48.ok());
  EXPECT_EQ(p48->size(), u128{1} << 80);
  EXPECT_EQ(IpAddress(Family::kV6, p48->last()).ToString(), "fd00:1:2:ffff:ffff:ffff:ffff:ffff");
  EXPECT_EQ(P("FD00:0001:0002::/48")->ToString(), "fd00:1:2::/48");
}

TEST(PrefixTest, HostBitsSetAreRefusedWithASuggestion) {
  auto p = P("10.0.0.1/24");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(p.status().message()), HasSubstr("pool.cidr"));
  EXPECT_THAT(std::string(p.status().message()), HasSubstr("did you mean 10.0.0.0/24?"));

  auto v6 = P("fd00::1/64");
  ASSERT_FALSE(v6.ok());
  EXPECT_THAT(std::string(v6.status().message()), HasSubstr("did you mean fd00::/64?"));

  auto zero = P("1.2.3.4/0");
  ASSERT_FALSE(zero.ok());
  EXPECT_THAT(std::string(zero.status().message()), HasSubstr("did you mean 0.0.0.0/0?"));

  auto p31 = P("10.0.0.3/31");
  ASSERT_FALSE(p31.ok());
  EXPECT_THAT(std::string(p31.status().message()), HasSubstr("did you mean 10.0.0.2/31?"));
}

TEST(PrefixTest, BadPrefixLengthsAreRefused) {
  for (const char* text :
       {"10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/", "10.0.0.0/abc", "10.0.0.0/8x", "10.0.0.0/ 8", "10.0.0.0/+8",
        "fd00::/129", "fd00::/1000", "10.0.0.0", "fd00::", "/24", "x/24", "10.0.0.0/99999999999999999999"}) {
    auto p = P(text);
    ASSERT_FALSE(p.ok()) << text;
    EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(std::string(p.status().message()), HasSubstr("pool.cidr")) << text;
  }
  EXPECT_THAT(std::string(P("10.0.0.0/33").status().message()), HasSubstr("0-32"));
  EXPECT_THAT(std::string(P("fd00::/129").status().message()), HasSubstr("0-128"));
  EXPECT_THAT(std::string(P("10.0.0.0").status().message()), HasSubstr("missing /prefix-length"));
}

TEST(PrefixTest, Contains) {
  const Prefix net = *P("10.0.0.0/24");
  EXPECT_TRUE(net.Contains(*IpAddress::Parse("10.0.0.0", "a")));
  EXPECT_TRUE(net.Contains(*IpAddress::Parse("10.0.0.255", "a")));
  EXPECT_FALSE(net.Contains(*IpAddress::Parse("10.0.1.0", "a")));
  EXPECT_FALSE(net.Contains(*IpAddress::Parse("9.255.255.255", "a")));
  // Same numeric value, other family.
  EXPECT_FALSE(net.Contains(IpAddress(Family::kV6, net.first() + 1)));

  EXPECT_TRUE(net.Contains(*P("10.0.0.0/24")));
  EXPECT_TRUE(net.Contains(*P("10.0.0.128/25")));
  EXPECT_TRUE(net.Contains(*P("10.0.0.255/32")));
  EXPECT_FALSE(net.Contains(*P("10.0.0.0/23")));
  EXPECT_FALSE(net.Contains(*P("10.0.1.0/24")));
  EXPECT_FALSE(net.Contains(Prefix(IpAddress(Family::kV6, net.first()), 120)));

  const Prefix all6 = *P("::/0");
  EXPECT_TRUE(all6.Contains(IpAddress(Family::kV6, kMax)));
  EXPECT_TRUE(all6.Contains(*P("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128")));
  EXPECT_FALSE(all6.Contains(*IpAddress::Parse("10.0.0.1", "a")));
  const Prefix all4 = *P("0.0.0.0/0");
  EXPECT_TRUE(all4.Contains(*IpAddress::Parse("255.255.255.255", "a")));
}

}  // namespace
}  // namespace abode::domain

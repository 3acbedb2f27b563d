#include "kernel_model.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace abode::node {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(IpAddressTest, ParsesAndPrintsCanonically) {
  absl::StatusOr<IpAddress> v4 = IpAddress::Parse("192.0.2.7");
  ASSERT_TRUE(v4.ok());
  EXPECT_EQ(v4->family, IpFamily::kIpv4);
  EXPECT_EQ(v4->ByteLength(), 4u);
  EXPECT_EQ(v4->ToString(), "192.0.2.7");

  absl::StatusOr<IpAddress> v6 = IpAddress::Parse("2001:DB8:0:0::1");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->family, IpFamily::kIpv6);
  EXPECT_EQ(v6->ToString(), "2001:db8::1");

  EXPECT_EQ(*CanonicalAddress("2001:0db8::0001"), "2001:db8::1");
  EXPECT_THAT(IpAddress::Parse("192.0.2.7/24").status().message(), HasSubstr("192.0.2.7/24"));
  EXPECT_FALSE(IpAddress::Parse("").ok());
}

TEST(IpAddressTest, OrdersByFamilyThenBytes) {
  EXPECT_LT(*IpAddress::Parse("192.0.2.1"), *IpAddress::Parse("192.0.2.2"));
  EXPECT_LT(*IpAddress::Parse("255.255.255.255"), *IpAddress::Parse("::1"));
  EXPECT_EQ(*IpAddress::Parse("::ffff:0:1"), *IpAddress::Parse("::ffff:0:0001"));
}

TEST(OwnedAddressTest, Validation) {
  EXPECT_TRUE(ValidateOwnedAddress({"eth0", "192.0.2.1", 32}).ok());
  EXPECT_TRUE(ValidateOwnedAddress({"eth0", "2001:db8::1", 128}).ok());
  EXPECT_THAT(ValidateOwnedAddress({"eth0", "192.0.2.1", 33}).message(), HasSubstr("33"));
  EXPECT_THAT(ValidateOwnedAddress({"eth0", "2001:DB8::1", 64}).message(), HasSubstr("not canonical"));
  EXPECT_THAT(ValidateOwnedAddress({"", "192.0.2.1", 32}).message(), HasSubstr("interface"));
  EXPECT_FALSE(ValidateOwnedAddress({"a-very-long-interface-name", "192.0.2.1", 32}).ok());
  EXPECT_EQ(OwnedAddress({"eth0", "192.0.2.1", 32}).ToString(), "192.0.2.1/32 on eth0");
}

TEST(DiffTest, SetDiffListsAdditionsAndRemovals) {
  std::set<int> current = {1, 2, 3, 5};
  std::set<int> desired = {2, 4, 5, 6};
  SetDiff<int> diff = Diff(current, desired);
  EXPECT_THAT(diff.to_add, ElementsAre(4, 6));
  EXPECT_THAT(diff.to_remove, ElementsAre(1, 3));
  EXPECT_TRUE(Diff(desired, desired).empty());
  EXPECT_THAT(Diff(std::set<int>{}, desired).to_add, ElementsAre(2, 4, 5, 6));
  EXPECT_THAT(Diff(current, std::set<int>{}).to_remove, ElementsAre(1, 2, 3, 5));
}

TEST(DiffTest, OwnedAddressesDifferByEveryField) {
  std::set<OwnedAddress> current = {{"eth0", "192.0.2.1", 32}, {"eth0", "192.0.2.2", 32}};
  std::set<OwnedAddress> desired = {{"eth1", "192.0.2.1", 32}, {"eth0", "192.0.2.2", 24}};
  SetDiff<OwnedAddress> diff = Diff(current, desired);
  EXPECT_EQ(diff.to_add.size(), 2u);
  EXPECT_EQ(diff.to_remove.size(), 2u);
}

MagicDnat Metadata(uint16_t target_port) {
  return MagicDnat{IpFamily::kIpv4, "169.254.169.254", L4Protocol::kTcp, 80, "198.51.100.2", target_port};
}

TEST(DiffTest, NatRulesetDiffTreatsAChangedTargetAsRemoveAndAdd) {
  NatRuleset current;
  current.magic_dnat = {Metadata(8080)};
  current.elastic_nat = {{"203.0.113.10", "192.0.2.10"}};
  NatRuleset desired;
  desired.magic_dnat = {Metadata(8081)};
  desired.elastic_nat = {{"203.0.113.10", "192.0.2.10"}, {"203.0.113.11", "192.0.2.11"}};
  NatRulesetDiff diff = Diff(current, desired);
  EXPECT_THAT(diff.magic_dnat.to_remove, ElementsAre(Metadata(8080)));
  EXPECT_THAT(diff.magic_dnat.to_add, ElementsAre(Metadata(8081)));
  EXPECT_TRUE(diff.elastic_nat.to_remove.empty());
  EXPECT_THAT(diff.elastic_nat.to_add, ElementsAre(ElasticNat{"203.0.113.11", "192.0.2.11"}));
  EXPECT_TRUE(Diff(desired, desired).empty());
  EXPECT_FALSE(current == desired);
}

TEST(ValidateNatRulesetTest, AcceptsAValidRuleset) {
  NatRuleset r;
  r.magic_dnat = {Metadata(80),
                  {IpFamily::kIpv4, "169.254.169.254", L4Protocol::kUdp, 80, "198.51.100.2", 53},
                  {IpFamily::kIpv6, "fd00:ec2::254", L4Protocol::kTcp, 80, "2001:db8::2", 8080}};
  r.elastic_nat = {{"203.0.113.10", "192.0.2.10"}, {"2001:db8:3::10", "2001:db8:2::10"}};
  EXPECT_TRUE(ValidateNatRuleset(r).ok());
  EXPECT_EQ(FamilyOf(ElasticNat{"2001:db8:3::10", "2001:db8:2::10"}), IpFamily::kIpv6);
}

TEST(ValidateNatRulesetTest, RejectsConflictsAndBadAddresses) {
  NatRuleset same_key;
  same_key.magic_dnat = {Metadata(80), Metadata(81)};
  EXPECT_THAT(ValidateNatRuleset(same_key).message(), HasSubstr("same address and port"));

  NatRuleset elastic_twice;
  elastic_twice.elastic_nat = {{"203.0.113.10", "192.0.2.10"}, {"203.0.113.10", "192.0.2.11"}};
  EXPECT_THAT(ValidateNatRuleset(elastic_twice).message(), HasSubstr("elastic address 203.0.113.10"));

  NatRuleset workload_twice;
  workload_twice.elastic_nat = {{"203.0.113.10", "192.0.2.10"}, {"203.0.113.11", "192.0.2.10"}};
  EXPECT_THAT(ValidateNatRuleset(workload_twice).message(), HasSubstr("workload address 192.0.2.10"));

  NatRuleset mixed;
  mixed.elastic_nat = {{"203.0.113.10", "2001:db8::10"}};
  EXPECT_THAT(ValidateNatRuleset(mixed).message(), HasSubstr("not an ip address"));

  NatRuleset wrong_family;
  wrong_family.magic_dnat = {{IpFamily::kIpv6, "169.254.169.254", L4Protocol::kTcp, 80, "2001:db8::2", 80}};
  EXPECT_THAT(ValidateNatRuleset(wrong_family).message(), HasSubstr("169.254.169.254"));

  NatRuleset port_zero;
  port_zero.magic_dnat = {Metadata(0)};
  EXPECT_THAT(ValidateNatRuleset(port_zero).message(), HasSubstr("port 0"));

  NatRuleset not_canonical;
  not_canonical.elastic_nat = {{"2001:DB8::10", "2001:db8::11"}};
  EXPECT_THAT(ValidateNatRuleset(not_canonical).message(), HasSubstr("not canonical"));
}

}  // namespace
}  // namespace abode::node

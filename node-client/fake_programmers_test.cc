#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fake_address_programmer.h"
#include "fake_rule_programmer.h"

namespace abode::node {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(FakeAddressProgrammerTest, AddsListsAndRemovesOwnedAddresses) {
  FakeAddressProgrammer fake;
  fake.AddInterface("eth0");
  const OwnedAddress a{"eth0", "192.0.2.1", 32};
  ASSERT_TRUE(fake.Add(a).ok());
  ASSERT_TRUE(fake.Add(a).ok());  // already ours: no-op
  EXPECT_EQ(fake.adds(), 1);
  EXPECT_THAT(*fake.ListOwned(), ElementsAre(a));
  ASSERT_TRUE(fake.Remove(a).ok());
  ASSERT_TRUE(fake.Remove(a).ok());  // absent: no-op
  EXPECT_EQ(fake.removes(), 1);
  EXPECT_TRUE(fake.ListOwned()->empty());
}

TEST(FakeAddressProgrammerTest, RefusesForeignAddressesAndMissingInterfaces) {
  FakeAddressProgrammer fake;
  fake.AddInterface("eth0");
  const OwnedAddress foreign{"eth0", "192.0.2.9", 24};
  fake.AddForeignAddress(foreign);
  absl::Status add = fake.Add({"eth0", "192.0.2.9", 32});
  EXPECT_TRUE(absl::IsFailedPrecondition(add));
  EXPECT_THAT(add.message(), HasSubstr("192.0.2.9"));
  EXPECT_TRUE(absl::IsFailedPrecondition(fake.Remove(foreign)));
  absl::Status missing = fake.Add({"eth7", "192.0.2.1", 32});
  EXPECT_TRUE(absl::IsNotFound(missing));
  EXPECT_THAT(missing.message(), HasSubstr("eth7"));
  EXPECT_TRUE(fake.ListOwned()->empty());
}

TEST(FakeAddressProgrammerTest, InjectedFailuresHappenOnce) {
  FakeAddressProgrammer fake;
  fake.AddInterface("eth0");
  fake.FailNextAdd(absl::UnavailableError("netlink down"));
  EXPECT_TRUE(absl::IsUnavailable(fake.Add({"eth0", "192.0.2.1", 32})));
  EXPECT_TRUE(fake.Add({"eth0", "192.0.2.1", 32}).ok());
  fake.FailNextList(absl::UnavailableError("netlink down"));
  EXPECT_FALSE(fake.ListOwned().ok());
  EXPECT_TRUE(fake.ListOwned().ok());
  fake.FailNextRemove(absl::InternalError("boom"));
  EXPECT_FALSE(fake.Remove({"eth0", "192.0.2.1", 32}).ok());
  EXPECT_EQ(fake.owned().size(), 1u);
}

TEST(FakeAnnouncerTest, RecordsAnnouncements) {
  FakeAnnouncer fake;
  ASSERT_TRUE(fake.Announce({"eth0", "192.0.2.1", 32}).ok());
  fake.FailNextAnnounce(absl::UnavailableError("link down"));
  EXPECT_FALSE(fake.Announce({"eth0", "192.0.2.2", 32}).ok());
  EXPECT_THAT(fake.announced(), ElementsAre(OwnedAddress{"eth0", "192.0.2.1", 32}));
}

TEST(FakeRuleProgrammerTest, AppliesDiffsAndCountsChanges) {
  FakeRuleProgrammer fake;
  NatRuleset desired;
  desired.elastic_nat = {{"203.0.113.10", "192.0.2.10"}};
  desired.magic_dnat = {{IpFamily::kIpv4, "169.254.169.254", L4Protocol::kTcp, 80, "198.51.100.2", 8080}};
  ASSERT_TRUE(fake.Apply(desired).ok());
  ASSERT_TRUE(fake.Apply(desired).ok());
  EXPECT_EQ(fake.applies(), 2);
  EXPECT_EQ(fake.batches(), 1);
  EXPECT_EQ(fake.mappings_added(), 2);
  EXPECT_EQ(*fake.Read(), desired);

  desired.elastic_nat.clear();
  ASSERT_TRUE(fake.Apply(desired).ok());
  EXPECT_EQ(fake.mappings_removed(), 1);
  EXPECT_EQ(fake.batches(), 2);
}

TEST(FakeRuleProgrammerTest, RejectsInvalidRulesetsAndInjectedFailures) {
  FakeRuleProgrammer fake;
  NatRuleset bad;
  bad.elastic_nat = {{"203.0.113.10", "192.0.2.10"}, {"203.0.113.10", "192.0.2.11"}};
  EXPECT_TRUE(absl::IsInvalidArgument(fake.Apply(bad)));
  fake.FailNextApply(absl::UnavailableError("nfnetlink down"));
  EXPECT_TRUE(absl::IsUnavailable(fake.Apply(NatRuleset{})));
  fake.FailNextRead(absl::UnavailableError("nfnetlink down"));
  EXPECT_FALSE(fake.Read().ok());
  EXPECT_EQ(fake.applies(), 0);

  NatRuleset edited;
  edited.elastic_nat = {{"203.0.113.99", "192.0.2.99"}};
  fake.SetKernelState(edited);
  ASSERT_TRUE(fake.Apply(NatRuleset{}).ok());
  EXPECT_EQ(fake.mappings_removed(), 1);
}

}  // namespace
}  // namespace abode::node

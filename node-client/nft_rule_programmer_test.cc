// NftRuleProgrammer against the real kernel, each test in network namespaces of its own.
#include "nft_rule_programmer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
#include <set>
#include <thread>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "netns_testing.h"
#include "test-support/eventually.h"

namespace abode::node {
namespace {

using ::abode::node::testing::Datagram;
using ::abode::node::testing::ScopedNetns;
using ::testing::HasSubstr;
using ::testing::Not;

NatRuleset SampleRuleset() {
  NatRuleset r;
  r.magic_dnat = {
      {IpFamily::kIpv4, "169.254.169.254", L4Protocol::kTcp, 80, "198.51.100.2", 8080},
      {IpFamily::kIpv4, "169.254.169.254", L4Protocol::kUdp, 53, "198.51.100.2", 5353},
      {IpFamily::kIpv6, "fd00:ec2::254", L4Protocol::kUdp, 53, "2001:db8:1::2", 5353},
  };
  r.elastic_nat = {{"203.0.113.10", "192.0.2.10"}, {"2001:db8:3::10", "2001:db8:2::10"}};
  return r;
}

// `count` mappings of each kind per family.
NatRuleset LargeRuleset(int count) {
  auto canonical = [](const std::string& text) { return *CanonicalAddress(text); };
  NatRuleset r;
  for (int i = 0; i < count; ++i) {
    const int hi = i / 250 + 1;
    const int lo = i % 250 + 1;
    r.magic_dnat.insert({IpFamily::kIpv4, absl::StrCat("169.254.", hi, ".", lo), L4Protocol::kTcp,
                         static_cast<uint16_t>(1000 + i), absl::StrCat("198.51.", hi, ".", lo), 80});
    r.magic_dnat.insert({IpFamily::kIpv6, canonical(absl::StrCat("fd00:ec2::", hi, ":", lo)), L4Protocol::kUdp, 53,
                         canonical(absl::StrCat("2001:db8:1::", hi, ":", lo)), 5353});
    r.elastic_nat.insert({absl::StrCat("203.0.", hi, ".", lo), absl::StrCat("10.", hi, ".", lo, ".1")});
    r.elastic_nat.insert(
        {canonical(absl::StrCat("2001:db8:3::", hi, ":", lo)), canonical(absl::StrCat("2001:db8:2::", hi, ":", lo))});
  }
  return r;
}

class NftRuleProgrammerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ABODE_SKIP_UNLESS_KERNEL_TESTS();
    absl::StatusOr<ScopedNetns> node = ScopedNetns::Create("nft");
    ASSERT_TRUE(node.ok()) << node.status();
    node_.emplace(std::move(*node));
    programmer_ = NewProgrammer();
    ASSERT_NE(programmer_, nullptr);
  }

  std::unique_ptr<NftRuleProgrammer> NewProgrammer() {
    std::unique_ptr<NftRuleProgrammer> programmer;
    absl::Status entered = node_->Inside([&] {
      absl::StatusOr<std::unique_ptr<NftRuleProgrammer>> created = NftRuleProgrammer::Create();
      if (created.ok())
        programmer = std::move(*created);
      else
        ADD_FAILURE() << created.status();
    });
    EXPECT_TRUE(entered.ok()) << entered;
    return programmer;
  }

  std::string Nft(const std::string& arguments) {
    testing::CommandResult result = node_->Exec(absl::StrCat("nft ", arguments));
    EXPECT_EQ(result.exit_code, 0) << "nft " << arguments << ": " << result.output;
    return result.output;
  }

  uint32_t Generation() {
    absl::StatusOr<uint32_t> generation = programmer_->Generation();
    EXPECT_TRUE(generation.ok()) << generation.status();
    return generation.value_or(0);
  }

  void ExpectKernelHolds(const NatRuleset& desired) {
    absl::StatusOr<NatRuleset> read = programmer_->Read();
    ASSERT_TRUE(read.ok()) << read.status();
    EXPECT_TRUE(*read == desired) << "read " << read->magic_dnat.size() << " magic and " << read->elastic_nat.size()
                                  << " elastic mappings, wanted " << desired.magic_dnat.size() << " and "
                                  << desired.elastic_nat.size();
  }

  std::optional<ScopedNetns> node_;
  std::unique_ptr<NftRuleProgrammer> programmer_;
};

TEST_F(NftRuleProgrammerTest, CreatesTablesThatNftUnderstands) {
  ABODE_ASSERT_OK(programmer_->Apply(SampleRuleset()));
  ExpectKernelHolds(SampleRuleset());
  EXPECT_TRUE(programmer_->last_apply().batch_sent);
  EXPECT_TRUE(programmer_->last_apply().repairs.empty());

  const std::string v4 = Nft("list table ip abode");
  EXPECT_THAT(v4, HasSubstr("type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service"));
  EXPECT_THAT(v4, HasSubstr("169.254.169.254 . udp . 53 : 198.51.100.2 . 5353"));
  EXPECT_THAT(v4, HasSubstr("203.0.113.10 : 192.0.2.10"));
  EXPECT_THAT(v4, HasSubstr("192.0.2.10 : 203.0.113.10"));
  EXPECT_THAT(v4, HasSubstr("type nat hook prerouting priority dstnat; policy accept;"));
  EXPECT_THAT(v4, HasSubstr("type nat hook output priority -100; policy accept;"));
  EXPECT_THAT(v4, HasSubstr("type nat hook postrouting priority srcnat; policy accept;"));
  EXPECT_THAT(v4, HasSubstr("dnat ip to ip daddr . meta l4proto . th dport map @magic_dnat"));
  EXPECT_THAT(v4, HasSubstr("dnat to ip daddr map @elastic_dnat"));
  EXPECT_THAT(v4, HasSubstr("snat to ip saddr map @elastic_snat"));

  const std::string v6 = Nft("list table ip6 abode");
  EXPECT_THAT(v6, HasSubstr("fd00:ec2::254 . udp . 53 : 2001:db8:1::2 . 5353"));
  EXPECT_THAT(v6, HasSubstr("2001:db8:3::10 : 2001:db8:2::10"));
  EXPECT_THAT(v6, HasSubstr("dnat ip6 to ip6 daddr . meta l4proto . th dport map @magic_dnat"));
  EXPECT_THAT(Nft("-j list table ip6 abode"), HasSubstr("\"elastic_snat\""));
}

TEST_F(NftRuleProgrammerTest, ReapplyingTheSameStateChangesNothing) {
  ABODE_ASSERT_OK(programmer_->Apply(SampleRuleset()));
  const uint32_t generation = Generation();
  const std::string listing = Nft("-a list ruleset");

  ABODE_ASSERT_OK(programmer_->Apply(SampleRuleset()));
  EXPECT_FALSE(programmer_->last_apply().batch_sent);
  EXPECT_FALSE(programmer_->last_apply().read_kernel);  // nobody committed since: planned from our own commit
  EXPECT_EQ(programmer_->last_apply().messages, 0);
  EXPECT_EQ(Generation(), generation);
  EXPECT_EQ(Nft("-a list ruleset"), listing);

  // Someone else's commit, even to another table, makes the next round read abode's tables again.
  Nft("add table ip other");
  ABODE_ASSERT_OK(programmer_->Apply(SampleRuleset()));
  EXPECT_TRUE(programmer_->last_apply().read_kernel);
  EXPECT_FALSE(programmer_->last_apply().batch_sent);

  // A fresh instance recognises the state as well: nothing is remembered outside the kernel.
  std::unique_ptr<NftRuleProgrammer> restarted = NewProgrammer();
  ABODE_ASSERT_OK(restarted->Apply(SampleRuleset()));
  EXPECT_FALSE(restarted->last_apply().batch_sent);
  EXPECT_TRUE(restarted->last_apply().read_kernel);
  EXPECT_EQ(Generation(), generation + 1);  // only the foreign table
}

TEST_F(NftRuleProgrammerTest, AChangeTouchesOnlyTheChangedElements) {
  NatRuleset desired = LargeRuleset(300);
  ABODE_ASSERT_OK(programmer_->Apply(desired));
  ExpectKernelHolds(desired);
  const std::string chains = Nft("-a list chain ip abode prerouting") + Nft("-a list chain ip abode output") +
                             Nft("-a list chain ip abode postrouting");
  const uint32_t generation = Generation();

  // One retargeted magic mapping, one elastic mapping replaced by another.
  MagicDnat moved = *desired.magic_dnat.begin();
  desired.magic_dnat.erase(desired.magic_dnat.begin());
  moved.target_port = 8443;
  desired.magic_dnat.insert(moved);
  desired.elastic_nat.erase(desired.elastic_nat.begin());
  desired.elastic_nat.insert({"203.0.113.250", "192.0.2.250"});

  ABODE_ASSERT_OK(programmer_->Apply(desired));
  const NftRuleProgrammer::ApplyReport& report = programmer_->last_apply();
  EXPECT_TRUE(report.batch_sent);
  EXPECT_FALSE(report.read_kernel);
  EXPECT_TRUE(report.repairs.empty());
  EXPECT_EQ(report.elements_removed, 3);  // magic element + both halves of the elastic mapping
  EXPECT_EQ(report.elements_added, 3);
  EXPECT_LE(report.messages, 6);
  EXPECT_EQ(Generation(), generation + 1);  // one batch
  ExpectKernelHolds(desired);
  EXPECT_EQ(Nft("-a list chain ip abode prerouting") + Nft("-a list chain ip abode output") +
                Nft("-a list chain ip abode postrouting"),
            chains);
}

TEST_F(NftRuleProgrammerTest, RepairsWhatSomeoneElseChanged) {
  const NatRuleset desired = SampleRuleset();
  ABODE_ASSERT_OK(programmer_->Apply(desired));
  ABODE_ASSERT_OK(programmer_->Apply(desired));  // warm: planned from its own commit from here on
  const std::string pristine_chains = Nft("list chain ip abode prerouting") + Nft("list chain ip abode output") +
                                      Nft("list chain ip abode postrouting") + Nft("list chain ip6 abode output");

  const std::vector<std::string> edits = {
      "flush chain ip abode prerouting",
      "insert rule ip abode postrouting accept",
      "add rule ip abode output counter",
      "flush chain ip abode output; delete chain ip abode output",
      "delete table ip6 abode",
      "add element ip abode elastic_dnat { 203.0.113.99 : 192.0.2.99 }",
      "delete element ip abode elastic_snat { 192.0.2.10 }",
      "add chain ip abode sneaky",
      "add table ip abode { flags dormant; }",
      "add set ip6 abode extra { type ipv6_addr; }",
      "flush chain ip6 abode output; delete chain ip6 abode output; add chain ip6 abode output "
      "{ type nat hook output priority 50; }",
  };
  for (const std::string& edit : edits) {
    SCOPED_TRACE(edit);
    Nft(absl::StrCat("'", edit, "'"));
    ABODE_ASSERT_OK(programmer_->Apply(desired));
    EXPECT_TRUE(programmer_->last_apply().read_kernel);
    EXPECT_TRUE(programmer_->last_apply().batch_sent);
    ExpectKernelHolds(desired);
    EXPECT_EQ(Nft("list chain ip abode prerouting") + Nft("list chain ip abode output") +
                  Nft("list chain ip abode postrouting") + Nft("list chain ip6 abode output"),
              pristine_chains);
    // Repaired for good: the next round has nothing to do.
    ABODE_ASSERT_OK(programmer_->Apply(desired));
    EXPECT_FALSE(programmer_->last_apply().batch_sent);
  }
  EXPECT_THAT(Nft("list table ip abode"), Not(HasSubstr("sneaky")));
  EXPECT_THAT(Nft("list table ip abode"), Not(HasSubstr("dormant")));
  EXPECT_THAT(Nft("list table ip6 abode"), Not(HasSubstr("extra")));
}

TEST_F(NftRuleProgrammerTest, SurvivesConcurrentCommitsBySomeoneElse) {
  // Another program commits to its own table over and over while abode applies changes. Each batch of abode's
  // is tied to the generation it planned from, so a commit in between makes the kernel refuse the batch whole
  // and Apply plans again; if it is refused every time, Apply says Aborted and nothing was applied.
  std::atomic<int> commits = 0;
  std::thread other([&] {
    for (int i = 0; i < 60; ++i) {
      node_->Exec(absl::StrCat("nft add table ip other", i % 3, "; nft delete table ip other", i % 3));
      commits += 2;
    }
  });
  int rounds = 0;
  int retried = 0;
  int refused = 0;
  NatRuleset desired = LargeRuleset(50);
  while (commits < 120) {
    ++rounds;
    desired.elastic_nat.erase(desired.elastic_nat.begin());
    desired.elastic_nat.insert(
        {absl::StrCat("203.0.113.", rounds % 250 + 1), absl::StrCat("192.0.2.", rounds % 250 + 1)});
    absl::Status status = programmer_->Apply(desired);
    EXPECT_TRUE(status.ok() || absl::IsAborted(status)) << status;
    if (absl::IsAborted(status)) ++refused;
    if (programmer_->last_apply().attempts > 1) ++retried;
  }
  other.join();
  ABODE_ASSERT_OK(programmer_->Apply(desired));
  ExpectKernelHolds(desired);
  std::cout << rounds << " applies during 120 foreign commits: " << retried << " planned again, " << refused
            << " refused three times\n";
}

TEST_F(NftRuleProgrammerTest, LeavesForeignTablesAlone) {
  Nft("add table ip other");
  Nft("'add chain ip other pre { type nat hook prerouting priority -150; }'");
  Nft("add rule ip other pre ip daddr 192.0.2.200 dnat to 198.51.100.200");
  Nft("add table inet abode");
  Nft("'add chain inet abode input { type filter hook input priority 0; }'");
  Nft("add rule inet abode input tcp dport 22 accept");
  Nft("add table ip6 other6");
  Nft("'add set ip6 other6 s { type ipv6_addr; elements = { 2001:db8::1 } }'");
  const std::string foreign =
      Nft("-a list table ip other") + Nft("-a list table inet abode") + Nft("-a list table ip6 other6");

  ABODE_ASSERT_OK(programmer_->Apply(SampleRuleset()));
  Nft("add chain ip abode sneaky");  // forces a rebuild of ip abode
  ABODE_ASSERT_OK(programmer_->Apply(SampleRuleset()));
  ABODE_ASSERT_OK(programmer_->Apply(NatRuleset{}));
  ExpectKernelHolds(NatRuleset{});

  EXPECT_EQ(Nft("-a list table ip other") + Nft("-a list table inet abode") + Nft("-a list table ip6 other6"), foreign);
}

TEST_F(NftRuleProgrammerTest, RejectsAnInvalidRulesetWithoutTouchingTheKernel) {
  const uint32_t generation = Generation();
  NatRuleset bad = SampleRuleset();
  bad.elastic_nat.insert({"203.0.113.10", "192.0.2.77"});
  absl::Status status = programmer_->Apply(bad);
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr("203.0.113.10"));
  EXPECT_EQ(Generation(), generation);
  EXPECT_THAT(Nft("list tables"), Not(HasSubstr("abode")));
}

TEST_F(NftRuleProgrammerTest, ReadsNothingBeforeTheFirstApply) {
  absl::StatusOr<NatRuleset> read = programmer_->Read();
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_TRUE(*read == NatRuleset{});
}

TEST_F(NftRuleProgrammerTest, ElasticMappingsArePermanentTheGuardGatesThem) {
  ABODE_ASSERT_OK(programmer_->Apply(SampleRuleset()));
  EXPECT_THAT(Nft("list map ip abode elastic_dnat"), Not(HasSubstr("expires")));
}

TEST_F(NftRuleProgrammerTest, GuardBuildsTablesThatNftUnderstandsForEachFamily) {
  absl::StatusOr<bool> leased =
      programmer_->Guard({"203.0.113.10", "2001:db8:3::10"}, std::chrono::milliseconds(60000));
  ASSERT_TRUE(leased.ok()) << leased.status();
  EXPECT_TRUE(*leased);
  const std::string v4 = Nft("list table ip abode_lease");
  EXPECT_THAT(v4, HasSubstr("type filter hook prerouting priority raw; policy accept;"));
  EXPECT_THAT(v4, HasSubstr("type filter hook postrouting priority srcnat + 1; policy accept;"));
  EXPECT_THAT(v4, HasSubstr("ip daddr @guarded meta nfproto != @alive counter packets 0 bytes 0 drop"));
  EXPECT_THAT(v4, HasSubstr("ip saddr @guarded meta nfproto != @alive counter packets 0 bytes 0 drop"));
  EXPECT_THAT(Nft("list set ip abode_lease alive"), HasSubstr("ipv4 timeout 1m expires"));
  EXPECT_THAT(Nft("list set ip abode_lease guarded"), HasSubstr("203.0.113.10"));
  const std::string v6 = Nft("list table ip6 abode_lease");
  EXPECT_THAT(v6, HasSubstr("ip6 daddr @guarded meta nfproto != @alive counter"));
  EXPECT_THAT(v6, HasSubstr("icmpv6 type nd-neighbor-solicit @th,64,128 @guarded meta nfproto != @alive counter"));
  EXPECT_THAT(v6, HasSubstr("icmpv6 type nd-neighbor-advert @th,64,128 @guarded meta nfproto != @alive counter"));
  EXPECT_THAT(Nft("list set ip6 abode_lease guarded"), HasSubstr("2001:db8:3::10"));
  EXPECT_THAT(Nft("list set ip6 abode_lease alive"), HasSubstr("ipv6 timeout 1m expires"));
  const std::string arp = Nft("list table arp abode_lease");
  EXPECT_THAT(arp, HasSubstr("arp daddr ip @guarded meta nfproto != @alive counter packets 0 bytes 0 drop"));
  EXPECT_THAT(arp, HasSubstr("arp saddr ip @guarded meta nfproto != @alive counter packets 0 bytes 0 drop"));
  EXPECT_THAT(Nft("list set arp abode_lease alive"), HasSubstr("3 timeout 1m expires"));  // NFPROTO_ARP
  EXPECT_THAT(Nft("list set arp abode_lease guarded"), HasSubstr("203.0.113.10"));
  EXPECT_THAT(Nft("list set arp abode_lease guarded"), Not(HasSubstr("2001:db8")));
}

TEST_F(NftRuleProgrammerTest, LeasesEndUnlessRenewedAndARenewalIsOneBatchWhateverTheirNumber) {
  std::set<std::string> guarded;
  for (int i = 0; i < 2000; ++i) guarded.insert(absl::StrCat("10.", 100 + i / 250, ".", i % 250, ".1"));
  guarded.insert("2001:db8:3::10");
  ASSERT_TRUE(programmer_->Guard(guarded, std::chrono::milliseconds(1500)).ok());
  // Renewed well within the lease, it holds past it: adding an element again does not restart its timeout (the
  // kernel keeps the old expiry), so a renewal flushes `alive` and adds its one element back within one batch.
  const uint32_t before = Generation();
  const auto placed = std::chrono::steady_clock::now();
  int renewals = 0;
  while (std::chrono::steady_clock::now() - placed < std::chrono::seconds(3)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));  // a renewal cadence, not a wait for a result
    ABODE_ASSERT_OK(programmer_->Renew(std::chrono::milliseconds(1500)));
    ++renewals;
    EXPECT_EQ(programmer_->last_guard_messages(), 3 * 2);  // per table: one flush, one element
  }
  EXPECT_EQ(Generation(), before + static_cast<uint32_t>(renewals));  // one commit per renewal
  EXPECT_THAT(Nft("list set ip abode_lease alive"), HasSubstr("ipv4 timeout"));
  EXPECT_THAT(Nft("list set ip6 abode_lease alive"), HasSubstr("ipv6 timeout"));
  EXPECT_THAT(Nft("list set arp abode_lease alive"), HasSubstr("3 timeout"));
  // Not renewed any more: the lease ends by itself in every table; the guarded sets stay.
  bool ended = false;
  for (const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
       !ended && std::chrono::steady_clock::now() < deadline;) {
    ended = true;
    for (const char* family : {"ip", "ip6", "arp"}) {
      ended = ended &&
              Nft(absl::StrCat("list set ", family, " abode_lease alive")).find("expires") == std::string::npos;
    }
    if (!ended) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(ended) << Nft("list set ip abode_lease alive");
  EXPECT_THAT(Nft("list set ip abode_lease guarded"), HasSubstr("10.100.0.1"));
  EXPECT_THAT(Nft("list set arp abode_lease guarded"), HasSubstr("10.107.249.1"));
}

TEST_F(NftRuleProgrammerTest, ARenewalSendsAsManyMessagesForOneAddressAsForAThousand) {
  auto renewal_messages = [&](const std::set<std::string>& guarded) {
    EXPECT_TRUE(programmer_->Guard(guarded, std::chrono::milliseconds(60000)).ok());
    const uint32_t before = Generation();
    EXPECT_TRUE(programmer_->Renew(std::chrono::milliseconds(90000)).ok());
    EXPECT_EQ(Generation(), before + 1);
    EXPECT_THAT(Nft("list set ip abode_lease alive"), HasSubstr("ipv4 timeout 1m30s expires"));
    return programmer_->last_guard_messages();
  };
  const int one = renewal_messages({"203.0.113.10"});
  std::set<std::string> thousand;
  for (int i = 0; i < 500; ++i) {
    thousand.insert(absl::StrCat("10.", 100 + i / 250, ".", i % 250, ".1"));
    thousand.insert(absl::StrCat("2001:db8:3::", absl::Hex(i + 1)));
  }
  ASSERT_EQ(thousand.size(), 1000u);
  const int many = renewal_messages(thousand);
  EXPECT_EQ(one, many);
  EXPECT_EQ(many, 3 * 2);
  EXPECT_THAT(Nft("list set ip6 abode_lease guarded"), HasSubstr("2001:db8:3::1f4"));
}

TEST_F(NftRuleProgrammerTest, AGuardLeftByAnEarlierProcessIsAdoptedAndOneRemovedIsBuiltAgain) {
  ASSERT_TRUE(programmer_->Guard({"203.0.113.10"}, std::chrono::milliseconds(60000)).ok());
  const uint32_t generation = Generation();
  std::unique_ptr<NftRuleProgrammer> restarted = NewProgrammer();
  absl::StatusOr<bool> adopted = restarted->Guard({"203.0.113.10"}, std::chrono::milliseconds(60000));
  ASSERT_TRUE(adopted.ok()) << adopted.status();
  EXPECT_FALSE(*adopted);
  EXPECT_EQ(Generation(), generation);  // nothing sent
  // A change after adoption is incremental.
  ASSERT_TRUE(restarted->Guard({"203.0.113.10", "203.0.113.11"}, std::chrono::milliseconds(60000)).ok());
  EXPECT_THAT(Nft("list set arp abode_lease guarded"), HasSubstr("203.0.113.11"));
  EXPECT_EQ(restarted->last_guard_messages(), (1 + 1 + 1) * 2 + (1 + 1));  // ip, arp: add, flush, add; ip6
  // Someone deletes a table: the next renewal builds all of them again.
  Nft("delete table arp abode_lease");
  ABODE_ASSERT_OK(restarted->Renew(std::chrono::milliseconds(60000)));
  EXPECT_THAT(Nft("list set arp abode_lease guarded"), HasSubstr("203.0.113.11"));
  EXPECT_THAT(Nft("list set arp abode_lease alive"), HasSubstr("3 timeout 1m"));
  // Unguarded, an address leaves both sets' effect: guarded no more.
  ASSERT_TRUE(restarted->Guard({"203.0.113.11"}, std::chrono::milliseconds(60000)).ok());
  EXPECT_THAT(Nft("list set ip abode_lease guarded"), Not(HasSubstr("203.0.113.10")));
}

TEST_F(NftRuleProgrammerTest, TablesOfTheEarlierOneElementPerAddressLayoutAreBuiltAgain) {
  // As an abode-node before the one-timer lease left them: a timed element per address in `leased`.
  std::string script;
  for (const auto& [family, type, match] : {std::tuple{"ip", "ipv4_addr", "ip daddr"},
                                            {"ip6", "ipv6_addr", "ip6 daddr"},
                                            {"arp", "ipv4_addr", "arp daddr ip"}}) {
    const char* chain = std::string(family) == "arp" ? "input { type filter hook input priority 0;"
                                                     : "prerouting { type filter hook prerouting priority raw;";
    const char* element = std::string(family) == "ip6" ? "2001:db8:3::10" : "203.0.113.10";
    absl::StrAppend(&script, "table ", family, " abode_lease { set guarded { type ", type, "; elements = { ", element,
                    " }; }; set leased { type ", type, "; flags timeout; elements = { ", element,
                    " timeout 1m }; }; chain ", chain, " ", match, " @guarded ", match,
                    " != @leased counter drop; }; }\n");
  }
  const std::string path = absl::StrCat("/tmp/abode-nft-test-", getpid(), ".nft");
  std::ofstream(path) << script;
  Nft(absl::StrCat("-f ", path));
  std::remove(path.c_str());
  const std::set<std::string> guarded = {"203.0.113.10", "2001:db8:3::10"};
  absl::StatusOr<bool> rebuilt = programmer_->Guard(guarded, std::chrono::milliseconds(60000));
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
  EXPECT_TRUE(*rebuilt);  // not adopted: the same addresses, but guarded by the earlier layout
  for (const char* family : {"ip", "ip6", "arp"}) {
    const std::string table = Nft(absl::StrCat("list table ", family, " abode_lease"));
    EXPECT_THAT(table, Not(HasSubstr("leased"))) << family;
    EXPECT_THAT(table, HasSubstr("meta nfproto != @alive counter")) << family;
    EXPECT_THAT(Nft(absl::StrCat("list set ", family, " abode_lease alive")), HasSubstr("timeout 1m")) << family;
  }
  EXPECT_THAT(Nft("list set ip6 abode_lease guarded"), HasSubstr("2001:db8:3::10"));
  // From then on adopted as usual, and renewed in one message pair per table.
  std::unique_ptr<NftRuleProgrammer> restarted = NewProgrammer();
  absl::StatusOr<bool> adopted = restarted->Guard(guarded, std::chrono::milliseconds(60000));
  ASSERT_TRUE(adopted.ok()) << adopted.status();
  EXPECT_FALSE(*adopted);
  ABODE_ASSERT_OK(restarted->Renew(std::chrono::milliseconds(60000)));
  EXPECT_EQ(restarted->last_guard_messages(), 3 * 2);
}

// Addresses of the traffic topology, per family:
//   outside ns (o-eth) --- (n-out) node ns (n-in) --- (w-eth) workload ns
struct TrafficPlan {
  const char* name;
  IpFamily family;
  const char* node_outside;
  const char* outside;
  const char* node_inside;
  const char* workload;
  const char* elastic;
  const char* magic;
  int prefix_len;
  const char* any;
  const char* default_route;
  const char* address_flags;
};

constexpr TrafficPlan kIpv4Plan = {.name = "ipv4",
                                   .family = IpFamily::kIpv4,
                                   .node_outside = "198.51.100.1",
                                   .outside = "198.51.100.2",
                                   .node_inside = "192.0.2.1",
                                   .workload = "192.0.2.10",
                                   .elastic = "203.0.113.10",
                                   .magic = "169.254.169.254",
                                   .prefix_len = 24,
                                   .any = "0.0.0.0",
                                   .default_route = "0.0.0.0/0",
                                   .address_flags = ""};
// IPv6 addresses skip duplicate address detection, which would hold them back for a second.
constexpr TrafficPlan kIpv6Plan = {.name = "ipv6",
                                   .family = IpFamily::kIpv6,
                                   .node_outside = "2001:db8:1::1",
                                   .outside = "2001:db8:1::2",
                                   .node_inside = "2001:db8:2::1",
                                   .workload = "2001:db8:2::10",
                                   .elastic = "2001:db8:3::10",
                                   .magic = "fd00:ec2::254",
                                   .prefix_len = 64,
                                   .any = "::",
                                   .default_route = "::/0",
                                   .address_flags = " nodad"};

void PrintTo(const TrafficPlan& plan, std::ostream* out) { *out << plan.name; }

class NftTrafficTest : public ::testing::TestWithParam<TrafficPlan> {
 protected:
  void SetUp() override {
    ABODE_SKIP_UNLESS_KERNEL_TESTS();
    const TrafficPlan& p = GetParam();
    for (auto [slot, role] : {std::pair{&node_, "node"}, {&outside_, "outside"}, {&workload_, "workload"}}) {
      absl::StatusOr<ScopedNetns> ns = ScopedNetns::Create(role);
      ASSERT_TRUE(ns.ok()) << ns.status();
      slot->emplace(std::move(*ns));
    }
    const std::string prefix = absl::StrCat("/", p.prefix_len, p.address_flags);
    // Link-local addresses too skip duplicate address detection, so that a busy machine does not hold the
    // first neighbour discovery on the new links back.
    for (const ScopedNetns* ns : {&*node_, &*outside_, &*workload_}) {
      ASSERT_TRUE(ns->Run("sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0").ok());
    }
    for (const std::string& command : {
             absl::StrCat("ip link add n-out type veth peer name o-eth netns ", outside_->name()),
             absl::StrCat("ip link add n-in type veth peer name w-eth netns ", workload_->name()),
             std::string("ip link set n-out up && ip link set n-in up"),
             std::string("sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1"),
             absl::StrCat("ip addr add ", p.node_outside, prefix, " dev n-out"),
             absl::StrCat("ip addr add ", p.node_inside, prefix, " dev n-in"),
             absl::StrCat("ip route add ", p.magic, " via ", p.outside),
         }) {
      ASSERT_TRUE(node_->Run(command).ok()) << node_->Run(command);
    }
    ASSERT_TRUE(outside_
                    ->Run(absl::StrCat("ip link set o-eth up && ip addr add ", p.outside, prefix,
                                       " dev o-eth && ip route add ", p.elastic, " via ", p.node_outside,
                                       " && ip route add ", p.magic, " via ", p.node_outside))
                    .ok());
    ASSERT_TRUE(workload_
                    ->Run(absl::StrCat("ip link set w-eth up && ip addr add ", p.workload, prefix,
                                       " dev w-eth && ip route add ", p.default_route, " via ", p.node_inside))
                    .ok());
    ASSERT_TRUE(node_
                    ->Inside([&] {
                      absl::StatusOr<std::unique_ptr<NftRuleProgrammer>> created = NftRuleProgrammer::Create();
                      ASSERT_TRUE(created.ok()) << created.status();
                      programmer_ = std::move(*created);
                    })
                    .ok());
    ASSERT_NE(programmer_, nullptr);
    ruleset_.magic_dnat = {{p.family, p.magic, L4Protocol::kUdp, 53, p.outside, 5353}};
    ruleset_.elastic_nat = {{p.elastic, p.workload}};
    ABODE_ASSERT_OK(programmer_->Apply(ruleset_));
  }

  // Binds a UDP socket in `ns`.
  static UniqueFd Bind(const ScopedNetns& ns, const std::string& address, uint16_t port) {
    UniqueFd fd;
    EXPECT_TRUE(ns.Inside([&] {
                    absl::StatusOr<UniqueFd> bound = testing::BindUdp(address, port);
                    ASSERT_TRUE(bound.ok()) << bound.status();
                    fd = std::move(*bound);
                  }).ok());
    return fd;
  }


  std::optional<ScopedNetns> node_;
  std::optional<ScopedNetns> outside_;
  std::optional<ScopedNetns> workload_;
  std::unique_ptr<NftRuleProgrammer> programmer_;
  NatRuleset ruleset_;
};

TEST_P(NftTrafficTest, MagicDnatReachesTheTargetFromTheNodeAndFromWorkloads) {
  const TrafficPlan& p = GetParam();
  UniqueFd target = Bind(*outside_, p.any, 5353);
  UniqueFd from_node = Bind(*node_, p.any, 0);
  UniqueFd from_workload = Bind(*workload_, p.any, 0);

  absl::StatusOr<Datagram> local = testing::SendUntilReceived(from_node, p.magic, 53, "from-node", target);
  ASSERT_TRUE(local.ok()) << "locally originated traffic to the magic address: " << local.status();
  EXPECT_EQ(local->payload, "from-node");

  absl::StatusOr<Datagram> forwarded =
      testing::SendUntilReceived(from_workload, p.magic, 53, "from-workload", target);
  ASSERT_TRUE(forwarded.ok()) << "forwarded traffic to the magic address: " << forwarded.status();
  EXPECT_EQ(forwarded->payload, "from-workload");
  EXPECT_EQ(forwarded->source_address, p.elastic);  // the workload's elastic address applies on the way out
}

TEST_P(NftTrafficTest, ElasticAddressReachesTheWorkloadBothWays) {
  const TrafficPlan& p = GetParam();
  UniqueFd workload = Bind(*workload_, p.any, 7000);
  UniqueFd outside = Bind(*outside_, p.any, 7001);

  absl::StatusOr<Datagram> inbound = testing::SendUntilReceived(outside, p.elastic, 7000, "inbound", workload);
  ASSERT_TRUE(inbound.ok()) << "inbound to the elastic address: " << inbound.status();
  EXPECT_EQ(inbound->payload, "inbound");
  EXPECT_EQ(inbound->source_address, p.outside);

  UniqueFd workload_client = Bind(*workload_, p.any, 0);
  absl::StatusOr<Datagram> outbound =
      testing::SendUntilReceived(workload_client, p.outside, 7001, "outbound", outside);
  ASSERT_TRUE(outbound.ok()) << "outbound from the workload: " << outbound.status();
  EXPECT_EQ(outbound->payload, "outbound");
  EXPECT_EQ(outbound->source_address, p.elastic);

  // Without the mapping, the elastic address leads nowhere (a new flow: conntrack keeps the old one).
  ABODE_ASSERT_OK(programmer_->Apply(NatRuleset{}));
  UniqueFd late = Bind(*outside_, p.any, 0);
  ABODE_ASSERT_OK(testing::SendUdp(late, p.elastic, 7000, "after removal"));
  // Late copies of the resent "inbound" may still arrive; nothing sent after the removal may.
  for (;;) {
    absl::StatusOr<Datagram> got = testing::ReceiveUdp(workload, std::chrono::milliseconds(300));
    if (!got.ok()) break;
    EXPECT_EQ(got->payload, "inbound") << "the elastic address still leads to the workload";
  }
}

TEST_P(NftTrafficTest, TheGuardSilencesAnElasticAddressBothWaysOnceItsLeaseEnds) {
  const TrafficPlan& p = GetParam();
  const std::string family = p.family == IpFamily::kIpv4 ? "ip" : "ip6";
  absl::StatusOr<bool> guarded = programmer_->Guard({p.elastic}, std::chrono::milliseconds(1000));
  ASSERT_TRUE(guarded.ok()) << guarded.status();
  UniqueFd workload = Bind(*workload_, p.any, 7000);
  UniqueFd outside = Bind(*outside_, p.any, 7001);
  // Leased, it carries traffic both ways.
  ASSERT_TRUE(testing::SendUntilReceived(outside, p.elastic, 7000, "leased in", workload).ok());
  UniqueFd workload_client = Bind(*workload_, p.any, 0);
  ASSERT_TRUE(testing::SendUntilReceived(workload_client, p.outside, 7001, "leased out", outside).ok());

  // Not renewed: once its lease element is gone, new flows neither reach the workload nor leave translated.
  ASSERT_TRUE(test_support::Eventually(
      [&] {
        return node_->Exec(absl::StrCat("nft list set ", family, " abode_lease alive")).output.find("expires") ==
               std::string::npos;
      },
      std::chrono::seconds(10)));
  while (testing::ReceiveUdp(workload, std::chrono::milliseconds(100)).ok()) {
  }
  while (testing::ReceiveUdp(outside, std::chrono::milliseconds(100)).ok()) {
  }
  UniqueFd late_outside = Bind(*outside_, p.any, 0);
  UniqueFd late_workload = Bind(*workload_, p.any, 0);
  for (int i = 0; i < 3; ++i) {
    ABODE_ASSERT_OK(testing::SendUdp(late_outside, p.elastic, 7000, "unleased in"));
    ABODE_ASSERT_OK(testing::SendUdp(late_workload, p.outside, 7001, "unleased out"));
  }
  EXPECT_FALSE(testing::ReceiveUdp(workload, std::chrono::milliseconds(300)).ok());
  EXPECT_FALSE(testing::ReceiveUdp(outside, std::chrono::milliseconds(300)).ok());
  const std::string counted = node_->Exec(absl::StrCat("nft list table ", family, " abode_lease")).output;
  EXPECT_THAT(counted, HasSubstr("daddr @guarded meta nfproto != @alive counter packets 3 "));
  EXPECT_THAT(counted, HasSubstr("saddr @guarded meta nfproto != @alive counter packets 3 "));

  // Renewed, it carries traffic again.
  ABODE_ASSERT_OK(programmer_->Renew(std::chrono::milliseconds(60000)));
  UniqueFd again = Bind(*outside_, p.any, 0);
  EXPECT_TRUE(testing::SendUntilReceived(again, p.elastic, 7000, "renewed in", workload).ok());
}

INSTANTIATE_TEST_SUITE_P(Families, NftTrafficTest, ::testing::Values(kIpv4Plan, kIpv6Plan),
                         [](const ::testing::TestParamInfo<TrafficPlan>& info) { return info.param.name; });

}  // namespace
}  // namespace abode::node

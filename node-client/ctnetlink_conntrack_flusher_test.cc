// CtnetlinkConntrackFlusher against the real kernel: a UDP flow through a magic DNAT in a private network
// namespace keeps its old target after the mapping changes until its conntrack entry is flushed.
#include "ctnetlink_conntrack_flusher.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <optional>

#include "netns_testing.h"
#include "nft_rule_programmer.h"

namespace abode::node {
namespace {

using ::abode::node::testing::ScopedNetns;
using ::testing::HasSubstr;

class CtnetlinkConntrackFlusherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ABODE_SKIP_UNLESS_KERNEL_TESTS();
    absl::StatusOr<ScopedNetns> node = ScopedNetns::Create("ct");
    ASSERT_TRUE(node.ok()) << node.status();
    node_.emplace(std::move(*node));
    // Two agents' addresses on a veth, and the magic address, all local: the output chain translates.
    ABODE_ASSERT_OK(
        node_->Run("ip link set lo up && ip link add d0 type veth peer name d1 && ip link set d1 up && ip addr add "
                   "10.0.0.2/24 dev d0 && "
                   "ip addr add 10.0.0.3/24 dev d0 && ip addr add 169.254.210.210/32 dev d0 && ip link set d0 up"));
    ABODE_ASSERT_OK(node_->Inside([&] {
      auto rules = NftRuleProgrammer::Create();
      ASSERT_TRUE(rules.ok()) << rules.status();
      rules_ = std::move(*rules);
      auto flusher = CtnetlinkConntrackFlusher::Create();
      ASSERT_TRUE(flusher.ok()) << flusher.status();
      flusher_ = std::move(*flusher);
    }));
  }

  UniqueFd Udp(const std::string& address, uint16_t port) {
    UniqueFd fd;
    EXPECT_TRUE(node_
                    ->Inside([&] {
                      auto bound = testing::BindUdp(address, port);
                      ASSERT_TRUE(bound.ok()) << bound.status();
                      fd = std::move(*bound);
                    })
                    .ok());
    return fd;
  }

  static NatRuleset MagicTo(const std::string& target) {
    NatRuleset r;
    r.magic_dnat.insert({IpFamily::kIpv4, "169.254.210.210", L4Protocol::kUdp, 8125, target, 8125});
    return r;
  }

  // Sends `payload` from `sender` to the magic address and returns the payload `receiver` got (empty if none).
  static std::string SendAndReceive(const UniqueFd& sender, const UniqueFd& receiver, const std::string& payload) {
    EXPECT_TRUE(testing::SendUdp(sender, "169.254.210.210", 8125, payload).ok());
    auto got = testing::ReceiveUdp(receiver, std::chrono::seconds(5));
    return got.ok() ? got->payload : "";
  }

  int EntriesTo(const std::string& destination) {
    auto entries = flusher_->List(IpFamily::kIpv4);
    EXPECT_TRUE(entries.ok()) << entries.status();
    int count = 0;
    for (const auto& entry : entries.value_or(std::vector<CtnetlinkConntrackFlusher::Entry>{})) {
      count += entry.original_destination.ToString() == destination;
    }
    return count;
  }

  std::optional<ScopedNetns> node_;
  std::unique_ptr<NftRuleProgrammer> rules_;
  std::unique_ptr<CtnetlinkConntrackFlusher> flusher_;
};

TEST_F(CtnetlinkConntrackFlusherTest, AFlushedFlowFollowsTheChangedMappingAndOtherFlowsStay) {
  UniqueFd old_agent = Udp("10.0.0.2", 8125);
  UniqueFd new_agent = Udp("10.0.0.3", 8125);
  UniqueFd bystander = Udp("10.0.0.2", 9000);
  UniqueFd client = Udp("0.0.0.0", 0);  // one socket, one source port, for the whole test

  ABODE_ASSERT_OK(rules_->Apply(MagicTo("10.0.0.2")));
  EXPECT_EQ(SendAndReceive(client, old_agent, "one"), "one");
  ASSERT_TRUE(testing::SendUdp(client, "10.0.0.2", 9000, "untranslated").ok());
  ASSERT_TRUE(testing::ReceiveUdp(bystander, std::chrono::seconds(5)).ok());

  // The mapping changes; the established flow keeps its conntrack entry and with it the old target.
  ABODE_ASSERT_OK(rules_->Apply(MagicTo("10.0.0.3")));
  EXPECT_EQ(SendAndReceive(client, old_agent, "two"), "two");
  EXPECT_EQ(EntriesTo("169.254.210.210"), 1);
  const std::string before = node_->Exec("cat /proc/net/nf_conntrack 2>/dev/null").output;

  const ConntrackFilter magic_flows{IpFamily::kIpv4, "", "169.254.210.210", L4Protocol::kUdp, 8125, ""};
  absl::StatusOr<int> deleted = flusher_->Flush({magic_flows});
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ(*deleted, 1);
  EXPECT_EQ(EntriesTo("169.254.210.210"), 0);
  EXPECT_EQ(EntriesTo("10.0.0.2"), 1);  // the untranslated flow to port 9000 stays
  if (!before.empty()) {                // the kernel's own listing, where it has one
    EXPECT_THAT(before, HasSubstr("dst=169.254.210.210"));
    const std::string after = node_->Exec("cat /proc/net/nf_conntrack").output;
    EXPECT_THAT(after, ::testing::Not(HasSubstr("dst=169.254.210.210")));
    EXPECT_THAT(after, HasSubstr("dport=9000"));
  }

  EXPECT_EQ(SendAndReceive(client, new_agent, "three"), "three");
  // "three" created a new entry through the new mapping; once that is flushed too, nothing matches.
  deleted = flusher_->Flush({magic_flows});
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ(*deleted, 1);
  EXPECT_EQ(flusher_->Flush({magic_flows}).value_or(-1), 0);
}

TEST_F(CtnetlinkConntrackFlusherTest, OutboundFlowsAreSelectedByTheAddressTheyWereTranslatedTo) {
  UniqueFd receiver = Udp("10.0.0.3", 7000);
  UniqueFd translated = Udp("10.0.0.2", 0);
  UniqueFd untranslated = Udp("169.254.210.210", 0);
  ABODE_ASSERT_OK(rules_->Apply(MagicTo("10.0.0.2")));  // NAT hooks: the namespace tracks connections from now on
  ASSERT_TRUE(testing::SendUdp(translated, "10.0.0.3", 7000, "a").ok());
  ASSERT_TRUE(testing::SendUdp(untranslated, "10.0.0.3", 7000, "b").ok());
  ASSERT_TRUE(testing::ReceiveUdp(receiver, std::chrono::seconds(5)).ok());
  ASSERT_TRUE(testing::ReceiveUdp(receiver, std::chrono::seconds(5)).ok());
  // Neither flow was translated, so a filter on the translated source matches none of them.
  absl::StatusOr<int> deleted = flusher_->Flush({{IpFamily::kIpv4, "10.0.0.2", "", std::nullopt, 0, "203.0.113.10"}});
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ(*deleted, 0);
  deleted = flusher_->Flush({{IpFamily::kIpv4, "10.0.0.2", "", std::nullopt, 0, ""}});
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ(*deleted, 1);
  EXPECT_EQ(EntriesTo("10.0.0.3"), 1);
}

TEST_F(CtnetlinkConntrackFlusherTest, AnUnparsableAddressIsAnErrorNamingIt) {
  absl::StatusOr<int> deleted = flusher_->Flush({{IpFamily::kIpv4, "", "2001:db8::1", std::nullopt, 0, ""}});
  EXPECT_EQ(deleted.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(deleted.status().message(), HasSubstr("2001:db8::1"));
}

}  // namespace
}  // namespace abode::node

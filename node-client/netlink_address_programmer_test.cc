// NetlinkAddressProgrammer against the real kernel, each test in a network namespace of its own.
#include "netlink_address_programmer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <optional>

#include "absl/strings/str_cat.h"
#include "netns_testing.h"

namespace abode::node {
namespace {

using ::abode::node::testing::ScopedNetns;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

class NetlinkAddressProgrammerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ABODE_SKIP_UNLESS_KERNEL_TESTS();
    absl::StatusOr<ScopedNetns> node = ScopedNetns::Create("addr");
    ASSERT_TRUE(node.ok()) << node.status();
    node_.emplace(std::move(*node));
    ABODE_ASSERT_OK(node_->Run("ip link add n0 type veth peer name p0 && ip link set n0 up && ip link set p0 up"));
    programmer_ = NewProgrammer();
    ASSERT_NE(programmer_, nullptr);
  }

  std::unique_ptr<NetlinkAddressProgrammer> NewProgrammer() {
    std::unique_ptr<NetlinkAddressProgrammer> programmer;
    absl::Status entered = node_->Inside([&] {
      absl::StatusOr<std::unique_ptr<NetlinkAddressProgrammer>> created = NetlinkAddressProgrammer::Create();
      if (created.ok()) {
        programmer = std::move(*created);
      } else {
        ADD_FAILURE() << created.status();
      }
    });
    EXPECT_TRUE(entered.ok()) << entered;
    return programmer;
  }

  // `ip -j addr` of one interface: the independent view of the kernel's state.
  std::string IpAddr(const std::string& interface) {
    testing::CommandResult result = node_->Exec(absl::StrCat("ip -j addr show dev ", interface));
    EXPECT_EQ(result.exit_code, 0) << result.output;
    return result.output;
  }

  std::vector<OwnedAddress> Owned() {
    absl::StatusOr<std::vector<OwnedAddress>> owned = programmer_->ListOwned();
    EXPECT_TRUE(owned.ok()) << owned.status();
    return owned.value_or(std::vector<OwnedAddress>{});
  }

  std::optional<ScopedNetns> node_;
  std::unique_ptr<NetlinkAddressProgrammer> programmer_;
};

TEST_F(NetlinkAddressProgrammerTest, AddsListsAndRemovesBothFamilies) {
  const OwnedAddress v4{"n0", "192.0.2.10", 32};
  const OwnedAddress v6{"n0", "2001:db8::10", 128};
  ABODE_ASSERT_OK(programmer_->Add(v4));
  ABODE_ASSERT_OK(programmer_->Add(v6));
  EXPECT_THAT(Owned(), ElementsAre(v4, v6));
  EXPECT_THAT(IpAddr("n0"), HasSubstr("\"local\":\"192.0.2.10\",\"prefixlen\":32"));
  EXPECT_THAT(IpAddr("n0"), HasSubstr("\"local\":\"2001:db8::10\",\"prefixlen\":128"));

  ABODE_ASSERT_OK(programmer_->Remove(v4));
  ABODE_ASSERT_OK(programmer_->Remove(v6));
  EXPECT_THAT(Owned(), IsEmpty());
  EXPECT_THAT(IpAddr("n0"), Not(HasSubstr("192.0.2.10")));
  EXPECT_THAT(IpAddr("n0"), Not(HasSubstr("2001:db8::10")));
  ABODE_ASSERT_OK(programmer_->Remove(v4));  // absent: nothing to do
}

TEST_F(NetlinkAddressProgrammerTest, AddingAnOwnedAddressAgainIsANoOp) {
  const OwnedAddress a{"n0", "192.0.2.11", 24};
  ABODE_ASSERT_OK(programmer_->Add(a));
  const int64_t round_trips = programmer_->round_trips();
  ABODE_ASSERT_OK(programmer_->Add(a));
  EXPECT_EQ(programmer_->round_trips(), round_trips);  // nothing sent to the kernel
  const std::string listing = IpAddr("n0");
  EXPECT_EQ(listing.find("192.0.2.11"), listing.rfind("192.0.2.11"));
  EXPECT_THAT(Owned(), ElementsAre(a));
}

TEST_F(NetlinkAddressProgrammerTest, OwnershipIsReadFromTheKernelNotRemembered) {
  const OwnedAddress a{"n0", "2001:db8::11", 64};
  ABODE_ASSERT_OK(programmer_->Add(a));
  std::unique_ptr<NetlinkAddressProgrammer> restarted = NewProgrammer();
  absl::StatusOr<std::vector<OwnedAddress>> owned = restarted->ListOwned();
  ASSERT_TRUE(owned.ok()) << owned.status();
  EXPECT_THAT(*owned, ElementsAre(a));
  ABODE_ASSERT_OK(restarted->Remove(a));
  EXPECT_THAT(IpAddr("n0"), Not(HasSubstr("2001:db8::11")));
}

TEST_F(NetlinkAddressProgrammerTest, ForeignAddressesAreNeitherListedNorTouched) {
  ABODE_ASSERT_OK(node_->Run("ip addr add 192.0.2.20/24 dev n0 && ip addr add 2001:db8::20/64 dev p0 nodad"));

  EXPECT_THAT(Owned(), IsEmpty());  // link-local and foreign addresses are not ours

  absl::Status taken = programmer_->Add({"n0", "192.0.2.20", 32});
  EXPECT_TRUE(absl::IsFailedPrecondition(taken)) << taken;
  EXPECT_THAT(taken.message(), HasSubstr("192.0.2.20"));
  EXPECT_THAT(taken.message(), HasSubstr("n0"));

  // Held on another interface counts as well.
  absl::Status elsewhere = programmer_->Add({"n0", "2001:db8::20", 128});
  EXPECT_TRUE(absl::IsFailedPrecondition(elsewhere)) << elsewhere;
  EXPECT_THAT(elsewhere.message(), HasSubstr("2001:db8::20"));
  EXPECT_THAT(elsewhere.message(), HasSubstr("p0"));

  absl::Status removal = programmer_->Remove({"n0", "192.0.2.20", 24});
  EXPECT_TRUE(absl::IsFailedPrecondition(removal)) << removal;
  EXPECT_THAT(IpAddr("n0"), HasSubstr("\"local\":\"192.0.2.20\",\"prefixlen\":24"));
  EXPECT_THAT(IpAddr("p0"), HasSubstr("2001:db8::20"));

  // Owned and foreign addresses side by side: only ours goes.
  ABODE_ASSERT_OK(programmer_->Add({"n0", "192.0.2.21", 24}));
  ABODE_ASSERT_OK(programmer_->Remove({"n0", "192.0.2.21", 24}));
  EXPECT_THAT(IpAddr("n0"), HasSubstr("192.0.2.20"));
}

TEST_F(NetlinkAddressProgrammerTest, SeesChangesMadeBySomeoneElseAfterItsFirstLook) {
  const OwnedAddress ours{"n0", "192.0.2.60", 32};
  ABODE_ASSERT_OK(programmer_->Add(ours));
  EXPECT_THAT(Owned(), ElementsAre(ours));

  // Someone removes our address: it is no longer listed, and adding it again really adds it.
  ABODE_ASSERT_OK(node_->Run("ip addr del 192.0.2.60/32 dev n0"));
  EXPECT_THAT(Owned(), IsEmpty());
  ABODE_ASSERT_OK(programmer_->Add(ours));
  EXPECT_THAT(IpAddr("n0"), HasSubstr("\"local\":\"192.0.2.60\""));

  // Someone takes an address after our first look: it is refused all the same.
  ABODE_ASSERT_OK(node_->Run("ip addr add 2001:db8::61/64 dev p0 nodad"));
  absl::Status taken = programmer_->Add({"n0", "2001:db8::61", 128});
  EXPECT_TRUE(absl::IsFailedPrecondition(taken)) << taken;
  EXPECT_THAT(taken.message(), HasSubstr("p0"));
}

TEST_F(NetlinkAddressProgrammerTest, PlacingAnAddressCostsOneRoundTrip) {
  ABODE_ASSERT_OK(programmer_->Add({"n0", "198.51.100.1", 32}));  // first look at the node: one dump
  const int64_t before = programmer_->round_trips();
  for (int i = 2; i <= 51; ++i) ABODE_ASSERT_OK(programmer_->Add({"n0", absl::StrCat("198.51.100.", i), 32}));
  EXPECT_EQ(programmer_->round_trips() - before, 50);
  EXPECT_EQ(Owned().size(), 51u);
}

TEST_F(NetlinkAddressProgrammerTest, AMissingInterfaceIsNamed) {
  absl::Status status = programmer_->Add({"absent0", "192.0.2.30", 32});
  EXPECT_TRUE(absl::IsNotFound(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr("absent0"));
  ABODE_ASSERT_OK(programmer_->Remove({"absent0", "192.0.2.30", 32}));  // nothing there to remove
}

TEST_F(NetlinkAddressProgrammerTest, InterfacesCreatedLaterAreFound) {
  ABODE_ASSERT_OK(node_->Run("ip link add late0 type veth peer name late1"));
  ABODE_ASSERT_OK(programmer_->Add({"late0", "198.51.100.40", 32}));
  EXPECT_THAT(Owned(), ElementsAre(OwnedAddress{"late0", "198.51.100.40", 32}));
}

TEST_F(NetlinkAddressProgrammerTest, RejectsMalformedRequests) {
  EXPECT_TRUE(absl::IsInvalidArgument(programmer_->Add({"n0", "192.0.2.300", 32})));
  EXPECT_TRUE(absl::IsInvalidArgument(programmer_->Add({"n0", "192.0.2.1", 40})));
  EXPECT_TRUE(absl::IsInvalidArgument(programmer_->Remove({"n0", "2001:DB8::1", 64})));
}

}  // namespace
}  // namespace abode::node

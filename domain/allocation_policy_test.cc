// The pure parts of allocation and placement, without a store: what the policy proposes and what node
// placement decides.
#include "domain/allocation_policy.h"

#include <memory>
#include <string>
#include <utility>

#include "domain/node_model.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace abode::domain {
namespace {

using ::testing::HasSubstr;

Pool MakePool(const std::string& cidr, v1::AllocationStrategy strategy) {
  v1::PoolSpec spec;
  spec.set_name("p");
  spec.set_cidr(cidr);
  spec.set_strategy(strategy);
  auto canonical = CanonicalizePool(spec);
  EXPECT_TRUE(canonical.ok()) << canonical.status();
  Pool p;
  p.spec = canonical->spec;
  p.layout = canonical->layout;
  p.free = p.layout.Assignable();
  return p;
}

std::string Text(const Pool& p, std::optional<u128> v) {
  return v ? IpAddress(p.layout.family(), *v).ToString() : "none";
}

TEST(ProposeAddressTest, LowestTakesTheLowestFreeAddress) {
  Pool p = MakePool("10.0.0.0/29", v1::ALLOCATION_STRATEGY_LOWEST);
  EXPECT_EQ(Text(p, ProposeAddress(p)), "10.0.0.1");  // the network address is never handed out
  p.free.Take(IpAddress::Parse("10.0.0.1", "a")->value());
  p.cursor = IpAddress::Parse("10.0.0.1", "a")->value();
  EXPECT_EQ(Text(p, ProposeAddress(p)), "10.0.0.2");
  p.free.Give(IpAddress::Parse("10.0.0.1", "a")->value());
  EXPECT_EQ(Text(p, ProposeAddress(p)), "10.0.0.1") << "lowest reuses a freed address at once";
}

TEST(ProposeAddressTest, SequentialGoesOnAfterTheCursorAndWraps) {
  Pool p = MakePool("10.0.0.0/29", v1::ALLOCATION_STRATEGY_SEQUENTIAL);
  p.cursor = IpAddress::Parse("10.0.0.3", "a")->value();
  EXPECT_EQ(Text(p, ProposeAddress(p)), "10.0.0.4");
  p.cursor = IpAddress::Parse("10.0.0.7", "a")->value();  // the end of the range: wrap to its start
  EXPECT_EQ(Text(p, ProposeAddress(p)), "10.0.0.1");
}

TEST(ProposeAddressTest, AFullPoolProposesNothing) {
  Pool p = MakePool("10.0.0.0/30", v1::ALLOCATION_STRATEGY_LOWEST);
  for (const char* a : {"10.0.0.1", "10.0.0.2"}) ASSERT_TRUE(p.free.Take(IpAddress::Parse(a, "a")->value()));
  EXPECT_EQ(ProposeAddress(p), std::nullopt);
}

TEST(RequestedAddressTest, RefusesAddressesThePoolNeverHandsOut) {
  Pool p = MakePool("10.0.0.0/29", v1::ALLOCATION_STRATEGY_LOWEST);
  EXPECT_EQ(RequestedAddress(p, "")->has_value(), false);
  EXPECT_EQ(RequestedAddress(p, "10.0.0.5").value()->ToString(), "10.0.0.5");
  EXPECT_THAT(RequestedAddress(p, "10.0.1.5").status().message(), HasSubstr("is outside pool"));
  EXPECT_THAT(RequestedAddress(p, "10.0.0.7").status().message(), HasSubstr("never handed out"));
  EXPECT_EQ(RequestedAddress(p, "bogus").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(CheckAllocateRequestTest, NamesTheField) {
  v1::AllocateRequest req;
  req.set_owner("pod-1");
  req.set_ttl_seconds(11);
  EXPECT_THAT(CheckAllocateRequest(req, 10).message(), HasSubstr("ttl_seconds: 11 is outside 0..10"));
  req.set_ttl_seconds(10);
  EXPECT_TRUE(CheckAllocateRequest(req, 10).ok());
  req.set_owner("");
  EXPECT_THAT(CheckAllocateRequest(req, 10).message(), HasSubstr("owner"));
}

std::shared_ptr<const v1::Node> ReadyNode(const std::string& name, bool ready = true) {
  v1::Node n;
  n.mutable_spec()->set_name(name);
  n.set_ready(ready);
  return std::make_shared<const v1::Node>(std::move(n));
}

std::shared_ptr<const v1::ExternalAddress> External(const std::string& name, const std::string& node) {
  v1::ExternalAddress x;
  x.mutable_spec()->set_name(name);
  x.set_node(node);
  return std::make_shared<const v1::ExternalAddress>(std::move(x));
}

TEST(PlanPlacementTest, ServingNodesKeepTheirClaimsAndNewOnesGoToTheLeastLoaded) {
  Objects<v1::Node> nodes{{"a", ReadyNode("a")}, {"b", ReadyNode("b")}};
  Objects<v1::ExternalAddress> externals{{"x1", External("x1", "b")}, {"x2", External("x2", "")},
                                         {"x3", External("x3", "")}};
  auto moved = PlanPlacement(nodes, externals, 7);
  ASSERT_EQ(moved.size(), 2u);
  EXPECT_EQ(moved[0].spec().name(), "x2");
  EXPECT_EQ(moved[0].node(), "a");  // a serves none, b serves x1
  EXPECT_EQ(moved[1].spec().name(), "x3");
  EXPECT_EQ(moved[1].node(), "a");  // a and b now serve one each: the lowest name
  EXPECT_EQ(moved[1].revision(), 7u);

  nodes["b"] = ReadyNode("b", /*ready=*/false);
  moved = PlanPlacement(nodes, externals, 8);
  ASSERT_EQ(moved.size(), 3u) << "x1 leaves the node that is not ready";
  for (const auto& x : moved) EXPECT_EQ(x.node(), "a");
}

}  // namespace
}  // namespace abode::domain

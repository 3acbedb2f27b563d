#include "kube/pod_allocations.h"

#include <gtest/gtest.h>

#include "cni/cni_invocation.h"

namespace abode::kube {
namespace {

v1::Allocation Alloc(const std::string& owner, const std::string& uid, const std::string& address,
                     const std::string& pool = "pods", LabelMap extra = {}) {
  v1::Allocation a;
  a.set_owner(owner);
  a.set_pool(pool);
  a.set_address(address);
  if (!uid.empty()) (*a.mutable_labels())[cni::kLabelPodUid] = uid;
  for (const auto& [k, v] : extra) (*a.mutable_labels())[k] = v;
  return a;
}

std::set<std::string> OwnerNames(const PodAllocations& index, const std::string& uid) {
  std::set<std::string> out;
  for (const auto& [owner, _] : index.OwnersOf(uid)) out.insert(owner);
  return out;
}

TEST(LabelsAfterUpdateTest, KeepsOnlyTheKeptKeysTheWantedLabelsDoNotSet) {
  const LabelMap current = {{"k8s-pod-uid", "u"}, {"cni-network", "n"}, {"app", "old"}, {"gone", "x"}};
  const LabelMap wanted = {{"app", "new"}, {"cni-network", "mine"}};
  EXPECT_EQ(LabelsAfterUpdate(current, wanted, {"k8s-pod-uid", "cni-network", "absent"}),
            (LabelMap{{"k8s-pod-uid", "u"}, {"cni-network", "mine"}, {"app", "new"}}));
  // Equal to the current labels exactly when an update would change nothing.
  const LabelMap same = {{"k8s-pod-uid", "u"}, {"app", "a"}};
  EXPECT_EQ(LabelsAfterUpdate(same, {{"app", "a"}}, {"k8s-pod-uid"}), same);
}

TEST(PodAllocationsTest, ReplaceIndexesAllocationsByPodUidAndSkipsOthers) {
  PodAllocations index;
  EXPECT_FALSE(index.loaded());
  index.Replace({Alloc("c1/eth0", "u1", "10.0.0.1"), Alloc("c1/eth0", "u1", "fd00::1", "pods6"),
                 Alloc("c2/eth0", "u2", "10.0.0.2"), Alloc("operator-x", "", "10.0.0.3")});
  EXPECT_TRUE(index.loaded());
  EXPECT_EQ(index.pods(), 2u);
  EXPECT_EQ(index.allocations(), 3u);
  ASSERT_EQ(index.OwnersOf("u1").at("c1/eth0").size(), 2u);
  EXPECT_EQ(index.OwnersOf("u1").at("c1/eth0").at("pods6").address, "fd00::1");
  EXPECT_TRUE(index.OwnersOf("unknown").empty());
  index.Clear();
  EXPECT_FALSE(index.loaded());
  EXPECT_EQ(index.pods(), 0u);
}

TEST(PodAllocationsTest, APodIsLookedUpWhenUnknownOrItsStatusNamesAnAddressNotAccountedFor) {
  PodAllocations index;
  index.Replace({Alloc("c1/eth0", "u1", "10.0.0.1")});
  EXPECT_TRUE(index.NeedsLookup("u2", {}));
  EXPECT_FALSE(index.NeedsLookup("u1", {}));
  EXPECT_FALSE(index.NeedsLookup("u1", {"10.0.0.1"}));
  // A new sandbox: the status names its new address.
  EXPECT_TRUE(index.NeedsLookup("u1", {"10.0.0.9"}));
  index.Put("u1", {Alloc("c1b/eth0", "u1", "10.0.0.9")}, {"10.0.0.9"});
  EXPECT_EQ(OwnerNames(index, "u1"), std::set<std::string>{"c1b/eth0"});
  EXPECT_FALSE(index.NeedsLookup("u1", {"10.0.0.9"}));
  // A host-network pod: its address is no allocation; one lookup accounts for it, also across a relist.
  index.Put("u3", {}, {"192.0.2.7"});
  EXPECT_FALSE(index.NeedsLookup("u3", {"192.0.2.7"}));
  EXPECT_TRUE(index.NeedsLookup("u3", {"192.0.2.8"}));
  index.Replace({Alloc("c3/eth0", "u3", "10.0.0.3")});
  EXPECT_FALSE(index.NeedsLookup("u3", {"192.0.2.7", "10.0.0.3"}));
  // A relist that no longer holds the allocation: its address is no longer accounted for.
  index.Replace({});
  EXPECT_FALSE(index.NeedsLookup("u3", {"192.0.2.7"}));
  EXPECT_TRUE(index.NeedsLookup("u3", {"10.0.0.3"}));
  index.ForgetPod("u3");
  EXPECT_TRUE(index.NeedsLookup("u3", {}));
}

TEST(PodAllocationsTest, UpdatesAndForgettingKeepOwnersAndPodsInStep) {
  PodAllocations index;
  index.Replace({Alloc("c1/eth0", "u1", "10.0.0.1", "pods", {{"app", "a"}}), Alloc("c2/eth0", "u2", "10.0.0.2")});
  index.Update("c1/eth0", {Alloc("c1/eth0", "u1", "10.0.0.1", "pods", {{"app", "b"}})});
  EXPECT_EQ(index.OwnersOf("u1").at("c1/eth0").at("pods").labels.at("app"), "b");
  // An owner whose pod UID label changed moves to that pod.
  index.Update("c2/eth0", {Alloc("c2/eth0", "u9", "10.0.0.2")});
  EXPECT_TRUE(index.OwnersOf("u2").empty());
  EXPECT_EQ(OwnerNames(index, "u9"), std::set<std::string>{"c2/eth0"});
  index.ForgetOwner("c2/eth0");
  EXPECT_TRUE(index.OwnersOf("u9").empty());
  EXPECT_EQ(index.allocations(), 1u);
  index.ForgetPod("u1");
  EXPECT_EQ(index.allocations(), 0u);
  // A lookup that finds an owner the index holds for another pod moves it.
  index.Replace({Alloc("c5/eth0", "u5", "10.0.0.5")});
  index.Put("u6", {Alloc("c5/eth0", "u6", "10.0.0.5"), Alloc("c7/eth0", "u7", "10.0.0.7")}, {});
  EXPECT_TRUE(index.OwnersOf("u5").empty());
  EXPECT_EQ(OwnerNames(index, "u6"), std::set<std::string>{"c5/eth0"}) << "only the pod's own allocations";
}

}  // namespace
}  // namespace abode::kube

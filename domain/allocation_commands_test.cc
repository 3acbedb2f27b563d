// The allocation command handlers without a store: what changes each returns, and that proposing changes
// nothing until the engine commits them.
#include "domain/allocation_commands.h"

#include <algorithm>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "domain/fake_allocation_store.h"

namespace abode::domain {
namespace {

using ::testing::HasSubstr;

using FakeStore = FakeAllocationStore;

class AllocationCommandsTest : public ::testing::Test {
 protected:
  AllocationCommandsTest() : commands_(pools_, store_, AllocationLimits{3600, 100}) {
    pool_ = AddPool("p", "10.0.0.0/29");
  }

  Pool* AddPool(const std::string& name, const std::string& cidr) {
    return AddTestPool(pools_, name, cidr, v1::POOL_PURPOSE_UNSPECIFIED);
  }

  v1::AllocateManyRequest Many(const std::string& owner, const std::vector<std::string>& pools) {
    v1::AllocateManyRequest req;
    req.set_owner(owner);
    req.set_node("node-1");
    for (const std::string& p : pools) req.add_items()->set_pool(p);
    return req;
  }

  // Writes and commits what a successful command returned, as the engine does.
  void Commit(const CommandOutcome& outcome) {
    ASSERT_TRUE(outcome.ok()) << outcome.status();
    store_.Write(changes_, *outcome);
    commands_.CommitToPools(changes_);
    stamp_.revision = changes_.revision;
  }

  v1::AllocateRequest Request(const std::string& owner, int64_t ttl = 0) {
    v1::AllocateRequest req;
    req.set_pool("p");
    req.set_owner(owner);
    req.set_ttl_seconds(ttl);
    return req;
  }

  Pools pools_;
  FakeStore store_;
  AllocationCommands commands_;
  AllocationChangeSet changes_;
  Stamp stamp_{10, 1000};
  Pool* pool_ = nullptr;
};

TEST_F(AllocationCommandsTest, AllocateProposesAnInsertAndChangesNothingItself) {
  const v1::AllocateRequest req = Request("pod-a", 60);
  auto out = commands_.Allocate(req, stamp_, changes_);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->allocation().address(), "10.0.0.1");
  EXPECT_EQ(out->allocation().revision(), 11u);
  EXPECT_EQ(out->allocation().expire_time_unix_ms(), 61000);
  ASSERT_EQ(changes_.inserts.size(), 1u);
  EXPECT_EQ(changes_.inserts[0].pool, pool_);
  EXPECT_EQ(changes_.inserts[0].request, &req);
  EXPECT_EQ(changes_.inserts[0].revision, 11u);
  EXPECT_EQ(changes_.revision, 11u);
  EXPECT_TRUE(changes_.removals.empty());
  EXPECT_TRUE(changes_.renewals.empty());
  // Proposed, not taken: the pool is as before until the engine commits.
  EXPECT_EQ(pool_->used, 0u);
  EXPECT_TRUE(pool_->free.Contains(IpAddress::Parse("10.0.0.1", "a")->value()));
  EXPECT_FALSE(pool_->dirty);

  Commit(out);
  EXPECT_EQ(pool_->used, 1u);
  EXPECT_FALSE(pool_->free.Contains(IpAddress::Parse("10.0.0.1", "a")->value()));
  EXPECT_TRUE(pool_->dirty);
  auto next = commands_.Allocate(Request("pod-b"), stamp_, changes_);
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->allocation().address(), "10.0.0.2");
}

TEST_F(AllocationCommandsTest, ARetryRenewsTheLeaseInsteadOfInserting) {
  const v1::AllocateRequest req = Request("pod-a", 60);
  Commit(commands_.Allocate(req, stamp_, changes_));
  stamp_.time_ms = 5000;
  auto again = commands_.Allocate(req, stamp_, changes_);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->allocation().address(), "10.0.0.1");
  EXPECT_TRUE(changes_.inserts.empty());
  ASSERT_EQ(changes_.renewals.size(), 1u);
  EXPECT_EQ(changes_.renewals[0].expire_ms, 65000);
  EXPECT_EQ(changes_.renewals[0].revision, 12u);

  // Without a TTL a retry has no lease to renew: no change at all.
  const v1::AllocateRequest plain = Request("pod-b");
  Commit(commands_.Allocate(plain, stamp_, changes_));
  const uint64_t before = stamp_.revision;
  ASSERT_TRUE(commands_.Allocate(plain, stamp_, changes_).ok());
  EXPECT_TRUE(changes_.inserts.empty());
  EXPECT_TRUE(changes_.renewals.empty());
  EXPECT_EQ(changes_.revision, before);
}

TEST_F(AllocationCommandsTest, ARefusedCommandReturnsNoChanges) {
  for (int i = 0; i < 6; ++i) Commit(commands_.Allocate(Request("pod-" + std::to_string(i)), stamp_, changes_));
  auto full = commands_.Allocate(Request("pod-x"), stamp_, changes_);
  EXPECT_EQ(full.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(changes_.inserts.empty());
  EXPECT_EQ(changes_.revision, stamp_.revision);

  v1::AllocateRequest taken = Request("pod-y");
  taken.set_address("10.0.0.3");
  auto held = commands_.Allocate(taken, stamp_, changes_);
  EXPECT_EQ(held.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(held.status().message(), HasSubstr("held by owner \"pod-2\""));
  EXPECT_TRUE(changes_.inserts.empty());
}

TEST_F(AllocationCommandsTest, AllocateManyProposesOneInsertPerItemInOneChangeSet) {
  Pool* v6 = AddPool("p6", "fd00::/120");
  const v1::AllocateManyRequest req = Many("pod-a", {"p", "p6"});
  auto out = commands_.AllocateMany(req, stamp_, changes_);
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->allocate_many().allocations_size(), 2);
  EXPECT_EQ(out->allocate_many().allocations(0).address(), "10.0.0.1");
  EXPECT_EQ(out->allocate_many().allocations(0).pool(), "p");
  EXPECT_EQ(out->allocate_many().allocations(1).address(), "fd00::1");
  EXPECT_EQ(out->allocate_many().allocations(1).node(), "node-1");
  ASSERT_EQ(changes_.inserts.size(), 2u);
  EXPECT_EQ(changes_.inserts[0].pool, pool_);
  EXPECT_EQ(changes_.inserts[1].pool, v6);
  EXPECT_EQ(changes_.inserts[0].revision, 11u);
  EXPECT_EQ(changes_.inserts[1].revision, 12u);
  EXPECT_EQ(changes_.inserts[1].result_index, 1);
  EXPECT_EQ(pool_->used, 0u);
  EXPECT_EQ(v6->used, 0u);
  Commit(out);
  EXPECT_EQ(pool_->used, 1u);
  EXPECT_EQ(v6->used, 1u);

  // A retry answers with the same addresses and inserts nothing.
  auto again = commands_.AllocateMany(req, stamp_, changes_);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->allocate_many().allocations(0).address(), "10.0.0.1");
  EXPECT_EQ(again->allocate_many().allocations(1).address(), "fd00::1");
  EXPECT_TRUE(changes_.inserts.empty());
}

TEST_F(AllocationCommandsTest, AllocateManyRefusedByItsLastItemLeavesNoTraceOfTheFirst) {
  Pool* small = AddPool("small", "10.1.0.0/30");  // two addresses
  Commit(commands_.AllocateMany(Many("pod-a", {"small"}), stamp_, changes_));
  Commit(commands_.AllocateMany(Many("pod-b", {"small"}), stamp_, changes_));
  const uint64_t before = stamp_.revision;
  const size_t rows = store_.size();

  auto full = commands_.AllocateMany(Many("pod-c", {"p", "small"}), stamp_, changes_);
  EXPECT_EQ(full.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(full.status().message(), HasSubstr("items[1] (pool \"small\"): pool \"small\" is full"));
  EXPECT_TRUE(changes_.inserts.empty()) << "the first item's insert is not proposed either";
  EXPECT_EQ(changes_.revision, before);
  EXPECT_EQ(pool_->used, 0u);
  EXPECT_EQ(small->used, 2u);
  EXPECT_EQ(store_.size(), rows);
  EXPECT_EQ(stamp_.revision, before);

  v1::AllocateManyRequest taken = Many("pod-d", {"p", "small"});
  taken.mutable_items(1)->set_address("10.1.0.1");
  auto held = commands_.AllocateMany(taken, stamp_, changes_);
  EXPECT_EQ(held.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(held.status().message(), HasSubstr("items[1] (pool \"small\"): address: 10.1.0.1 is held"));

  auto missing = commands_.AllocateMany(Many("pod-e", {"p", "nope"}), stamp_, changes_);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("items[1] (pool \"nope\")"));

  v1::AllocateManyRequest outside = Many("pod-f", {"p", "small"});
  outside.mutable_items(0)->set_address("192.168.0.1");
  auto bad = commands_.AllocateMany(outside, stamp_, changes_);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("items[0] (pool \"p\")"));
  EXPECT_EQ(pool_->used, 0u);
  EXPECT_EQ(store_.size(), rows);
}

TEST_F(AllocationCommandsTest, AllocateManyRefusesEmptyDuplicateAndTooManyItems) {
  auto none = commands_.AllocateMany(Many("pod-a", {}), stamp_, changes_);
  EXPECT_EQ(none.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(none.status().message(), HasSubstr("items:"));
  auto twice = commands_.AllocateMany(Many("pod-a", {"p", "p"}), stamp_, changes_);
  EXPECT_EQ(twice.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(twice.status().message(), HasSubstr("items[1].pool: pool \"p\" is also items[0]"));
  EXPECT_TRUE(changes_.inserts.empty());
  auto many = commands_.AllocateMany(Many("pod-a", std::vector<std::string>(kMaxAllocateItems + 1, "p")), stamp_,
                                     changes_);
  EXPECT_EQ(many.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(many.status().message(), HasSubstr("at most 16"));
  auto no_owner = commands_.AllocateMany(Many("", {"p"}), stamp_, changes_);
  EXPECT_EQ(no_owner.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(pool_->used, 0u);
}

TEST_F(AllocationCommandsTest, ReleaseRemovesEachHoldingAtARevisionOfItsOwn) {
  Commit(commands_.Allocate(Request("pod-a"), stamp_, changes_));
  Commit(commands_.Allocate(Request("pod-b"), stamp_, changes_));
  v1::ReleaseRequest req;
  req.set_address("10.0.0.2");
  auto out = commands_.Release(req, stamp_, changes_);
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(changes_.removals.size(), 1u);
  EXPECT_EQ(changes_.removals[0].allocation.owner(), "pod-b");
  EXPECT_EQ(changes_.removals[0].revision, 13u);
  EXPECT_EQ(changes_.removals[0].reason, "released");
  EXPECT_EQ(out->release().revision(), 13u);
  EXPECT_EQ(pool_->used, 2u) << "nothing is given back before the engine commits";
  Commit(out);
  EXPECT_EQ(pool_->used, 1u);
  EXPECT_TRUE(pool_->free.Contains(IpAddress::Parse("10.0.0.2", "a")->value()));
  EXPECT_EQ(store_.size(), 1u);
}

TEST_F(AllocationCommandsTest, UpdateLabelsReplacesLabelsKeepingTheNamedOnes) {
  Pool* v6 = AddPool("v6", "fd00::/120");
  v1::AllocateManyRequest many = Many("pod-a", {"p", "v6"});
  (*many.mutable_labels())["k8s-pod-uid"] = "u-1";
  (*many.mutable_labels())["app"] = "old";
  Commit(commands_.AllocateMany(many, stamp_, changes_));
  ASSERT_NE(v6, nullptr);

  v1::UpdateLabelsRequest req;
  req.set_owner("pod-a");
  (*req.mutable_labels())["app"] = "agent";
  (*req.mutable_labels())["k8s-pod-namespace"] = "mon";
  req.add_keep_keys("k8s-pod-uid");
  req.add_keep_keys("cni-network");  // absent: nothing kept
  auto out = commands_.UpdateLabels(req, stamp_, changes_);
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->update_labels().allocations_size(), 2);
  ASSERT_EQ(changes_.relabels.size(), 2u);
  EXPECT_EQ(changes_.relabels[0].revision, stamp_.revision + 1);
  EXPECT_EQ(changes_.relabels[1].revision, stamp_.revision + 2);
  EXPECT_EQ(out->update_labels().revision(), stamp_.revision + 2);
  const std::map<std::string, std::string> want{{"app", "agent"}, {"k8s-pod-namespace", "mon"}, {"k8s-pod-uid", "u-1"}};
  for (const auto& a : out->update_labels().allocations()) {
    EXPECT_EQ((std::map<std::string, std::string>(a.labels().begin(), a.labels().end())), want);
  }
  EXPECT_EQ(changes_.relabels[0].labels, "app=agent\nk8s-pod-namespace=mon\nk8s-pod-uid=u-1");
  Commit(out);

  // The same labels again: nothing to write, revisions stay.
  const uint64_t before = stamp_.revision;
  auto same = commands_.UpdateLabels(req, stamp_, changes_);
  ASSERT_TRUE(same.ok()) << same.status();
  EXPECT_TRUE(changes_.relabels.empty());
  EXPECT_EQ(same->update_labels().revision(), before);
  EXPECT_EQ(same->update_labels().allocations(0).revision(), before - 1);

  // Only one pool.
  req.set_pool("v6");
  (*req.mutable_labels())["app"] = "v6-only";
  auto one = commands_.UpdateLabels(req, stamp_, changes_);
  ASSERT_TRUE(one.ok()) << one.status();
  ASSERT_EQ(one->update_labels().allocations_size(), 1);
  EXPECT_EQ(one->update_labels().allocations(0).pool(), "v6");
}

TEST_F(AllocationCommandsTest, UpdateLabelsRefusesBadInputAndUnknownOwners) {
  Commit(commands_.Allocate(Request("pod-a"), stamp_, changes_));
  v1::UpdateLabelsRequest req;
  req.set_owner("nobody");
  auto unknown = commands_.UpdateLabels(req, stamp_, changes_);
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(unknown.status().message(), HasSubstr("owner"));

  req.set_owner("");
  EXPECT_THAT(commands_.UpdateLabels(req, stamp_, changes_).status().message(), HasSubstr("owner"));
  req.set_owner("pod-a");
  (*req.mutable_labels())["bad key"] = "v";
  auto bad_label = commands_.UpdateLabels(req, stamp_, changes_);
  EXPECT_EQ(bad_label.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad_label.status().message(), HasSubstr("labels"));
  req.clear_labels();
  req.add_keep_keys("");
  auto bad_keep = commands_.UpdateLabels(req, stamp_, changes_);
  EXPECT_EQ(bad_keep.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad_keep.status().message(), HasSubstr("keep_keys[0]"));
  req.clear_keep_keys();
  req.set_pool("missing");
  auto no_pool = commands_.UpdateLabels(req, stamp_, changes_);
  EXPECT_EQ(no_pool.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(no_pool.status().message(), HasSubstr("pool"));
  EXPECT_TRUE(changes_.relabels.empty());
}

TEST_F(AllocationCommandsTest, ExpiryRemovesWhatEndedAtTheBatchTime) {
  Commit(commands_.Allocate(Request("short", 1), stamp_, changes_));
  Commit(commands_.Allocate(Request("long", 100), stamp_, changes_));
  stamp_.time_ms = 2000;
  auto out = commands_.Expire(stamp_, changes_);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->changed(), 1u);
  ASSERT_EQ(changes_.removals.size(), 1u);
  EXPECT_EQ(changes_.removals[0].allocation.owner(), "short");
  EXPECT_EQ(changes_.removals[0].reason, "expired");
}

TEST_F(AllocationCommandsTest, CreatingAPoolAddsItOnlyOnCommit) {
  NodeModel nodes(pools_);
  v1::CreatePoolRequest req;
  req.mutable_pool()->set_name("q");
  req.mutable_pool()->set_cidr("10.1.0.0/24");
  auto out = commands_.CreatePool(req, nodes, stamp_, changes_);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->pool().spec().name(), "q");
  ASSERT_TRUE(changes_.has_new_pool);
  EXPECT_EQ(changes_.new_pool.create_revision, 11u);
  EXPECT_EQ(changes_.new_pool.id, 2);
  EXPECT_EQ(pools_.Find("q"), nullptr) << "the pool waits for the engine's commit";
  Commit(out);
  ASSERT_NE(pools_.Find("q"), nullptr);
  EXPECT_EQ(pools_.Find("q")->id, 2);

  // A retry of the same pool answers it and changes nothing; an overlapping one is refused.
  ASSERT_TRUE(commands_.CreatePool(req, nodes, stamp_, changes_).ok());
  EXPECT_FALSE(changes_.has_new_pool);
  req.mutable_pool()->set_name("r");
  req.mutable_pool()->set_cidr("10.1.0.128/25");
  EXPECT_EQ(commands_.CreatePool(req, nodes, stamp_, changes_).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE(changes_.has_new_pool);
}

TEST_F(AllocationCommandsTest, ForceDeletingAPoolRemovesItsHoldingsThenThePool) {
  Commit(commands_.Allocate(Request("pod-a"), stamp_, changes_));
  v1::DeletePoolRequest req;
  req.set_name("p");
  EXPECT_EQ(commands_.DeletePool(req, stamp_, changes_).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(changes_.deleted_pool, nullptr);
  req.set_force(true);
  auto out = commands_.DeletePool(req, stamp_, changes_);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->delete_pool().released(), 1u);
  EXPECT_EQ(changes_.removals.size(), 1u);
  EXPECT_EQ(changes_.deleted_pool, pool_);
  EXPECT_EQ(out->delete_pool().revision(), 13u);
  ASSERT_NE(pools_.Find("p"), nullptr) << "the pool stays until the engine commits";
  Commit(out);
  EXPECT_EQ(pools_.Find("p"), nullptr);
}

}  // namespace
}  // namespace abode::domain

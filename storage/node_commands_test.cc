// Node commands applied through the StateMachine: placement, failover, elastic and magic targets, the change
// feed, snapshots and determinism.

#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/state_machine.h"
#include "test-support/temp_dir.h"

namespace abode::storage {
namespace {

using test_support::TempDir;

using ::testing::HasSubstr;

constexpr int64_t kT0 = 1'700'000'000'000;

class NodeStateTest : public ::testing::Test {
 protected:
  void SetUp() override { sm_ = OpenMachine("a.db"); }
  void TearDown() override { sm_.reset(); }
  std::unique_ptr<StateMachine> OpenMachine(const std::string& name) {
    StateMachineOptions o;
    o.db_path = dir_.File(name);
    auto sm = StateMachine::Open(o);
    EXPECT_TRUE(sm.ok()) << sm.status();
    return std::move(*sm);
  }

  // Applies one command as its own batch; records the batch for replays.
  CommandOutcome Run(v1::Command cmd) {
    v1::CommandBatch batch;
    batch.set_format_version(kCommandFormatVersion);
    batch.set_time_unix_ms(now_);
    *batch.add_commands() = std::move(cmd);
    log_.push_back(batch);
    auto out = sm_->Apply(batch);
    EXPECT_TRUE(out.ok()) << out.status();
    auto update = sm_->TakeNodeStateUpdate();
    for (auto& c : update.changes) changes_.push_back(std::move(c));
    return (*out)[0];
  }

  void Pool(const std::string& name, const std::string& cidr, v1::PoolPurpose purpose) {
    v1::Command c;
    c.mutable_create_pool()->mutable_pool()->set_name(name);
    c.mutable_create_pool()->mutable_pool()->set_cidr(cidr);
    c.mutable_create_pool()->mutable_pool()->set_purpose(purpose);
    ASSERT_TRUE(Run(c).ok());
  }
  void Node(const std::string& name, std::map<std::string, std::string> labels = {}) {
    v1::Command c;
    c.mutable_register_node()->mutable_node()->set_name(name);
    for (auto& [k, v] : labels) (*c.mutable_register_node()->mutable_node()->mutable_labels())[k] = v;
    ASSERT_TRUE(Run(c).ok());
  }
  void NotReady(const std::string& name) {
    v1::Command c;
    c.mutable_mark_node_not_ready()->set_name(name);
    ASSERT_TRUE(Run(c).ok());
  }
  CommandOutcome Workload(const std::string& owner, const std::string& node, const std::string& app) {
    v1::Command c;
    c.mutable_allocate()->set_pool("pods");
    c.mutable_allocate()->set_owner(owner);
    c.mutable_allocate()->set_node(node);
    (*c.mutable_allocate()->mutable_labels())["app"] = app;
    return Run(c);
  }
  void Release(const std::string& owner) {
    v1::Command c;
    c.mutable_release()->set_owner(owner);
    ASSERT_TRUE(Run(c).ok());
  }
  CommandOutcome External(const std::string& name, const std::string& selector = "", const std::string& address = "") {
    v1::Command c;
    auto* spec = c.mutable_create_external_address()->mutable_address();
    spec->set_name(name);
    spec->set_pool("ext");
    spec->set_node_selector(selector);
    spec->set_address(address);
    return Run(c);
  }
  CommandOutcome Magic(const std::string& name, const std::string& address, const std::string& selector,
                       v1::MagicPolicy policy = v1::MAGIC_POLICY_UNSPECIFIED) {
    v1::Command c;
    auto* spec = c.mutable_create_magic_address()->mutable_address();
    spec->set_name(name);
    spec->set_address(address);
    spec->set_label_selector(selector);
    spec->set_policy(policy);
    auto* p = spec->add_ports();
    p->set_protocol(v1::PROTOCOL_UDP);
    p->set_port(8125);
    return Run(c);
  }
  CommandOutcome Relabel(const std::string& owner, std::map<std::string, std::string> labels,
                         std::vector<std::string> keep = {}) {
    v1::Command c;
    c.mutable_update_labels()->set_owner(owner);
    for (auto& [k, v] : labels) (*c.mutable_update_labels()->mutable_labels())[k] = v;
    for (auto& k : keep) c.mutable_update_labels()->add_keep_keys(k);
    return Run(c);
  }
  CommandOutcome SetNodeLabels(const std::string& node, std::map<std::string, std::string> labels) {
    v1::Command c;
    c.mutable_set_node_labels()->set_name(node);
    for (auto& [k, v] : labels) (*c.mutable_set_node_labels()->mutable_labels())[k] = v;
    return Run(c);
  }
  std::string ServingNode(const std::string& external) {
    auto view = view_();
    return view->externals.at(external)->node();
  }
  std::shared_ptr<const NodeStateView> view_() {
    // A fresh machine restored from a snapshot publishes a complete view.
    auto snap = sm_->Snapshot();
    EXPECT_TRUE(snap.ok());
    auto other = OpenMachine(absl::StrCat("view-", ++views_, ".db"));
    auto restored = other->Restore(*snap);
    EXPECT_TRUE(restored.ok()) << restored;
    return other->TakeNodeStateUpdate().view;
  }
  // The target of the magic address on a node, from the change feed ("" = drop, "-" = no assignment).
  std::string MagicTarget(const std::string& node, const std::string& magic) {
    std::string out = "-";
    for (const auto& c : changes_) {
      if (c.node() != node || c.id() != "magic/" + magic) continue;
      out = c.has_assignment() ? c.assignment().magic().target_owner() : "-";
    }
    return out;
  }

  TempDir dir_;
  int views_ = 0;
  int64_t now_ = kT0;
  std::unique_ptr<StateMachine> sm_;
  std::vector<v1::CommandBatch> log_;
  std::vector<v1::AssignmentChange> changes_;
};

TEST_F(NodeStateTest, ExternalAddressesArePlacedEvenlyAndFailOverWithoutFlappingBack) {
  Pool("ext", "203.0.113.0/24", v1::POOL_PURPOSE_EXTERNAL);
  Node("n1", {{"edge", "yes"}});
  Node("n2", {{"edge", "yes"}});
  Node("n3", {{"edge", "no"}});
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(External(absl::StrCat("x", i), "edge=yes").ok());
  std::map<std::string, int> load;
  for (int i = 0; i < 4; ++i) ++load[ServingNode(absl::StrCat("x", i))];
  EXPECT_EQ(load, (std::map<std::string, int>{{"n1", 2}, {"n2", 2}}));

  const std::string before = ServingNode("x0");
  NotReady(before);
  const std::string after = ServingNode("x0");
  EXPECT_NE(after, before);
  EXPECT_NE(after, "n3");  // the selector still holds
  Node(before, {{"edge", "yes"}});  // recovers
  EXPECT_EQ(ServingNode("x0"), after);
}

TEST_F(NodeStateTest, ExternalAddressErrorsNameTheField) {
  Pool("ext", "203.0.113.0/24", v1::POOL_PURPOSE_EXTERNAL);
  Pool("pods", "10.0.0.0/16", v1::POOL_PURPOSE_WORKLOAD);
  auto outside = External("a", "", "198.51.100.1");
  EXPECT_EQ(outside.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(outside.status().message(), HasSubstr("address.address"));
  auto bad_sel = External("b", "nonsense");
  EXPECT_EQ(bad_sel.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad_sel.status().message(), HasSubstr("address.node_selector"));
  v1::Command c;
  c.mutable_create_external_address()->mutable_address()->set_name("c");
  c.mutable_create_external_address()->mutable_address()->set_pool("pods");
  auto workload_pool = Run(c);
  EXPECT_EQ(workload_pool.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(workload_pool.status().message(), HasSubstr("address.pool"));
  // Unserved while no node is ready; served once one registers.
  ASSERT_TRUE(External("d").ok());
  EXPECT_EQ(ServingNode("d"), "");
  Node("n1");
  EXPECT_EQ(ServingNode("d"), "n1");
}

TEST_F(NodeStateTest, MagicTargetIsTheOldestLocalMatchAndStaysPut) {
  Pool("pods", "10.0.0.0/16", v1::POOL_PURPOSE_WORKLOAD);
  Node("n1");
  Node("n2");
  ASSERT_TRUE(Workload("agent-a", "n1", "agent").ok());
  ASSERT_TRUE(Workload("agent-b", "n1", "agent").ok());
  ASSERT_TRUE(Magic("dd", "169.254.210.210", "app=agent").ok());
  EXPECT_EQ(MagicTarget("n1", "dd"), "agent-a");
  EXPECT_EQ(MagicTarget("n2", "dd"), "");  // drop: no local agent
  const size_t seen = changes_.size();
  ASSERT_TRUE(Workload("web-1", "n1", "web").ok());
  ASSERT_TRUE(Workload("agent-c", "n1", "agent").ok());
  EXPECT_EQ(changes_.size(), seen) << "unrelated and younger pods must not reshuffle";
  Release("agent-a");
  EXPECT_EQ(MagicTarget("n1", "dd"), "agent-b");
  ASSERT_TRUE(Workload("agent-d", "n2", "agent").ok());
  EXPECT_EQ(MagicTarget("n2", "dd"), "agent-d");
  NotReady("n2");
  EXPECT_EQ(MagicTarget("n2", "dd"), "-");
}

TEST_F(NodeStateTest, RelabellingMovesTheMagicTarget) {
  Pool("pods", "10.0.0.0/16", v1::POOL_PURPOSE_WORKLOAD);
  Node("n1");
  ASSERT_TRUE(Workload("pod-a", "n1", "web").ok());
  ASSERT_TRUE(Workload("pod-b", "n1", "web").ok());
  ASSERT_TRUE(Magic("dd", "169.254.210.210", "app=agent,k8s-pod-namespace=mon").ok());
  EXPECT_EQ(MagicTarget("n1", "dd"), "");  // nothing matches yet

  // The newer pod becomes the agent: the magic address reaches it.
  auto relabelled = Relabel("pod-b", {{"app", "agent"}, {"k8s-pod-namespace", "mon"}});
  ASSERT_TRUE(relabelled.ok()) << relabelled.status();
  EXPECT_EQ(MagicTarget("n1", "dd"), "pod-b");
  // The older one too: the oldest match is the target.
  ASSERT_TRUE(Relabel("pod-a", {{"app", "agent"}, {"k8s-pod-namespace", "mon"}}).ok());
  EXPECT_EQ(MagicTarget("n1", "dd"), "pod-a");
  // pod-a stops matching: the target moves back to pod-b.
  ASSERT_TRUE(Relabel("pod-a", {{"app", "web"}}).ok());
  EXPECT_EQ(MagicTarget("n1", "dd"), "pod-b");
  ASSERT_TRUE(Relabel("pod-b", {{"app", "web"}}).ok());
  EXPECT_EQ(MagicTarget("n1", "dd"), "");
  // A namespace that differs is no match.
  ASSERT_TRUE(Relabel("pod-a", {{"app", "agent"}, {"k8s-pod-namespace", "other"}}).ok());
  EXPECT_EQ(MagicTarget("n1", "dd"), "");
  // Unchanged labels change nothing: no revision, no assignment change.
  const size_t seen = changes_.size();
  auto same = Relabel("pod-a", {{"app", "agent"}, {"k8s-pod-namespace", "other"}});
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(same->update_labels().revision(), same->update_labels().allocations(0).revision());
  EXPECT_EQ(changes_.size(), seen);
}

TEST_F(NodeStateTest, SetNodeLabelsOverrideReportedOnesAndMovePlacement) {
  Pool("ext", "203.0.113.0/24", v1::POOL_PURPOSE_EXTERNAL);
  Node("n1", {{"edge", "yes"}});
  Node("n2", {{"edge", "no"}});
  ASSERT_TRUE(External("x", "edge=yes").ok());
  EXPECT_EQ(ServingNode("x"), "n1");
  // The set label wins over the reported one on the same key.
  auto set = SetNodeLabels("n1", {{"edge", "no"}});
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(ServingNode("x"), "");
  ASSERT_TRUE(SetNodeLabels("n2", {{"edge", "yes"}}).ok());
  EXPECT_EQ(ServingNode("x"), "n2");
  // A node client re-registering keeps the set labels.
  Node("n2", {{"edge", "no"}, {"zone", "a"}});
  EXPECT_EQ(view_()->nodes.at("n2")->set_labels().at("edge"), "yes");
  EXPECT_EQ(ServingNode("x"), "n2");
  // Setting the same labels again changes nothing, not even the revision.
  const uint64_t revision = set->node().revision();
  auto again = SetNodeLabels("n1", {{"edge", "no"}});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->node().revision(), revision);

  auto unknown = SetNodeLabels("n9", {});
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(unknown.status().message(), HasSubstr("name"));
  auto bad = SetNodeLabels("n1", {{"bad key", "v"}});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("labels"));
}

TEST_F(NodeStateTest, MagicFallbackAndBadInput) {
  Pool("pods", "10.0.0.0/16", v1::POOL_PURPOSE_WORKLOAD);
  Pool("ll", "169.254.1.0/24", v1::POOL_PURPOSE_WORKLOAD);
  Node("n1");
  Node("n2");
  ASSERT_TRUE(Workload("agent-a", "n1", "agent").ok());
  ASSERT_TRUE(Magic("dd", "169.254.210.210", "app=agent", v1::MAGIC_POLICY_FALLBACK).ok());
  EXPECT_EQ(MagicTarget("n2", "dd"), "agent-a");

  auto not_link_local = Magic("x", "10.9.9.9", "app=agent");
  EXPECT_EQ(not_link_local.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(not_link_local.status().message(), HasSubstr("address.address"));
  auto collides = Magic("y", "169.254.1.7", "app=agent");
  EXPECT_EQ(collides.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(collides.status().message(), HasSubstr("pool \"ll\""));
  auto bad_selector = Magic("z", "fe80::1", "app");
  EXPECT_EQ(bad_selector.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad_selector.status().message(), HasSubstr("address.label_selector"));
  EXPECT_TRUE(Magic("v6", "fe80::10", "app=agent").ok());
}

TEST_F(NodeStateTest, ElasticAssociationFollowsARecreatedWorkload) {
  Pool("ext", "203.0.113.0/24", v1::POOL_PURPOSE_EXTERNAL);
  Pool("pods", "10.0.0.0/16", v1::POOL_PURPOSE_WORKLOAD);
  Node("n1");
  Node("n2");
  ASSERT_TRUE(Workload("db-0", "n1", "db").ok());
  ASSERT_TRUE(Workload("db-1", "n2", "db").ok());
  v1::Command create;
  create.mutable_create_elastic_address()->mutable_address()->set_name("eip");
  create.mutable_create_elastic_address()->mutable_address()->set_pool("ext");
  ASSERT_TRUE(Run(create).ok());

  v1::Command assoc;
  assoc.mutable_associate_elastic_address()->set_name("eip");
  assoc.mutable_associate_elastic_address()->mutable_association()->set_label_selector("app=db");
  auto ambiguous = Run(assoc);
  EXPECT_EQ(ambiguous.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(ambiguous.status().message(), HasSubstr("association.label_selector"));
  assoc.mutable_associate_elastic_address()->mutable_association()->set_label_selector("app=nothing");
  EXPECT_EQ(Run(assoc).status().code(), absl::StatusCode::kNotFound);

  assoc.mutable_associate_elastic_address()->mutable_association()->set_owner("db-0");
  assoc.mutable_associate_elastic_address()->mutable_association()->clear_label_selector();
  auto ok = Run(assoc);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->elastic_address().node(), "n1");
  ASSERT_FALSE(changes_.empty());
  EXPECT_EQ(changes_.back().node(), "n1");
  EXPECT_EQ(changes_.back().assignment().elastic().workload_address(), "10.0.0.1");

  Release("db-0");
  EXPECT_EQ(changes_.back().node(), "n1");
  EXPECT_FALSE(changes_.back().has_assignment());
  ASSERT_TRUE(Workload("db-0", "n2", "db").ok());  // re-created elsewhere
  EXPECT_EQ(changes_.back().node(), "n2");
  EXPECT_EQ(changes_.back().assignment().elastic().workload_owner(), "db-0");
  EXPECT_EQ(view_()->elastics.at("eip")->node(), "n2");
}

TEST_F(NodeStateTest, ForceDeletingTheExternalPoolRemovesItsAddresses) {
  Pool("ext", "203.0.113.0/24", v1::POOL_PURPOSE_EXTERNAL);
  Node("n1");
  ASSERT_TRUE(External("x").ok());
  v1::Command del;
  del.mutable_delete_pool()->set_name("ext");
  del.mutable_delete_pool()->set_force(true);
  ASSERT_TRUE(Run(del).ok());
  EXPECT_TRUE(view_()->externals.empty());
  EXPECT_FALSE(changes_.back().has_assignment());
}

TEST_F(NodeStateTest, ReplaysAndRestoresAreByteIdentical) {
  Pool("ext", "203.0.113.0/24", v1::POOL_PURPOSE_EXTERNAL);
  Pool("pods", "10.0.0.0/16", v1::POOL_PURPOSE_WORKLOAD);
  Node("n1", {{"zone", "a"}, {"edge", "yes"}});
  Node("n2", {{"edge", "yes"}});
  ASSERT_TRUE(External("x", "edge=yes").ok());
  ASSERT_TRUE(External("y").ok());
  ASSERT_TRUE(Workload("agent", "n1", "agent").ok());
  ASSERT_TRUE(Magic("dd", "169.254.210.210", "app=agent").ok());
  NotReady("n1");
  now_ += 5000;
  Node("n1", {{"zone", "b"}});
  auto snap = sm_->Snapshot();
  ASSERT_TRUE(snap.ok());

  auto replay = OpenMachine("replay.db");
  for (const auto& b : log_) ASSERT_TRUE(replay->Apply(b).ok());
  auto replayed = replay->Snapshot();
  ASSERT_TRUE(replayed.ok());
  EXPECT_EQ(*replayed, *snap);

  auto restored = OpenMachine("restored.db");
  ASSERT_TRUE(restored->Restore(*snap).ok());
  auto again = restored->Snapshot();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *snap);
  // The restored replica derives the same assignments.
  auto a = replay->TakeNodeStateUpdate();
  auto b = restored->TakeNodeStateUpdate();
  ASSERT_TRUE(a.view && b.view);
  EXPECT_EQ(a.view->externals.at("x")->node(), b.view->externals.at("x")->node());
}

}  // namespace
}  // namespace abode::storage

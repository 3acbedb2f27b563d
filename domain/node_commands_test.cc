// The node command handlers without a store: the rows and allocation changes each proposes, that proposing
// changes neither the pools nor the model, and what the model holds once the engine commits.
#include "domain/node_commands.h"

#include <map>
#include <string>
#include <utility>

#include "domain/fake_allocation_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace abode::domain {
namespace {

using ::testing::HasSubstr;

class NodeCommandsTest : public ::testing::Test {
 protected:
  NodeCommandsTest()
      : allocations_(pools_, store_, AllocationLimits{3600, 100}),
        model_(pools_),
        commands_(model_, pools_, allocations_, store_) {
    AddPool("ext", "192.0.2.0/29", v1::POOL_PURPOSE_EXTERNAL);
    AddPool("pods", "10.0.0.0/24", v1::POOL_PURPOSE_UNSPECIFIED);
  }

  void AddPool(const std::string& name, const std::string& cidr, v1::PoolPurpose purpose) {
    ASSERT_NE(AddTestPool(pools_, name, cidr, purpose), nullptr);
  }

  // Proposes a command's changes, without committing them.
  CommandOutcome Propose(const v1::Command& c) { return commands_.Apply(c, stamp_, changes_); }

  // Proposes and commits a command as the engine does: rows, then allocations, then the model.
  CommandOutcome Run(const v1::Command& c) {
    CommandOutcome out = Propose(c);
    if (!out.ok()) return out;
    for (const auto& row : changes_.rows) {
      auto& table = rows_[static_cast<int>(row.table)];
      if (row.record) {
        table[row.name] = DeterministicBytes(*row.record);
      } else {
        table.erase(row.name);
      }
    }
    if (changes_.has_allocations) {
      store_.Write(changes_.allocations, changes_.allocation_result);
      allocations_.CommitToPools(changes_.allocations);
    }
    stamp_.revision = changes_.revision;
    if (absl::Status s = commands_.CommitToModel(changes_, *out); !s.ok()) return s;
    return out;
  }

  static v1::Command Register(const std::string& name, std::map<std::string, std::string> labels = {}) {
    v1::Command c;
    v1::NodeSpec* spec = c.mutable_register_node()->mutable_node();
    spec->set_name(name);
    for (auto& [k, v] : labels) (*spec->mutable_labels())[k] = v;
    return c;
  }
  static v1::Command External(const std::string& name, const std::string& pool, const std::string& selector = "") {
    v1::Command c;
    v1::ExternalAddressSpec* spec = c.mutable_create_external_address()->mutable_address();
    spec->set_name(name);
    spec->set_pool(pool);
    spec->set_node_selector(selector);
    return c;
  }
  static v1::Command NotReady(const std::string& name) {
    v1::Command c;
    c.mutable_mark_node_not_ready()->set_name(name);
    return c;
  }

  // Allocates a workload address through `node`, committed.
  void Pod(const std::string& owner, const std::string& node) {
    v1::AllocateRequest req;
    req.set_pool("pods");
    req.set_owner(owner);
    req.set_node(node);
    AllocationChangeSet set;
    auto allocated = allocations_.Allocate(req, stamp_, set);
    ASSERT_TRUE(allocated.ok()) << allocated.status();
    store_.Write(set, *allocated);
    allocations_.CommitToPools(set);
    stamp_.revision = set.revision;
  }
  static v1::Command DeleteNode(const std::string& name, const std::string& reason) {
    v1::Command c;
    c.mutable_delete_node()->set_node(name);
    c.mutable_delete_node()->set_reason(reason);
    return c;
  }

  Pools pools_;
  FakeAllocationStore store_;
  AllocationCommands allocations_;
  NodeModel model_;
  NodeCommands commands_;
  NodeChangeSet changes_;
  Stamp stamp_{100, 5000};
  std::map<int, std::map<std::string, std::string>> rows_;  // table -> name -> record
};

TEST_F(NodeCommandsTest, RegisterProposesTheNodeRowAndChangesTheModelOnlyOnCommit) {
  auto out = Propose(Register("n1", {{"zone", "a"}}));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(out->node().ready());
  EXPECT_EQ(out->node().revision(), 101u);
  EXPECT_EQ(out->node().ready_change_time_unix_ms(), 5000);
  ASSERT_EQ(changes_.rows.size(), 1u);
  EXPECT_EQ(changes_.rows[0].table, NodeTable::kNodes);
  EXPECT_EQ(changes_.rows[0].name, "n1");
  EXPECT_FALSE(changes_.has_allocations);
  EXPECT_EQ(changes_.revision, 101u);
  EXPECT_TRUE(model_.nodes().empty());  // proposing changed nothing

  ASSERT_TRUE(Run(Register("n1", {{"zone", "a"}})).ok());
  ASSERT_EQ(model_.nodes().count("n1"), 1u);
  EXPECT_TRUE(model_.nodes().at("n1")->ready());

  // A reconnect of a ready node with the same spec proposes nothing.
  auto again = Propose(Register("n1", {{"zone", "a"}}));
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(changes_.rows.empty());
  EXPECT_EQ(changes_.revision, stamp_.revision);
}

TEST_F(NodeCommandsTest, CreateExternalAllocatesInTheExternalPoolAndPlacesOnAnEligibleNode) {
  ASSERT_TRUE(Run(Register("n1", {{"zone", "a"}})).ok());
  ASSERT_TRUE(Run(Register("n2", {{"zone", "b"}})).ok());
  auto out = Propose(External("web", "ext", "zone=b"));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->external_address().address(), "192.0.2.1");
  EXPECT_EQ(out->external_address().node(), "n2");
  ASSERT_TRUE(changes_.has_allocations);
  ASSERT_EQ(changes_.allocations.inserts.size(), 1u);
  EXPECT_EQ(changes_.allocations.inserts[0].request->owner(), "abode:external/web");
  EXPECT_EQ(pools_.Find("ext")->used, 0u);  // not committed yet
  EXPECT_EQ(store_.size(), 0u);
  EXPECT_TRUE(model_.externals().empty());

  ASSERT_TRUE(Run(External("web", "ext", "zone=b")).ok());
  EXPECT_EQ(store_.size(), 1u);
  EXPECT_EQ(pools_.Find("ext")->used, 1u);
  ASSERT_EQ(model_.externals().count("web"), 1u);
  EXPECT_EQ(model_.externals().at("web")->node(), "n2");
  EXPECT_EQ(rows_[static_cast<int>(NodeTable::kExternals)].count("web"), 1u);
}

TEST_F(NodeCommandsTest, CreateExternalRefusesAWorkloadPoolAndAnUnknownPoolWithoutChanges) {
  auto workload = Propose(External("web", "pods"));
  EXPECT_EQ(workload.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(workload.status().message(), HasSubstr("address.pool"));
  auto missing = Propose(External("web", "nope"));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(changes_.rows.empty());
  EXPECT_FALSE(changes_.has_allocations);
}

TEST_F(NodeCommandsTest, LosingTheServingNodeMovesTheExternalAddress) {
  ASSERT_TRUE(Run(Register("n1")).ok());
  ASSERT_TRUE(Run(External("web", "ext")).ok());
  ASSERT_EQ(model_.externals().at("web")->node(), "n1");
  ASSERT_TRUE(Run(Register("n2")).ok());
  EXPECT_EQ(model_.externals().at("web")->node(), "n1");  // a claim stays while its node is ready

  auto out = Run(NotReady("n1"));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_FALSE(out->node().ready());
  EXPECT_EQ(model_.externals().at("web")->node(), "n2");
  EXPECT_EQ(changes_.rows.size(), 2u);  // the node and the moved external

  EXPECT_EQ(Propose(NotReady("ghost")).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(NodeCommandsTest, DeleteExternalReleasesItsAddressAndForgetsIt) {
  ASSERT_TRUE(Run(External("web", "ext")).ok());
  v1::Command del;
  del.mutable_delete_external_address()->set_name("web");
  auto out = Propose(del);
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(changes_.allocations.removals.size(), 1u);
  EXPECT_EQ(changes_.allocations.removals[0].allocation.owner(), "abode:external/web");
  ASSERT_EQ(changes_.rows.size(), 1u);
  EXPECT_EQ(changes_.rows[0].record, nullptr);
  EXPECT_EQ(model_.externals().count("web"), 1u);

  ASSERT_TRUE(Run(del).ok());
  EXPECT_EQ(model_.externals().count("web"), 0u);
  EXPECT_EQ(store_.size(), 0u);
  EXPECT_EQ(pools_.Find("ext")->used, 0u);
  EXPECT_EQ(Propose(del).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(NodeCommandsTest, MagicAddressInsideAPoolIsRefused) {
  AddPool("ll", "169.254.0.0/24", v1::POOL_PURPOSE_UNSPECIFIED);
  v1::Command c;
  v1::MagicAddressSpec* spec = c.mutable_create_magic_address()->mutable_address();
  spec->set_name("meta");
  spec->set_address("169.254.0.9");
  spec->set_label_selector("app=web");
  v1::PortMapping* port = spec->add_ports();
  port->set_protocol(v1::PROTOCOL_TCP);
  port->set_port(80);
  port->set_target_port(8080);
  auto out = Propose(c);
  EXPECT_EQ(out.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(out.status().message(), HasSubstr("collides with pool \"ll\""));
  EXPECT_TRUE(model_.magics().empty());
}

TEST_F(NodeCommandsTest, AssociateResolvesTheOwnerAmongStoredWorkloadAllocations) {
  ASSERT_TRUE(Run(Register("n1")).ok());
  v1::CreateElasticAddressRequest create;
  create.mutable_address()->set_name("eip");
  create.mutable_address()->set_pool("ext");
  v1::Command ce;
  *ce.mutable_create_elastic_address() = create;
  ASSERT_TRUE(Run(ce).ok());

  v1::AllocateRequest pod;
  pod.set_pool("pods");
  pod.set_owner("pod-a");
  pod.set_node("n1");
  AllocationChangeSet set;
  auto allocated = allocations_.Allocate(pod, stamp_, set);
  ASSERT_TRUE(allocated.ok());
  store_.Write(set, *allocated);
  allocations_.CommitToPools(set);
  stamp_.revision = set.revision;

  v1::Command assoc;
  assoc.mutable_associate_elastic_address()->set_name("eip");
  assoc.mutable_associate_elastic_address()->mutable_association()->set_owner("pod-a");
  auto out = Run(assoc);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->elastic_address().workload_owner(), "pod-a");
  EXPECT_EQ(out->elastic_address().workload_address(), "10.0.0.1");
  EXPECT_EQ(out->elastic_address().node(), "n1");

  assoc.mutable_associate_elastic_address()->mutable_association()->set_owner("pod-b");
  EXPECT_EQ(Propose(assoc).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(NodeCommandsTest, DeleteNodeReleasesItsAllocationsMovesItsExternalsAndForgetsIt) {
  ASSERT_TRUE(Run(Register("n1")).ok());
  ASSERT_TRUE(Run(Register("n2")).ok());
  ASSERT_TRUE(Run(External("web", "ext")).ok());
  ASSERT_EQ(model_.externals().at("web")->node(), "n1");
  Pod("pod-a", "n1");
  Pod("pod-b", "n1");
  Pod("pod-c", "n2");

  auto out = Propose(DeleteNode("n1", "hardware failure"));
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->delete_node().released_size(), 2);
  EXPECT_EQ(out->delete_node().released(0).owner(), "pod-a");
  EXPECT_EQ(out->delete_node().released(1).owner(), "pod-b");
  ASSERT_EQ(out->delete_node().moved_external_addresses_size(), 1);
  EXPECT_EQ(out->delete_node().moved_external_addresses(0), "web");
  ASSERT_EQ(changes_.allocations.removals.size(), 2u);
  EXPECT_EQ(changes_.allocations.removals[0].reason, "node n1 decommissioned: hardware failure");
  EXPECT_EQ(model_.nodes().count("n1"), 1u);  // nothing changed yet
  EXPECT_EQ(store_.size(), 4u);  // three pods and the external address

  ASSERT_TRUE(Run(DeleteNode("n1", "hardware failure")).ok());
  EXPECT_EQ(model_.nodes().count("n1"), 0u);
  EXPECT_EQ(model_.externals().at("web")->node(), "n2");
  EXPECT_EQ(store_.size(), 2u) << "n2's pod and the external address's own allocation stay";
  EXPECT_EQ(rows_[static_cast<int>(NodeTable::kNodes)].count("n1"), 0u);

  EXPECT_EQ(Propose(DeleteNode("n1", "")).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Propose(DeleteNode("", "")).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DecommissionReason("n3", ""), "node n3 decommissioned");
}

TEST_F(NodeCommandsTest, ReclaimReleasesOnlyWhileTheNodeIsStillLost) {
  ASSERT_TRUE(Run(Register("n1")).ok());
  Pod("pod-a", "n1");
  v1::Command reclaim;
  reclaim.mutable_reclaim_node_allocations()->set_node("n1");
  reclaim.mutable_reclaim_node_allocations()->set_reason("node n1 not ready for 600 s: reclaimed");

  // Ready: nothing to reclaim.
  reclaim.mutable_reclaim_node_allocations()->set_not_ready_since_unix_ms(stamp_.time_ms);
  auto ready = Run(reclaim);
  ASSERT_TRUE(ready.ok());
  EXPECT_EQ(ready->changed(), 0u);
  EXPECT_EQ(store_.size(), 1u);

  stamp_.time_ms += 1000;
  ASSERT_TRUE(Run(NotReady("n1")).ok());
  // Lost later than the proposer saw: nothing.
  reclaim.mutable_reclaim_node_allocations()->set_not_ready_since_unix_ms(stamp_.time_ms - 1);
  auto later = Run(reclaim);
  ASSERT_TRUE(later.ok());
  EXPECT_EQ(later->changed(), 0u);

  reclaim.mutable_reclaim_node_allocations()->set_not_ready_since_unix_ms(stamp_.time_ms);
  auto out = Propose(reclaim);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->changed(), 1u);
  ASSERT_EQ(changes_.allocations.removals.size(), 1u);
  EXPECT_EQ(changes_.allocations.removals[0].reason, "node n1 not ready for 600 s: reclaimed");
  ASSERT_TRUE(Run(reclaim).ok());
  EXPECT_EQ(store_.size(), 0u);
  EXPECT_EQ(model_.nodes().count("n1"), 1u) << "reclaim keeps the node";
}

}  // namespace
}  // namespace abode::domain

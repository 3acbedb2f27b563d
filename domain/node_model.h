// The node state in memory: nodes and the addresses they carry (external, elastic, magic), the workload
// allocations that selectors or elastic owners pick, and the assignments derived from all of them: which
// node must carry what. Pure: it never reads or writes the store. The node command handlers
// (node_commands.h) check a command and propose its rows; once they are written, the model changes here.
//
// Decisions that depend on history are stored in the objects (the node serving an external address, so that
// a recovered node never takes a claim back); everything else is derived on every replica: the target of an
// elastic association (the oldest matching workload allocation) and of a magic address on each node (the
// oldest local match, then the lowest address). Every change of a derived assignment becomes an
// AssignmentChange for the watch hub.
//
// Thread safety: not thread-safe; owned by the state machine's thread. The views it publishes are immutable.
#ifndef ABODE_DOMAIN_NODE_MODEL_H_
#define ABODE_DOMAIN_NODE_MODEL_H_

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "abode/v1/allocator.pb.h"
#include "abode/v1/nodes.pb.h"
#include "absl/strings/string_view.h"
#include "domain/address.h"
#include "domain/node_state_view.h"
#include "domain/pools.h"
#include "domain/validation.h"

namespace abode::domain {

// Serving nodes for every external address given these nodes: claims whose node is still ready and matching
// stay; the others go to the eligible node serving the fewest (then the lowest name). Returns the externals
// whose node changes, stamped with `revision`.
std::vector<v1::ExternalAddress> PlanPlacement(const Objects<v1::Node>& nodes,
                                               const Objects<v1::ExternalAddress>& externals, uint64_t revision);

// Deterministic serialization: equal messages give equal bytes on every replica.
std::string DeterministicBytes(const google::protobuf::Message& m);

class NodeModel {
 public:
  // `pools` tells workload pools from external ones; it outlives the model.
  explicit NodeModel(const Pools& pools) : pools_(pools) {}
  NodeModel(const NodeModel&) = delete;
  NodeModel& operator=(const NodeModel&) = delete;

  const Objects<v1::Node>& nodes() const { return nodes_; }
  const Objects<v1::ExternalAddress>& externals() const { return externals_; }
  const Objects<v1::ElasticAddress>& elastics() const { return elastics_; }
  const Objects<v1::MagicAddress>& magics() const { return magics_; }

  // Changes, made after the command's rows are written. Each marks what it makes stale.
  void SetNode(v1::Node node, std::vector<v1::ExternalAddress> moved);
  // Forgets a node; `moved` are the externals it served, placed elsewhere.
  void RemoveNode(absl::string_view name, std::vector<v1::ExternalAddress> moved);
  void SetExternals(Objects<v1::ExternalAddress> externals);
  void RemoveExternal(absl::string_view name);
  void AddElastic(v1::ElasticAddress elastic);
  // Sets an elastic address with its association's selector (empty for an owner or no association).
  void SetElastic(v1::ElasticAddress elastic, LabelSelector selector);
  void RemoveElastic(absl::string_view name);
  void AddMagic(v1::MagicAddress magic, LabelSelector selector);
  void RemoveMagic(absl::string_view name);

  // Workload tracking. An allocation is tracked when it is in a workload pool and some selector or elastic
  // owner could pick it.
  bool IsWorkloadPool(absl::string_view pool) const;
  bool Relevant(const v1::Allocation& a) const;
  bool Tracked(const v1::Allocation& a) const { return workloads_.count({a.pool(), a.owner()}) > 0; }
  void Track(const v1::Allocation& a);
  // Whether Replace left selectors or owners whose workloads must be found among the stored allocations.
  bool WantsWorkloads() const { return !selectors_.empty() || !elastic_owners_.empty(); }

  // An allocation the command added, removed or relabelled: tracks or untracks it. Returns the name of the external
  // (first) or elastic (second) address that held the removed allocation, if any: the object goes with its
  // address, and the caller removes it (row first, then RemoveExternal / RemoveElastic).
  struct Orphan {
    bool elastic = false;
    std::string name;
  };
  std::optional<Orphan> OnAllocationChange(const AllocationChange& change);
  // Re-derives what the command made stale; changed assignments become changes stamped with `revision`.
  void Recompute(absl::string_view traceparent, uint64_t revision);
  // Drops what a refused command marked for recomputation.
  void AbortCommand();

  // Replaces the objects (after a restore or on start). The caller then tracks the stored workloads
  // (WantsWorkloads, Relevant, Track) and calls Rederive.
  void Replace(Objects<v1::Node> nodes, Objects<v1::ExternalAddress> externals, Objects<v1::ElasticAddress> elastics,
               Objects<v1::MagicAddress> magics);
  // Derives every assignment from scratch; what differs from before becomes a change.
  void Rederive(uint64_t revision);

  // The current target of an elastic address, if any: the workload allocation it points at.
  struct Target {
    std::string owner, node, address;
  };
  std::optional<Target> ElasticTarget(const v1::ElasticAddress& e) const;
  // A magic address inside `cidr` (its name, and its address), if any: pools and magic addresses never share
  // an address.
  std::optional<std::pair<std::string, std::string>> MagicInside(const Prefix& cidr) const;

  NodeStateUpdate TakeUpdate(uint64_t revision);
  // Whether TakeUpdate has anything to hand on: changed assignments or objects.
  bool UpdatePending() const { return !changes_.empty() || view_dirty_; }

 private:
  // A tracked workload allocation.
  struct Workload {
    std::string pool, owner, node, address;
    IpAddress ip;
    uint64_t create_revision = 0;
    std::map<std::string, std::string> labels;
  };
  using WorkloadKey = std::pair<std::string, std::string>;  // (pool, owner)

  void Untrack(const WorkloadKey& key);
  void PruneTracked();
  void RebuildElasticOwners();
  void MarkWorkloadDirty(const Workload& w);
  const Workload* ElasticWorkload(const v1::ElasticAddress& e) const;
  std::optional<v1::Assignment> MagicFor(const v1::MagicAddress& m, const std::string& node) const;
  void SetAssignment(const std::string& node, const std::string& id, std::optional<v1::Assignment> want,
                     absl::string_view traceparent, uint64_t revision);
  void RecomputeClaims(absl::string_view traceparent, uint64_t revision);

  const Pools& pools_;
  Objects<v1::Node> nodes_;
  Objects<v1::ExternalAddress> externals_;
  Objects<v1::ElasticAddress> elastics_;  // derived workload fields kept up to date
  Objects<v1::MagicAddress> magics_;
  std::map<std::string, LabelSelector, std::less<>> selectors_;  // "magic/<n>" / "elastic/<n>" -> selector
  std::set<std::string, std::less<>> elastic_owners_;           // owners named by elastic associations

  std::map<WorkloadKey, Workload> workloads_;
  std::map<std::string, std::set<WorkloadKey>, std::less<>> workloads_by_node_;

  // node -> id -> assignment
  std::map<std::string, std::map<std::string, v1::Assignment>, std::less<>> assignments_;
  std::map<std::string, std::string, std::less<>> claim_node_;  // external/elastic id -> node carrying it

  // What the current command made stale.
  bool dirty_claims_ = false;
  std::set<std::string> dirty_magics_;                               // on every node
  std::set<std::pair<std::string, std::string>> dirty_magic_nodes_;  // (magic, node)
  std::set<std::string> dirty_nodes_;                                // every magic on these nodes

  std::vector<v1::AssignmentChange> changes_;
  bool view_dirty_ = true;
};

}  // namespace abode::domain

#endif  // ABODE_DOMAIN_NODE_MODEL_H_

// The node commands (register, not-ready, external, elastic and magic addresses) as pure code: each handler
// checks the command (node_specs.h), proposes the allocation it needs through the allocation commands, and
// returns the command's answer with a NodeChangeSet, without making any change. The engine (storage/)
// writes the change set's rows and allocation changes in the command's part of the batch transaction and,
// only once they are written, commits them to memory: the allocations first, then CommitToModel here.
//
// The handlers read stored allocations through AllocationScan (allocation_reader.h), which the engine
// implements.
//
// Not thread-safe: the engine calls it from the thread that applies commands.
#ifndef ABODE_DOMAIN_NODE_COMMANDS_H_
#define ABODE_DOMAIN_NODE_COMMANDS_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "abode/v1/commands.pb.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "domain/allocation_commands.h"
#include "domain/node_model.h"
#include "domain/pools.h"

namespace abode::domain {

// The stored kinds of node-state object, one table each.
enum class NodeTable { kNodes = 0, kExternals = 1, kElastics = 2, kMagics = 3 };
inline constexpr int kNodeTableCount = 4;

// The objects as stored, by kind.
struct NodeObjects {
  Objects<v1::Node> nodes;
  Objects<v1::ExternalAddress> externals;
  Objects<v1::ElasticAddress> elastics;
  Objects<v1::MagicAddress> magics;
};

// The changes of one node command.
struct NodeChangeSet {
  // A row to write (`record` set) or to delete (`record` null).
  struct Row {
    NodeTable table = NodeTable::kNodes;
    std::string name;
    std::shared_ptr<const google::protobuf::Message> record;
  };
  std::vector<Row> rows;
  // The allocation changes the command proposes, committed like an allocation command's with
  // `allocation_result` as that command's answer. `allocate_request` is what `allocations` inserts.
  bool has_allocations = false;
  AllocationChangeSet allocations;
  v1::AllocateRequest allocate_request;
  v1::CommandResult allocation_result;
  // The model change, made once everything above is written.
  std::function<void(NodeModel&)> model_change;
  // After the model change: track the stored workloads (of this owner; all when empty) the model now needs.
  std::optional<std::string> track_workloads;
  // After tracking: fill the answer's elastic address with its derived target.
  bool derive_elastic_target = false;
  uint64_t revision = 0;  // the global revision once the changes are made

  void Clear(uint64_t start_revision) {
    rows.clear();
    has_allocations = false;
    allocations.Clear(start_revision);
    model_change = nullptr;
    track_workloads.reset();
    derive_elastic_target = false;
    revision = start_revision;
  }
};

// The history reason of the allocations a decommissioned node held.
std::string DecommissionReason(absl::string_view node, absl::string_view reason);

class NodeCommands {
 public:
  // Every argument outlives this.
  NodeCommands(NodeModel& model, const Pools& pools, AllocationCommands& allocations, AllocationScan& scan)
      : model_(model), pools_(pools), allocations_(allocations), scan_(scan) {}
  NodeCommands(const NodeCommands&) = delete;
  NodeCommands& operator=(const NodeCommands&) = delete;

  static bool Handles(const v1::Command& command);
  // Clears `out` to start at `stamp` and, on success, fills it with the command's changes.
  CommandOutcome Apply(const v1::Command& command, const Stamp& stamp, NodeChangeSet& out);
  // Commits a written change set to the model (after its allocations went to the pools); completes `result`.
  absl::Status CommitToModel(NodeChangeSet& changes, v1::CommandResult& result);

  // Once any command succeeded, with the allocations it added and removed: the objects whose address went
  // go too. Fills `out` (cleared to `revision`) with their row deletions and removal from the model.
  void FollowAllocations(const std::vector<AllocationChange>& changes, uint64_t revision, NodeChangeSet& out);

  // Replaces the model with stored objects (on start, after a restore), tracks the workloads it needs and
  // derives the assignments; differences become changes at `revision`.
  absl::Status Reload(NodeObjects objects, uint64_t revision);

 private:
  // What creating an external or elastic address starts with: the object to store, or the one already
  // stored when a create is retried with the same spec (`existing`).
  template <typename Object>
  struct NewAddress {
    Object object;
    bool existing = false;
  };

  CommandOutcome RegisterNode(const v1::RegisterNode& req, const Stamp& stamp, NodeChangeSet& out);
  CommandOutcome MarkNodeNotReady(const v1::MarkNodeNotReady& req, const Stamp& stamp, NodeChangeSet& out);
  CommandOutcome SetNodeLabels(const v1::SetNodeLabelsRequest& req, NodeChangeSet& out);
  CommandOutcome DeleteNode(const v1::DeleteNodeRequest& req, const Stamp& stamp, NodeChangeSet& out);
  CommandOutcome ReclaimNodeAllocations(const v1::ReclaimNodeAllocations& req, const Stamp& stamp,
                                        NodeChangeSet& out);
  // Proposes the end of every allocation made through `node`, for `reason`; returns them.
  absl::StatusOr<StoredAllocations> ReleaseOnNode(const std::string& node, std::string reason, const Stamp& stamp,
                                                  NodeChangeSet& out);
  CommandOutcome CreateExternal(const v1::CreateExternalAddressRequest& req, const Stamp& stamp, NodeChangeSet& out);
  CommandOutcome CreateElastic(const v1::CreateElasticAddressRequest& req, const Stamp& stamp, NodeChangeSet& out);
  CommandOutcome Associate(const v1::AssociateElasticAddressRequest& req, NodeChangeSet& out);
  CommandOutcome Disassociate(const v1::DisassociateElasticAddressRequest& req, NodeChangeSet& out);
  CommandOutcome CreateMagic(const v1::CreateMagicAddressRequest& req, const Stamp& stamp, NodeChangeSet& out);
  CommandOutcome DeleteMagic(const v1::DeleteMagicAddressRequest& req, NodeChangeSet& out);

  // Stores a node with its new state and the externals whose serving node that changes.
  CommandOutcome StoreNode(v1::Node node, NodeChangeSet& out);
  // Proposes the allocation of an external or elastic address in an external pool.
  absl::StatusOr<v1::Allocation> AllocateExternal(const std::string& owner, const std::string& pool,
                                                  const std::string& address, const Stamp& stamp,
                                                  NodeChangeSet& out);
  // The steps external and elastic addresses share: check the spec (`check` runs after the name and pool
  // checks), answer a retried create with the stored object, refuse another spec under the same name, and
  // hold the address as an allocation of `owner_prefix` + name in the spec's external pool.
  template <typename Object>
  absl::StatusOr<NewAddress<Object>> PrepareAddress(const decltype(Object().spec())& spec,
                                                    const Objects<Object>& stored, absl::string_view kind,
                                                    absl::string_view owner_prefix,
                                                    const std::function<absl::Status()>& check, const Stamp& stamp,
                                                    NodeChangeSet& out);
  // The steps deleting an external or elastic address share: delete its row, release its address, then
  // forget it.
  template <typename Object>
  CommandOutcome DeleteAddress(const Objects<Object>& stored, const std::string& name, NodeTable table,
                               const Stamp& stamp, NodeChangeSet& out);
  // Tracks the stored workload allocations (only those of `only_owner`, if not empty) the model finds relevant.
  absl::Status TrackWorkloads(const std::string& only_owner);

  NodeModel& model_;
  const Pools& pools_;
  AllocationCommands& allocations_;
  AllocationScan& scan_;
};

}  // namespace abode::domain

#endif  // ABODE_DOMAIN_NODE_COMMANDS_H_

// The node commands (nodes, external, elastic and magic addresses) over SQLite. Each handler checks the
// command (domain/node_specs.h), allocates or releases through Allocations, writes its rows in the
// command's savepoint, and only then changes the node model (domain/node_model.h), which derives the
// assignments.
//
// Thread safety: not thread-safe; owned by the state machine (the raft loop thread).
#ifndef ABODE_STORAGE_NODE_COMMANDS_H_
#define ABODE_STORAGE_NODE_COMMANDS_H_

#include <functional>
#include <memory>
#include <string>

#include "abode/v1/commands.pb.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "domain/node_model.h"
#include "domain/pools.h"
#include "storage/allocations.h"
#include "storage/sqlite.h"

namespace abode::storage {

class NodeCommands {
 public:
  // Every argument outlives this.
  NodeCommands(Database& db, domain::Stamp& stamp, Allocations& allocations, domain::NodeModel& model);
  NodeCommands(const NodeCommands&) = delete;
  NodeCommands& operator=(const NodeCommands&) = delete;
  ~NodeCommands();

  absl::Status PrepareStatements();
  // Rebuilds the model from the stored rows (on start, after a restore); assignment differences become
  // changes.
  absl::Status Load();

  static bool Handles(const v1::Command& command);
  // Applies one node command inside the command's savepoint; appends the allocations it adds or removes.
  CommandOutcome Apply(const v1::Command& command, AllocationChanges& changes);
  // Once a command succeeded (a node command or a pool one), with the allocations it added and removed:
  // removes the objects whose address went, and re-derives the assignments.
  absl::Status AfterCommand(const AllocationChanges& changes, absl::string_view traceparent);
  // A store failure after memory changed: the whole batch must be rolled back and reloaded.
  absl::Status TakeStoreFailure();

 private:
  struct Statements;
  // What creating an external or elastic address starts with: the object to store, or the one already
  // stored when a create is retried with the same spec (`existing`).
  template <typename Object>
  struct NewAddress {
    Object object;
    bool existing = false;
  };

  CommandOutcome RegisterNode(const v1::RegisterNode& req);
  CommandOutcome MarkNodeNotReady(const v1::MarkNodeNotReady& req);
  CommandOutcome SetNodeLabels(const v1::SetNodeLabelsRequest& req);
  CommandOutcome CreateExternal(const v1::CreateExternalAddressRequest& req, AllocationChanges& changes);
  CommandOutcome DeleteExternal(const v1::DeleteExternalAddressRequest& req, AllocationChanges& changes);
  CommandOutcome CreateElastic(const v1::CreateElasticAddressRequest& req, AllocationChanges& changes);
  CommandOutcome DeleteElastic(const v1::DeleteElasticAddressRequest& req, AllocationChanges& changes);
  CommandOutcome Associate(const v1::AssociateElasticAddressRequest& req);
  CommandOutcome Disassociate(const v1::DisassociateElasticAddressRequest& req);
  CommandOutcome CreateMagic(const v1::CreateMagicAddressRequest& req);
  CommandOutcome DeleteMagic(const v1::DeleteMagicAddressRequest& req);

  // Stores a node with its new state and the externals whose serving node that changes.
  CommandOutcome StoreNode(v1::Node node);
  // Allocates the address of an external or elastic address in an external pool.
  absl::StatusOr<v1::Allocation> AllocateExternal(const std::string& owner, const std::string& pool,
                                                  const std::string& address, AllocationChanges& changes);
  // The steps external and elastic addresses share: check the spec (`check` runs after the name and pool
  // checks), answer a retried create with the stored object, refuse another spec under the same name, and
  // hold the address as an allocation of `owner_prefix` + name in the spec's external pool.
  template <typename Object>
  absl::StatusOr<NewAddress<Object>> PrepareAddress(const decltype(Object().spec())& spec,
                                                    const domain::Objects<Object>& stored, absl::string_view kind,
                                                    absl::string_view owner_prefix,
                                                    const std::function<absl::Status()>& check,
                                                    AllocationChanges& changes);
  // The steps deleting an external or elastic address (in `table`) share: remove its row, release its
  // address, then forget it.
  template <typename Object>
  CommandOutcome DeleteAddress(const domain::Objects<Object>& stored, const std::string& name, int table,
                               AllocationChanges& changes);
  // Releases the address an external or elastic address held.
  absl::Status ReleaseOwner(const std::string& owner, const std::string& pool, AllocationChanges& changes);
  // Tracks the stored workload allocations (only those of `only_owner`, if set) the model finds relevant.
  absl::Status TrackWorkloads(const std::string& only_owner);
  absl::Status ForEachAllocation(const std::string& only_owner, absl::FunctionRef<void(v1::Allocation)> visit);
  absl::Status WriteRow(int table, const std::string& name, const google::protobuf::Message& row);
  absl::Status DeleteRow(int table, const std::string& name);
  absl::Status Store(absl::Status s);  // records a store failure

  Database& db_;
  domain::Stamp& stamp_;
  Allocations& allocations_;
  domain::NodeModel& model_;
  std::unique_ptr<Statements> stmts_;
  absl::Status store_failure_;
};

}  // namespace abode::storage

#endif  // ABODE_STORAGE_NODE_COMMANDS_H_

// The node commands over SQLite: the engine of domain/node_commands.h. The domain's handler checks a node
// command and returns its changes; NodeStore writes the change set's rows and allocation changes in the
// command's savepoint and, only once every write succeeded, commits them to memory (the allocations through
// Allocations, then the node model), so that a command refused anywhere leaves memory untouched.
//
// Thread safety: not thread-safe; owned by the state machine (the raft loop thread).
#ifndef ABODE_STORAGE_NODE_STORE_H_
#define ABODE_STORAGE_NODE_STORE_H_

#include <memory>
#include <utility>

#include "abode/v1/commands.pb.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "domain/node_commands.h"
#include "domain/node_model.h"
#include "storage/allocations.h"
#include "storage/sqlite.h"

namespace abode::storage {

class NodeStore final : private domain::AllocationScan {
 public:
  // Every argument outlives this.
  NodeStore(Database& db, domain::Stamp& stamp, Allocations& allocations, domain::NodeModel& model);
  NodeStore(const NodeStore&) = delete;
  NodeStore& operator=(const NodeStore&) = delete;
  ~NodeStore() override;

  absl::Status PrepareStatements();
  // Rebuilds the model from the stored rows (on start, after a restore); assignment differences become
  // changes.
  absl::Status Load();

  static bool Handles(const v1::Command& command) { return domain::NodeCommands::Handles(command); }
  // Applies one node command inside the command's savepoint; appends the allocations it adds or removes.
  CommandOutcome Apply(const v1::Command& command, AllocationChanges& changes);
  // Once a command succeeded (a node command or a pool one), with the allocations it added and removed:
  // removes the objects whose address went, and re-derives the assignments.
  absl::Status AfterCommand(const AllocationChanges& changes, absl::string_view traceparent);
  // A failure after memory changed: the whole batch must be rolled back and reloaded.
  absl::Status TakeStoreFailure() { return std::exchange(store_failure_, absl::OkStatus()); }

 private:
  struct Statements;

  // domain::AllocationScan
  absl::Status ForEach(absl::string_view owner, absl::FunctionRef<void(v1::Allocation)> visit) override;

  // Writes the change set's rows.
  absl::Status WriteRows(const domain::NodeChangeSet& changes);

  Database& db_;
  domain::Stamp& stamp_;
  Allocations& allocations_;
  domain::NodeModel& model_;
  domain::NodeCommands commands_;
  domain::NodeChangeSet changes_;  // of the command being applied
  std::unique_ptr<Statements> stmts_;
  absl::Status store_failure_;
};

}  // namespace abode::storage

#endif  // ABODE_STORAGE_NODE_STORE_H_

// The replicated state of nodes and of the addresses they carry (external, elastic, magic), and the
// assignments derived from it: which node must carry what. Part of the deterministic state machine: the
// StateMachine dispatches the node commands here and reports every allocation change, and NodeState keeps
// its rows in the same SQLite transaction, under the same rule (check, write SQLite, then change memory).
//
// Decisions that depend on history are stored (the node serving an external address, so that a recovered
// node never takes a claim back); everything else is derived from stored state on every replica: the target
// of an elastic association (the oldest matching workload allocation) and of a magic address on each node
// (the oldest local match, then the lowest address). Derived assignments are kept per node and every change
// becomes an AssignmentChange for the watch hub.
//
// Thread safety: not thread-safe; owned by the StateMachine (the raft loop thread). Views it publishes are
// immutable and may be read from any thread.
#ifndef ABODE_STORAGE_NODE_STATE_H_
#define ABODE_STORAGE_NODE_STATE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "abode/v1/commands.pb.h"
#include "abode/v1/nodes.pb.h"
#include "abode/v1/snapshot.pb.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/io/coded_stream.h"
#include "storage/address.h"
#include "storage/sqlite.h"
#include "storage/validation.h"

namespace abode::storage {

// What NodeState needs from the core state machine while a command is applied.
class NodeStateHost {
 public:
  virtual ~NodeStateHost() = default;
  virtual uint64_t NextRevision() = 0;  // bumps the global revision and returns it
  virtual uint64_t CurrentRevision() const = 0;
  virtual int64_t NowMs() const = 0;  // the batch time
  // Allocate / release in a pool, exactly as the Allocate and Release commands do (same checks and errors).
  virtual absl::StatusOr<v1::Allocation> AllocateAddress(const v1::AllocateRequest& req) = 0;
  virtual absl::Status ReleaseOwner(const std::string& owner, const std::string& pool) = 0;
  virtual const v1::PoolSpec* FindPool(absl::string_view name) const = 0;
  // A pool (any network) whose CIDR contains the address; empty if none.
  virtual std::string PoolContaining(const IpAddress& address) const = 0;
  // The allocations `owner` holds, in every pool.
  virtual absl::StatusOr<std::vector<v1::Allocation>> OwnerAllocations(absl::string_view owner) = 0;
};

// One allocation added or removed by a command, as seen by NodeState.
struct AllocationChange {
  v1::Allocation allocation;
  bool added = false;
};

// An immutable copy of the node-state objects for readers (the gRPC layer), published after each batch that
// changed them. Objects are shared with the state machine's memory (copy-on-write), so publishing is cheap.
struct NodeStateView {
  uint64_t revision = 0;
  std::map<std::string, std::shared_ptr<const v1::Node>, std::less<>> nodes;
  std::map<std::string, std::shared_ptr<const v1::ExternalAddress>, std::less<>> externals;
  std::map<std::string, std::shared_ptr<const v1::ElasticAddress>, std::less<>> elastics;  // with targets
  std::map<std::string, std::shared_ptr<const v1::MagicAddress>, std::less<>> magics;
};

// What one applied batch changed, for the watch hub.
struct NodeStateUpdate {
  uint64_t revision = 0;
  std::vector<v1::AssignmentChange> changes;   // in apply order
  std::shared_ptr<const NodeStateView> view;   // null when the objects did not change
};

// Receives every NodeStateUpdate, on the thread that applies batches. Must not block.
class NodeStateSink {
 public:
  virtual ~NodeStateSink() = default;
  virtual void Publish(NodeStateUpdate update) = 0;
};

class NodeState {
 public:
  NodeState(Database& db, NodeStateHost& host);
  NodeState(const NodeState&) = delete;
  NodeState& operator=(const NodeState&) = delete;
  ~NodeState();

  absl::Status PrepareStatements();
  // Rebuilds memory from the stored rows (after a restore); assignment differences become changes.
  absl::Status Load();

  static bool Handles(const v1::Command& command);
  // Applies one node command inside the command's savepoint.
  absl::StatusOr<v1::CommandResult> Apply(const v1::Command& command);
  // Called once a command succeeded (its own or a core one), with the allocations it added and removed:
  // reacts (a claim whose address was released goes away) and recomputes the assignments that changed.
  absl::Status AfterCommand(const std::vector<AllocationChange>& changes, absl::string_view traceparent);
  // Drops what a refused command marked for recomputation.
  void AbortCommand();
  // A store failure after the core's memory changed: the whole batch must be rolled back and reloaded.
  absl::Status TakeStoreFailure();

  NodeStateUpdate TakeUpdate();

  // A magic address inside `cidr` (its name, and its address), if any: pools and magic addresses never
  // share an address.
  std::optional<std::pair<std::string, std::string>> MagicInside(const Prefix& cidr) const;

  // Snapshot support (see snapshot.cc): rows in name order, and the records they come back from.
  static absl::Status DumpRecords(Database& db, google::protobuf::io::CodedOutputStream& out,
                                  v1::SnapshotTrailer* counts);
  // Returns true when the record was one of the node-state kinds (and was stored).
  static absl::StatusOr<bool> LoadRecord(Database& db, const v1::SnapshotRecord& record, v1::SnapshotTrailer* seen);
  static bool CountsMatch(const v1::SnapshotTrailer& want, const v1::SnapshotTrailer& seen);
  static constexpr const char* kTables[4] = {"nodes", "external_addresses", "elastic_addresses", "magic_addresses"};

 private:
  struct Statements;
  // A tracked workload allocation: one that some selector or elastic owner could pick.
  struct Workload {
    std::string pool, owner, node, address;
    IpAddress ip;
    uint64_t create_revision = 0;
    std::map<std::string, std::string> labels;
  };
  using WorkloadKey = std::pair<std::string, std::string>;  // (pool, owner)
  template <typename T>
  using Objects = std::map<std::string, std::shared_ptr<const T>, std::less<>>;

  absl::StatusOr<v1::CommandResult> RegisterNode(const v1::RegisterNode& req);
  absl::StatusOr<v1::CommandResult> MarkNodeNotReady(const v1::MarkNodeNotReady& req);
  absl::StatusOr<v1::CommandResult> CreateExternal(const v1::CreateExternalAddressRequest& req);
  absl::StatusOr<v1::CommandResult> DeleteExternal(const v1::DeleteExternalAddressRequest& req);
  absl::StatusOr<v1::CommandResult> CreateElastic(const v1::CreateElasticAddressRequest& req);
  absl::StatusOr<v1::CommandResult> DeleteElastic(const v1::DeleteElasticAddressRequest& req);
  absl::StatusOr<v1::CommandResult> Associate(const v1::AssociateElasticAddressRequest& req);
  absl::StatusOr<v1::CommandResult> Disassociate(const v1::DisassociateElasticAddressRequest& req);
  absl::StatusOr<v1::CommandResult> CreateMagic(const v1::CreateMagicAddressRequest& req);
  absl::StatusOr<v1::CommandResult> DeleteMagic(const v1::DeleteMagicAddressRequest& req);

  // Allocates the address of an external or elastic address in an external pool.
  absl::StatusOr<v1::Allocation> AllocateExternal(const std::string& owner, const std::string& pool,
                                                  const std::string& address, absl::string_view field);
  // What creating an external or elastic address starts with: the object to store, or the one already
  // stored when a create is retried with the same spec (`existing`).
  template <typename Object>
  struct NewAddress {
    Object object;
    bool existing = false;
  };
  // The steps external and elastic addresses share: check the spec (`check` runs after the name and pool
  // checks), answer a retried create with the stored object, refuse another spec under the same name, and
  // hold the address as an allocation of `owner_prefix` + name in the spec's external pool.
  template <typename Object>
  absl::StatusOr<NewAddress<Object>> PrepareAddress(const decltype(Object().spec())& spec,
                                                    const Objects<Object>& stored, absl::string_view kind,
                                                    absl::string_view owner_prefix,
                                                    const std::function<absl::Status()>& check);
  // Serving nodes for every external address given these nodes: claims whose node is still ready and
  // matching stay; the others go to the eligible node serving the fewest (then the lowest name).
  std::vector<v1::ExternalAddress> PlanPlacement(const Objects<v1::Node>& nodes,
                                                 const Objects<v1::ExternalAddress>& externals) const;
  absl::Status WriteRow(int table, const std::string& name, const google::protobuf::Message& row);
  absl::Status DeleteRow(int table, const std::string& name);
  absl::Status Store(absl::Status s);  // records a store failure

  // Tracking of workload allocations.
  bool Relevant(const v1::Allocation& a) const;
  void Track(const v1::Allocation& a);
  void Untrack(const WorkloadKey& key);
  void PruneTracked();
  // Tracks every stored workload allocation that is relevant now (after a selector or owner was added).
  absl::Status ScanAllocations(const std::string& only_owner);
  // Visits the stored allocations (only those of `only_owner`, if set), with their pool names.
  absl::Status ForEachAllocation(const std::string& only_owner, absl::FunctionRef<void(v1::Allocation)> visit);
  bool IsWorkloadPool(const std::string& pool) const;
  void MarkWorkloadDirty(const Workload& w);

  // Derivation.
  const Workload* ElasticTarget(const v1::ElasticAddress& e) const;
  std::optional<v1::Assignment> MagicFor(const v1::MagicAddress& m, const std::string& node) const;
  void Recompute(absl::string_view traceparent);
  void SetAssignment(const std::string& node, const std::string& id, std::optional<v1::Assignment> want,
                     absl::string_view traceparent, bool emit);
  void RecomputeAll(absl::string_view traceparent, bool emit);

  Database& db_;
  NodeStateHost& host_;
  std::unique_ptr<Statements> stmts_;
  absl::Status store_failure_;

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
  std::set<std::string> dirty_magics_;                            // on every node
  std::set<std::pair<std::string, std::string>> dirty_magic_nodes_;  // (magic, node)
  std::set<std::string> dirty_nodes_;                             // every magic on these nodes

  std::vector<v1::AssignmentChange> changes_;
  bool view_dirty_ = true;
};

}  // namespace abode::storage

#endif  // ABODE_STORAGE_NODE_STATE_H_

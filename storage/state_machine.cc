#include "storage/state_machine.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "google/protobuf/unknown_field_set.h"
#include "storage/allocations.h"
#include "storage/node_store.h"
#include "storage/schema.h"
#include "storage/snapshot.h"
#include "storage/wal_batching_vfs.h"
#include "storage/wal_checkpointer.h"

namespace abode::storage {

uint32_t SchemaVersion() { return kSchemaVersion; }

struct StateMachine::Statements {
  Statement begin, commit, rollback, savepoint, release_sp, rollback_sp;
  Statement set_meta;
};

StateMachine::StateMachine(StateMachineOptions options, Database db)
    : options_(std::move(options)),
      db_(std::move(db)),
      owners_(options_.owner_index ? options_.owner_index : std::make_shared<OwnerIndex>()),
      allocations_(std::make_unique<Allocations>(
          db_, stamp_, *owners_, AllocationLimits{options_.max_ttl_seconds, options_.max_expire_per_command})),
      nodes_(allocations_->pools()),
      node_store_(std::make_unique<NodeStore>(db_, stamp_, *allocations_, nodes_)) {}

StateMachine::~StateMachine() = default;

namespace {

// The schema version of an existing database file, or 0 if there is none or it cannot be read.
int64_t ExistingSchemaVersion(const std::string& path) {
  if (::access(path.c_str(), F_OK) != 0) return 0;
  auto db = Database::Open(path, /*read_only=*/false);
  if (!db.ok()) return 0;
  int64_t version = 0;
  absl::Status s = db->ForEachRow("PRAGMA user_version", [&](const Statement& row) {
    version = row.Int(0);
    return absl::OkStatus();
  });
  return s.ok() ? version : 0;
}

}  // namespace

absl::StatusOr<std::unique_ptr<StateMachine>> StateMachine::Open(const StateMachineOptions& options) {
  const bool reuse = options.reuse_existing && ExistingSchemaVersion(options.db_path) == kSchemaVersion;
  if (!reuse) {
    for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
      const std::string p = options.db_path + suffix;
      if (::unlink(p.c_str()) != 0 && errno != ENOENT) {
        return absl::InternalError(absl::StrCat("remove ", p, ": ", strerror(errno)));
      }
    }
  }
  // The writer commits through the WAL-batching VFS: one write per commit (see wal_batching_vfs.h).
  auto db = Database::Open(options.db_path, /*read_only=*/false, WalBatchingVfsName());
  if (!db.ok()) return db.status();
  if (absl::Status s = db->Exec(kWriterPragmas); !s.ok()) return s;
  if (!reuse) {
    if (absl::Status s = db->Exec(kSchema); !s.ok()) return s;
    if (absl::Status s = db->Exec(absl::StrCat("PRAGMA user_version = ", kSchemaVersion)); !s.ok()) return s;
  }
  std::unique_ptr<StateMachine> sm(new StateMachine(options, std::move(*db)));
  if (absl::Status s = sm->PrepareStatements(); !s.ok()) return s;
  if (reuse) {
    absl::MutexLock lock(&sm->owners_->mutex());
    if (absl::Status s = sm->LoadFromDatabase(); !s.ok()) return s;
  }
  if (absl::Status s = sm->StartCheckpointer(); !s.ok()) return s;
  return sm;
}

absl::Status StateMachine::StartCheckpointer() {
  auto c = WalCheckpointer::Start(db_, options_.db_path);
  if (!c.ok()) return c.status();
  checkpointer_ = std::move(*c);
  return absl::OkStatus();
}

absl::Status StateMachine::PrepareStatements() {
  stmts_ = std::make_unique<Statements>();
  absl::Status s = db_.PrepareAll({
      {&stmts_->begin, "BEGIN"},
      {&stmts_->commit, "COMMIT"},
      {&stmts_->rollback, "ROLLBACK"},
      {&stmts_->savepoint, "SAVEPOINT command"},
      {&stmts_->release_sp, "RELEASE command"},
      {&stmts_->rollback_sp, "ROLLBACK TO command"},
      {&stmts_->set_meta,
       "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value"},
  });
  if (s.ok()) s = allocations_->PrepareStatements();
  if (s.ok()) s = node_store_->PrepareStatements();
  return s;
}

absl::Status StateMachine::LoadFromDatabase() {
  owners_->mutex().AssertHeld();
  stamp_ = domain::Stamp{};
  raft_index_ = 0;
  absl::Status s = db_.ForEachRow("SELECT key, value FROM meta", [&](const Statement& row) {
    if (row.Text(0) == "revision") stamp_.revision = static_cast<uint64_t>(row.Int(1));
    if (row.Text(0) == "time_ms") stamp_.time_ms = row.Int(1);
    if (row.Text(0) == "raft_index") raft_index_ = static_cast<uint64_t>(row.Int(1));
    return absl::OkStatus();
  });
  if (s.ok()) s = allocations_->Load();
  if (s.ok()) s = node_store_->Load();
  return s;
}

absl::StatusOr<std::vector<CommandOutcome>> StateMachine::ApplyEncoded(absl::string_view entry) {
  v1::CommandBatch batch;
  if (!batch.ParseFromArray(entry.data(), static_cast<int>(entry.size()))) {
    return absl::DataLossError("command batch: unreadable entry");
  }
  return Apply(batch);
}

absl::StatusOr<std::vector<CommandOutcome>> StateMachine::Apply(const v1::CommandBatch& batch, uint64_t raft_index,
                                                                std::optional<OutcomesDecided> decided) {
  if (batch.format_version() != kCommandFormatVersion) {
    return absl::FailedPreconditionError(absl::StrCat("command batch: format version ", batch.format_version(),
                                                      " is not supported (this build applies ",
                                                      kCommandFormatVersion, ")"));
  }
  // A command whose operation this build does not know (added by a newer build) refuses the whole batch:
  // refusing only that command would leave this replica's state apart from those that applied it.
  for (int i = 0; i < batch.commands_size(); ++i) {
    const v1::Command& cmd = batch.commands(i);
    if (cmd.op_case() == v1::Command::OP_NOT_SET &&
        !cmd.GetReflection()->GetUnknownFields(cmd).empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "command batch: command ", i, " carries an operation this build does not know; upgrade this replica"));
    }
  }
  // Readers of the owner index must not see it ahead of what is committed (see owner_index.h).
  absl::MutexLock lock(&owners_->mutex());
  if (absl::Status s = stmts_->begin.Run(); !s.ok()) return s;
  const domain::Stamp start = stamp_;
  stamp_.time_ms = std::max(stamp_.time_ms, batch.time_unix_ms());

  std::vector<CommandOutcome> outcomes;
  outcomes.reserve(static_cast<size_t>(batch.commands_size()));
  for (const v1::Command& cmd : batch.commands()) outcomes.push_back(ApplyCommand(cmd));

  absl::Status s = std::exchange(batch_failure_, absl::OkStatus());
  // What is left (the batch's bookkeeping rows and the commit) changes no outcome.
  if (s.ok() && decided.has_value()) (*decided)(outcomes);
  if (s.ok()) s = WriteBatchEnd();
  if (s.ok() && raft_index != 0) {
    s = stmts_->set_meta.Bind(1, "raft_index").Bind(2, static_cast<int64_t>(raft_index)).Run();
  }
  if (s.ok()) s = stmts_->commit.Run();
  if (!s.ok()) {
    // The store refused the transaction: undo it and rebuild the in-memory index from what is stored.
    (void)stmts_->rollback.Run();
    stamp_ = start;
    if (absl::Status r = LoadFromDatabase(); !r.ok()) {
      return absl::InternalError(absl::StrCat(s.message(), "; reloading the store also failed: ", r.message()));
    }
    return s;
  }
  if (raft_index != 0) raft_index_ = raft_index;
  return outcomes;
}

absl::Status StateMachine::WriteBatchEnd() {
  if (absl::Status s = allocations_->WriteDirtyPools(); !s.ok()) return s;
  if (absl::Status s = stmts_->set_meta.Bind(1, "revision").Bind(2, static_cast<int64_t>(stamp_.revision)).Run();
      !s.ok()) {
    return s;
  }
  return stmts_->set_meta.Bind(1, "time_ms").Bind(2, stamp_.time_ms).Run();
}

CommandOutcome StateMachine::ApplyCommand(const v1::Command& command) {
  // A savepoint lets a command refused half-way take back what it wrote. Allocate needs none: it writes with
  // one single-row statement (the insert, or the lease renewal of a retry), which SQLite applies whole or not
  // at all, and nothing after that statement can fail. Sparing it the savepoint spares SQLite a copy of every
  // page the insert touches into the statement journal, the largest cost of an allocation after the insert.
  const bool savepoint = command.op_case() != v1::Command::kAllocate;
  if (savepoint) {
    if (absl::Status s = stmts_->savepoint.Run(); !s.ok()) return s;
  }
  const uint64_t saved_revision = stamp_.revision;
  AllocationChanges changes;
  CommandOutcome out = absl::InvalidArgumentError("command: no operation set");
  Allocations& a = *allocations_;
  switch (command.op_case()) {
    case v1::Command::kCreatePool: out = a.CreatePool(command.create_pool(), nodes_); break;
    case v1::Command::kDeletePool: out = a.DeletePool(command.delete_pool(), changes); break;
    case v1::Command::kAllocate: out = a.Allocate(command.allocate(), changes); break;
    case v1::Command::kAllocateMany: out = a.AllocateMany(command.allocate_many(), changes); break;
    case v1::Command::kRelease: out = a.Release(command.release(), changes); break;
    case v1::Command::kRenew: out = a.Renew(command.renew()); break;
    case v1::Command::kUpdateLabels: out = a.UpdateLabels(command.update_labels(), changes); break;
    case v1::Command::kExpireAllocations: out = a.Expire(changes); break;
    case v1::Command::kPruneHistory: out = a.PruneHistory(command.prune_history()); break;
    case v1::Command::OP_NOT_SET: break;
    default:
      if (NodeStore::Handles(command)) out = node_store_->Apply(command, changes);
      break;
  }
  if (absl::Status failed = node_store_->TakeStoreFailure(); !failed.ok() && batch_failure_.ok()) {
    batch_failure_ = failed;
  }
  if (out.ok()) {
    if (absl::Status s = node_store_->AfterCommand(changes, command.traceparent()); !s.ok() && batch_failure_.ok()) {
      batch_failure_ = s;
    }
    if (savepoint) {
      if (absl::Status s = stmts_->release_sp.Run(); !s.ok()) return s;
    }
  } else {
    nodes_.AbortCommand();
    if (savepoint) {
      (void)stmts_->rollback_sp.Run();
      (void)stmts_->release_sp.Run();
    }
    stamp_.revision = saved_revision;
  }
  return out;
}

absl::StatusOr<std::string> StateMachine::Snapshot() { return DumpSnapshot(db_); }

absl::Status StateMachine::Restore(absl::string_view snapshot, uint64_t raft_index) {
  absl::MutexLock lock(&owners_->mutex());
  if (absl::Status s = stmts_->begin.Run(); !s.ok()) return s;
  absl::Status s = LoadSnapshot(db_, snapshot);
  if (s.ok() && raft_index != 0) {
    s = stmts_->set_meta.Bind(1, "raft_index").Bind(2, static_cast<int64_t>(raft_index)).Run();
  }
  // Build memory from the new rows before committing them: rows that do not form a valid state (an
  // allocation outside its pool, say) refuse the snapshot instead of replacing the state.
  if (s.ok()) s = LoadFromDatabase();
  if (s.ok()) s = stmts_->commit.Run();
  if (s.ok()) return s;
  (void)stmts_->rollback.Run();
  // Memory follows what is stored: the previous state.
  if (absl::Status r = LoadFromDatabase(); !r.ok()) return r;
  return s;
}

absl::StatusOr<std::optional<int64_t>> StateMachine::EarliestExpiry() { return allocations_->EarliestExpiry(); }

}  // namespace abode::storage

#include "storage/state_machine.h"

#include <unistd.h>

#include <algorithm>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/util/message_differencer.h"
#include "storage/rows.h"
#include "storage/schema.h"
#include "storage/snapshot.h"
#include "storage/validation.h"
#include "storage/wal_batching_vfs.h"

namespace abode::storage {
namespace {

std::string Q(absl::string_view s) { return absl::StrCat("\"", s, "\""); }

std::string CursorBytes(const std::optional<u128>& cursor, Family f) {
  return cursor ? IpAddress(f, *cursor).ToBytes() : std::string();
}

}  // namespace

struct StateMachine::Statements {
  Statement begin, commit, rollback, savepoint, release_sp, rollback_sp;
  Statement set_meta;
  Statement insert_pool, delete_pool, update_pool;
  Statement insert_alloc, delete_alloc, update_alloc_lease;
  Statement alloc_by_id, alloc_by_address, alloc_by_pool, alloc_expired, min_expiry;
  Statement insert_history, prune_history;
};

StateMachine::StateMachine(StateMachineOptions options, Database db)
    : options_(std::move(options)),
      db_(std::move(db)),
      owners_(options_.owner_index ? options_.owner_index : std::make_shared<OwnerIndex>()) {}

StateMachine::~StateMachine() = default;

namespace {

// The schema version of an existing database file, or 0 if there is none or it cannot be read.
int64_t ExistingSchemaVersion(const std::string& path) {
  if (::access(path.c_str(), F_OK) != 0) return 0;
  auto db = Database::Open(path, /*read_only=*/false);
  if (!db.ok()) return 0;
  auto stmt = db->Prepare("PRAGMA user_version");
  if (!stmt.ok()) return 0;
  auto row = stmt->Step();
  return row.ok() && *row ? stmt->Int(0) : 0;
}

}  // namespace

absl::StatusOr<std::unique_ptr<StateMachine>> StateMachine::Open(const StateMachineOptions& options) {
  if (options.reuse_existing && ExistingSchemaVersion(options.db_path) == kSchemaVersion) {
    auto db = Database::Open(options.db_path, /*read_only=*/false, WalBatchingVfsName());
    if (!db.ok()) return db.status();
    if (absl::Status s = db->Exec(kWriterPragmas); !s.ok()) return s;
    std::unique_ptr<StateMachine> sm(new StateMachine(options, std::move(*db)));
    if (absl::Status s = sm->PrepareStatements(); !s.ok()) return s;
    absl::MutexLock lock(&sm->owners_->mutex());
    if (absl::Status s = sm->LoadFromDatabase(); !s.ok()) return s;
    if (absl::Status s = sm->StartCheckpointer(); !s.ok()) return s;
    return sm;
  }
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
    const std::string p = options.db_path + suffix;
    if (::unlink(p.c_str()) != 0 && errno != ENOENT) {
      return absl::InternalError(absl::StrCat("remove ", p, ": ", strerror(errno)));
    }
  }
  // The writer commits through the WAL-batching VFS: one write per commit (see wal_batching_vfs.h).
  auto db = Database::Open(options.db_path, /*read_only=*/false, WalBatchingVfsName());
  if (!db.ok()) return db.status();
  if (absl::Status s = db->Exec(kWriterPragmas); !s.ok()) return s;
  if (absl::Status s = db->Exec(kSchema); !s.ok()) return s;
  if (absl::Status s = db->Exec(absl::StrCat("PRAGMA user_version = ", kSchemaVersion)); !s.ok()) return s;
  std::unique_ptr<StateMachine> sm(new StateMachine(options, std::move(*db)));
  if (absl::Status s = sm->PrepareStatements(); !s.ok()) return s;
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
  const std::string cols = kAllocationColumns;
  const std::pair<Statement*, std::string> all[] = {
      {&stmts_->begin, "BEGIN"},
      {&stmts_->commit, "COMMIT"},
      {&stmts_->rollback, "ROLLBACK"},
      {&stmts_->savepoint, "SAVEPOINT command"},
      {&stmts_->release_sp, "RELEASE command"},
      {&stmts_->rollback_sp, "ROLLBACK TO command"},
      {&stmts_->set_meta, "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value"},
      {&stmts_->insert_pool,
       "INSERT INTO pools (id, name, network, spec, used, cursor, create_revision, create_time_ms) "
       "VALUES (?, ?, ?, ?, 0, x'', ?, ?)"},
      {&stmts_->delete_pool, "DELETE FROM pools WHERE id = ?"},
      {&stmts_->update_pool, "UPDATE pools SET used = ?, cursor = ? WHERE id = ?"},
      // OR FAIL: SQLite checks a row's constraints before it writes any of it, so a refused single-row insert
      // leaves nothing behind, and without OR ABORT's statement journal every insert costs less.
      {&stmts_->insert_alloc,
       "INSERT OR FAIL INTO allocations (pool_id, network, address, owner, node, labels, ttl_s, expire_ms, create_ms, "
       "create_revision, revision) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"},
      {&stmts_->delete_alloc, "DELETE FROM allocations WHERE id = ?"},
      {&stmts_->update_alloc_lease, "UPDATE allocations SET ttl_s = ?, expire_ms = ?, revision = ? WHERE id = ?"},
      {&stmts_->alloc_by_id, absl::StrCat("SELECT ", cols, " FROM allocations a WHERE a.id = ?")},
      {&stmts_->alloc_by_address,
       absl::StrCat("SELECT ", cols, " FROM allocations a WHERE a.network = ? AND a.address = ?")},
      {&stmts_->alloc_by_pool, absl::StrCat("SELECT ", cols, " FROM allocations a WHERE a.pool_id = ? ORDER BY a.id")},
      {&stmts_->alloc_expired,
       absl::StrCat("SELECT ", cols,
                    " FROM allocations a WHERE a.expire_ms > 0 AND a.expire_ms <= ? ORDER BY a.expire_ms, a.id LIMIT ?")},
      {&stmts_->min_expiry, "SELECT MIN(expire_ms) FROM allocations WHERE expire_ms > 0"},
      {&stmts_->insert_history,
       "INSERT INTO history (network, address, pool, owner, node, from_ms, to_ms, from_revision, to_revision, "
       "end_reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"},
      {&stmts_->prune_history, "DELETE FROM history WHERE to_revision > 0 AND to_ms < ?"},
  };
  for (const auto& [stmt, sql] : all) {
    auto s = db_.Prepare(sql);
    if (!s.ok()) return s.status();
    *stmt = std::move(*s);
  }
  nodes_ = std::make_unique<NodeState>(db_, static_cast<NodeStateHost&>(*this));
  return nodes_->PrepareStatements();
}

absl::Status StateMachine::LoadFromDatabase() {
  owners_->mutex().AssertHeld();
  owners_->Clear();
  pools_.clear();
  pool_names_.clear();
  next_pool_id_ = 1;
  revision_ = 0;
  raft_index_ = 0;
  time_ms_ = 0;
  {
    auto stmt = db_.Prepare("SELECT key, value FROM meta");
    if (!stmt.ok()) return stmt.status();
    for (;;) {
      auto row = stmt->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      if (stmt->Text(0) == "revision") revision_ = static_cast<uint64_t>(stmt->Int(1));
      if (stmt->Text(0) == "time_ms") time_ms_ = stmt->Int(1);
      if (stmt->Text(0) == "raft_index") raft_index_ = static_cast<uint64_t>(stmt->Int(1));
    }
  }
  {
    auto stmt = db_.Prepare("SELECT id, spec, cursor, create_revision, create_time_ms FROM pools ORDER BY id");
    if (!stmt.ok()) return stmt.status();
    for (;;) {
      auto row = stmt->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      PoolState p;
      p.id = stmt->Int(0);
      const absl::string_view spec = stmt->Blob(1);
      if (!p.spec.ParseFromArray(spec.data(), static_cast<int>(spec.size()))) {
        return absl::DataLossError(absl::StrCat("pool row ", p.id, " has an unreadable spec"));
      }
      auto layout = PoolLayout::FromSpec(p.spec);
      if (!layout.ok()) return absl::DataLossError(absl::StrCat("pool ", p.spec.name(), ": ", layout.status().message()));
      p.layout = std::move(*layout);
      p.free = p.layout.Assignable();
      if (!stmt->Blob(2).empty()) {
        auto c = IpAddress::FromBytes(stmt->Blob(2));
        if (c.ok()) p.cursor = c->value();
      }
      p.create_revision = static_cast<uint64_t>(stmt->Int(3));
      p.create_time_ms = stmt->Int(4);
      next_pool_id_ = std::max(next_pool_id_, p.id + 1);
      pool_names_[p.id] = p.spec.name();
      std::string name = p.spec.name();
      pools_.emplace(std::move(name), std::move(p));
    }
  }
  {
    auto stmt = db_.Prepare("SELECT pool_id, address, id, owner FROM allocations");
    if (!stmt.ok()) return stmt.status();
    for (;;) {
      auto row = stmt->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      PoolState* pool = PoolById(stmt->Int(0));
      auto addr = IpAddress::FromBytes(stmt->Blob(1));
      if (pool == nullptr || !addr.ok() || !pool->free.Take(addr->value())) {
        return absl::DataLossError(absl::StrCat("allocation row in pool ", stmt->Int(0),
                                                " is not a free address of its pool"));
      }
      ++pool->used;
      if (absl::Status s = AddToOwnerIndex(stmt->Text(3), stmt->Int(2), pool->id); !s.ok()) return s;
    }
  }
  return nodes_->Load();
}

// Adds a stored row to the owner index, refusing a second row of one owner in one pool (no SQLite constraint
// stands guard over that; a snapshot could carry one).
absl::Status StateMachine::AddToOwnerIndex(absl::string_view owner, int64_t row_id, int64_t pool_id) {
  auto held = AllocationsOfOwner(owner, pool_id);
  if (!held.ok()) return held.status();
  if (!held->empty()) {
    return absl::DataLossError(absl::StrCat("owner ", Q(owner), " holds two allocations in pool ", pool_id, " (rows ",
                                            held->front().first, " and ", row_id, ")"));
  }
  owners_->Add(owner, row_id, pool_id);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::pair<int64_t, v1::Allocation>>> StateMachine::AllocationsOfOwner(
    absl::string_view owner, int64_t pool_id) {
  std::vector<std::pair<int64_t, v1::Allocation>> out;
  OwnerIndex::Rows candidates = owners_->Find(owner, pool_id);
  std::sort(candidates.begin(), candidates.end(), [](const OwnerIndex::Row& a, const OwnerIndex::Row& b) {
    return std::tie(a.pool_id, a.row_id) < std::tie(b.pool_id, b.row_id);
  });
  for (const OwnerIndex::Row& r : candidates) {
    stmts_->alloc_by_id.Bind(1, r.row_id);
    auto rows = QueryAllocations(stmts_->alloc_by_id);
    if (!rows.ok()) return rows.status();
    for (auto& row : *rows) {
      if (row.second.owner() == owner) out.push_back(std::move(row));  // not another owner of the same hash
    }
  }
  return out;
}

absl::StatusOr<std::vector<v1::Allocation>> StateMachine::OwnerAllocations(absl::string_view owner) {
  auto rows = AllocationsOfOwner(owner, 0);
  if (!rows.ok()) return rows.status();
  std::vector<v1::Allocation> out;
  for (auto& [id, a] : *rows) out.push_back(std::move(a));
  return out;
}

StateMachine::PoolState* StateMachine::PoolById(int64_t id) {
  auto it = pool_names_.find(id);
  if (it == pool_names_.end()) return nullptr;
  auto p = pools_.find(it->second);
  return p == pools_.end() ? nullptr : &p->second;
}

absl::StatusOr<StateMachine::PoolState*> StateMachine::PoolByName(absl::string_view name, absl::string_view field) {
  if (name.empty()) return absl::InvalidArgumentError(absl::StrCat(field, ": must not be empty"));
  auto it = pools_.find(name);
  if (it == pools_.end()) return absl::NotFoundError(absl::StrCat(field, ": pool ", Q(name), " not found"));
  return &it->second;
}

v1::Pool StateMachine::PoolMessage(const PoolState& p) const {
  v1::Pool out;
  *out.mutable_spec() = p.spec;
  out.set_size(U128ToString(p.layout.size()));
  out.set_used(p.used);
  out.set_free(U128ToString(p.free.count()));
  out.set_create_revision(p.create_revision);
  out.set_create_time_unix_ms(p.create_time_ms);
  return out;
}

absl::StatusOr<std::vector<CommandOutcome>> StateMachine::ApplyEncoded(absl::string_view entry) {
  v1::CommandBatch batch;
  if (!batch.ParseFromArray(entry.data(), static_cast<int>(entry.size()))) {
    return absl::DataLossError("command batch: unreadable entry");
  }
  return Apply(batch);
}

absl::StatusOr<std::vector<CommandOutcome>> StateMachine::Apply(const v1::CommandBatch& batch, uint64_t raft_index) {
  if (batch.format_version() != kCommandFormatVersion) {
    return absl::FailedPreconditionError(absl::StrCat("command batch: format version ", batch.format_version(),
                                                      " is not supported (this build applies ",
                                                      kCommandFormatVersion, ")"));
  }
  // Readers of the owner index must not see it ahead of what is committed (see owner_index.h).
  absl::MutexLock lock(&owners_->mutex());
  if (absl::Status s = stmts_->begin.Run(); !s.ok()) return s;
  const uint64_t start_revision = revision_;
  const int64_t start_time = time_ms_;
  time_ms_ = std::max(time_ms_, batch.time_unix_ms());

  std::vector<CommandOutcome> outcomes;
  outcomes.reserve(static_cast<size_t>(batch.commands_size()));
  for (const v1::Command& cmd : batch.commands()) outcomes.push_back(ApplyCommand(cmd));

  absl::Status s = std::exchange(batch_failure_, absl::OkStatus());
  if (s.ok()) s = WriteBatchEnd();
  if (s.ok() && raft_index != 0) {
    s = stmts_->set_meta.Bind(1, "raft_index").Bind(2, static_cast<int64_t>(raft_index)).Run();
  }
  if (s.ok()) s = stmts_->commit.Run();
  if (!s.ok()) {
    // The store refused the transaction: undo it and rebuild the in-memory index from what is stored.
    (void)stmts_->rollback.Run();
    revision_ = start_revision;
    time_ms_ = start_time;
    if (absl::Status r = LoadFromDatabase(); !r.ok()) {
      return absl::InternalError(absl::StrCat(s.message(), "; reloading the store also failed: ", r.message()));
    }
    return s;
  }
  if (raft_index != 0) raft_index_ = raft_index;
  return outcomes;
}

absl::Status StateMachine::WriteBatchEnd() {
  for (auto& [name, pool] : pools_) {
    if (!pool.dirty) continue;
    stmts_->update_pool.Bind(1, static_cast<int64_t>(pool.used))
        .BindBlob(2, CursorBytes(pool.cursor, pool.layout.family()))
        .Bind(3, pool.id);
    if (absl::Status s = stmts_->update_pool.Run(); !s.ok()) return s;
    pool.dirty = false;
  }
  if (absl::Status s = stmts_->set_meta.Bind(1, "revision").Bind(2, static_cast<int64_t>(revision_)).Run(); !s.ok()) {
    return s;
  }
  return stmts_->set_meta.Bind(1, "time_ms").Bind(2, time_ms_).Run();
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
  const uint64_t saved_revision = revision_;
  CommandOutcome out = absl::InvalidArgumentError("command: no operation set");
  switch (command.op_case()) {
    case v1::Command::kCreatePool: out = CreatePool(command.create_pool()); break;
    case v1::Command::kDeletePool: out = DeletePool(command.delete_pool()); break;
    case v1::Command::kAllocate: out = Allocate(command.allocate()); break;
    case v1::Command::kRelease: out = Release(command.release()); break;
    case v1::Command::kRenew: out = Renew(command.renew()); break;
    case v1::Command::kExpireAllocations: out = ExpireAllocations(); break;
    case v1::Command::kPruneHistory: out = PruneHistory(command.prune_history()); break;
    case v1::Command::OP_NOT_SET: break;
    default:
      if (NodeState::Handles(command)) out = nodes_->Apply(command);
      break;
  }
  std::vector<AllocationChange> changes = std::move(allocation_changes_);
  allocation_changes_.clear();
  if (absl::Status failed = nodes_->TakeStoreFailure(); !failed.ok() && batch_failure_.ok()) batch_failure_ = failed;
  if (out.ok()) {
    if (absl::Status s = nodes_->AfterCommand(changes, command.traceparent()); !s.ok() && batch_failure_.ok()) {
      batch_failure_ = s;
    }
    if (savepoint) {
      if (absl::Status s = stmts_->release_sp.Run(); !s.ok()) return s;
    }
  } else {
    nodes_->AbortCommand();
    if (savepoint) {
      (void)stmts_->rollback_sp.Run();
      (void)stmts_->release_sp.Run();
    }
    revision_ = saved_revision;
  }
  return out;
}

// Every command below follows one rule: check everything, write to SQLite, and only then change the
// in-memory index, so a command refused half-way (the savepoint rolls back) leaves memory untouched.

CommandOutcome StateMachine::CreatePool(const v1::CreatePoolRequest& req) {
  auto layout = PoolLayout::FromSpec(req.pool());
  if (!layout.ok()) return layout.status();
  v1::PoolSpec spec = req.pool();
  if (spec.strategy() == v1::ALLOCATION_STRATEGY_UNSPECIFIED) spec.set_strategy(v1::ALLOCATION_STRATEGY_LOWEST);
  if (spec.purpose() == v1::POOL_PURPOSE_UNSPECIFIED) spec.set_purpose(v1::POOL_PURPOSE_WORKLOAD);
  // Canonical text forms, so that equal pools compare equal.
  spec.set_cidr(layout->cidr().ToString());
  if (!spec.range_start().empty()) spec.set_range_start(IpAddress(layout->family(), layout->range_first()).ToString());
  if (!spec.range_end().empty()) spec.set_range_end(IpAddress(layout->family(), layout->range_last()).ToString());
  if (layout->gateway()) spec.set_gateway(layout->gateway()->ToString());
  for (auto& e : *spec.mutable_exclude()) e = Prefix::Parse(e, "pool.exclude").value().ToString();

  if (auto it = pools_.find(spec.name()); it != pools_.end()) {
    // A retried create of the same pool succeeds; a different pool under the same name does not.
    if (google::protobuf::util::MessageDifferencer::Equals(it->second.spec, spec)) {
      v1::CommandResult same;
      *same.mutable_pool() = PoolMessage(it->second);
      return same;
    }
    return absl::AlreadyExistsError(absl::StrCat("pool.name: pool ", Q(spec.name()), " already exists"));
  }
  for (const auto& [name, other] : pools_) {
    if (other.spec.network() != spec.network() || other.layout.family() != layout->family()) continue;
    if (layout->range_first() <= other.layout.range_last() && other.layout.range_first() <= layout->range_last()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "pool.cidr: ", spec.cidr(), " overlaps pool ", Q(name), " (", other.spec.cidr(), ") in network ",
          Q(spec.network().empty() ? "default" : spec.network()), "; use another range or network"));
    }
  }
  if (auto magic = nodes_->MagicInside(layout->cidr())) {
    return absl::FailedPreconditionError(absl::StrCat("pool.cidr: ", spec.cidr(), " contains magic address ",
                                                      Q(magic->first), " (", magic->second,
                                                      "); delete it or use another range"));
  }
  ++revision_;
  PoolState p;
  p.id = next_pool_id_;
  p.spec = spec;
  p.layout = std::move(*layout);
  p.free = p.layout.Assignable();
  p.create_revision = revision_;
  p.create_time_ms = time_ms_;
  std::string blob;
  spec.SerializeToString(&blob);
  stmts_->insert_pool.Bind(1, p.id)
      .Bind(2, spec.name())
      .Bind(3, spec.network())
      .BindBlob(4, blob)
      .Bind(5, static_cast<int64_t>(p.create_revision))
      .Bind(6, p.create_time_ms);
  if (absl::Status s = stmts_->insert_pool.Run(); !s.ok()) return s;
  ++next_pool_id_;
  v1::CommandResult result;
  *result.mutable_pool() = PoolMessage(p);
  pool_names_[p.id] = spec.name();
  pools_.emplace(spec.name(), std::move(p));
  return result;
}

absl::StatusOr<std::vector<std::pair<int64_t, v1::Allocation>>> StateMachine::QueryAllocations(Statement& stmt) {
  std::vector<std::pair<int64_t, v1::Allocation>> out;
  absl::Status s = stmt.EachRow([&] {
    const PoolState* pool = PoolById(RowPoolId(stmt, 0));
    PoolFacts facts;
    if (pool != nullptr) {
      facts = PoolFacts{pool->spec.name(), pool->layout.cidr().length(),
                        pool->layout.gateway() ? pool->layout.gateway()->ToString() : std::string()};
    }
    v1::Allocation a;
    AllocationFromRow(stmt, 0, facts, &a);
    out.emplace_back(RowId(stmt, 0), std::move(a));
  });
  if (!s.ok()) return s;
  return out;
}

absl::Status StateMachine::FreeAllocation(PoolState& pool, int64_t row_id, const v1::Allocation& alloc,
                                          absl::string_view reason) {
  auto addr = IpAddress::Parse(alloc.address(), "allocation.address");
  if (!addr.ok()) return absl::DataLossError(addr.status().message());
  ++revision_;
  if (absl::Status s = stmts_->delete_alloc.Bind(1, row_id).Run(); !s.ok()) return s;
  allocation_changes_.push_back(AllocationChange{alloc, false});
  // History holds ended holdings; the current holder is the allocation row itself.
  stmts_->insert_history.Bind(1, pool.spec.network())
      .BindBlob(2, addr->ToBytes())
      .Bind(3, pool.spec.name())
      .Bind(4, alloc.owner())
      .Bind(5, alloc.node())
      .Bind(6, alloc.create_time_unix_ms())
      .Bind(7, time_ms_)
      .Bind(8, static_cast<int64_t>(alloc.create_revision()))
      .Bind(9, static_cast<int64_t>(revision_))
      .Bind(10, reason);
  return stmts_->insert_history.Run();
}

CommandOutcome StateMachine::DeletePool(const v1::DeletePoolRequest& req) {
  auto pool = PoolByName(req.name(), "name");
  if (!pool.ok()) return pool.status();
  PoolState& p = **pool;
  if (p.used > 0 && !req.force()) {
    return absl::FailedPreconditionError(absl::StrCat("pool ", Q(p.spec.name()), " still has ", p.used,
                                                      " allocations; release them first or delete with force"));
  }
  stmts_->alloc_by_pool.Bind(1, p.id);
  auto held = QueryAllocations(stmts_->alloc_by_pool);
  if (!held.ok()) return held.status();
  for (const auto& [id, a] : *held) {
    if (absl::Status s = FreeAllocation(p, id, a, "pool-deleted"); !s.ok()) return s;
  }
  ++revision_;
  if (absl::Status s = stmts_->delete_pool.Bind(1, p.id).Run(); !s.ok()) return s;
  v1::CommandResult result;
  result.mutable_delete_pool()->set_released(held->size());
  result.mutable_delete_pool()->set_revision(revision_);
  for (const auto& [id, a] : *held) owners_->Remove(a.owner(), id);
  pool_names_.erase(p.id);
  pools_.erase(pools_.find(req.name()));
  // The next id follows from the stored rows alone (highest + 1), as LoadFromDatabase computes it after a
  // restore; otherwise a replica restored from a snapshot would number later pools differently.
  next_pool_id_ = 1;
  for (const auto& [id, name] : pool_names_) next_pool_id_ = std::max(next_pool_id_, id + 1);
  return result;
}

// Restarts the lease of allocation `id` (held as `a`) for `ttl_seconds`, or for its own TTL when that is 0.
// An allocation without a TTL has no lease: nothing changes.
absl::Status StateMachine::RenewLease(int64_t id, int64_t ttl_seconds, v1::Allocation& a) {
  const int64_t ttl = ttl_seconds > 0 ? ttl_seconds : a.ttl_seconds();
  if (ttl <= 0) return absl::OkStatus();
  ++revision_;
  a.set_ttl_seconds(ttl);
  a.set_expire_time_unix_ms(time_ms_ + ttl * 1000);
  a.set_revision(revision_);
  stmts_->update_alloc_lease.Bind(1, ttl).Bind(2, a.expire_time_unix_ms()).Bind(3, static_cast<int64_t>(revision_)).Bind(4, id);
  return stmts_->update_alloc_lease.Run();
}

// The answer to an Allocate whose owner already holds an address in `pool` (or the error that kept it from
// finding out); nothing when the owner holds none.
std::optional<CommandOutcome> StateMachine::HeldByOwner(const v1::AllocateRequest& req, PoolState& pool,
                                                        const std::optional<IpAddress>& wanted) {
  auto existing = AllocationsOfOwner(req.owner(), pool.id);
  if (!existing.ok()) return CommandOutcome(existing.status());
  if (existing->empty()) return std::nullopt;
  auto& [id, a] = existing->front();
  if (wanted && wanted->ToString() != a.address()) {
    return CommandOutcome(absl::FailedPreconditionError(
        absl::StrCat("address: owner ", Q(req.owner()), " already holds ", a.address(), " in pool ",
                     Q(pool.spec.name()), "; release it before asking for ", wanted->ToString())));
  }
  // A retry is a sign of life: it renews the lease.
  if (absl::Status s = RenewLease(id, req.ttl_seconds(), a); !s.ok()) return CommandOutcome(s);
  v1::CommandResult result;
  *result.mutable_allocation() = std::move(a);
  return CommandOutcome(std::move(result));
}

CommandOutcome StateMachine::Allocate(const v1::AllocateRequest& req) {
  if (absl::Status s = ValidateOwner(req.owner(), "owner"); !s.ok()) return s;
  if (absl::Status s = ValidateNodeName(req.node(), "node"); !s.ok()) return s;
  if (absl::Status s = ValidateLabels(req.labels(), "labels"); !s.ok()) return s;
  if (req.ttl_seconds() < 0 || req.ttl_seconds() > options_.max_ttl_seconds) {
    return absl::InvalidArgumentError(
        absl::StrCat("ttl_seconds: ", req.ttl_seconds(), " is outside 0..", options_.max_ttl_seconds));
  }
  auto found = PoolByName(req.pool(), "pool");
  if (!found.ok()) return found.status();
  PoolState& pool = **found;

  std::optional<IpAddress> wanted;
  if (!req.address().empty()) {
    auto a = IpAddress::Parse(req.address(), "address");
    if (!a.ok()) return a.status();
    if (a->family() != pool.layout.family() || !pool.layout.cidr().Contains(*a)) {
      return absl::InvalidArgumentError(absl::StrCat("address: ", a->ToString(), " is outside pool ",
                                                     Q(pool.spec.name()), " (", pool.spec.cidr(), ")"));
    }
    if (std::string why = pool.layout.WhyNotAssignable(a->value()); !why.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("address: ", a->ToString(), " is ", why, " of pool ", Q(pool.spec.name()), " and is never handed out"));
    }
    wanted = *a;
  }

  // Idempotency: the owner already holds an address in this pool. The owner index answers a new owner (the
  // common case) without touching SQLite.
  if (auto held = HeldByOwner(req, pool, wanted)) return std::move(*held);
  u128 value = 0;
  if (wanted) {
    if (!pool.free.Contains(wanted->value())) {
      stmts_->alloc_by_address.Bind(1, pool.spec.network()).BindBlob(2, wanted->ToBytes());
      auto holder = QueryAllocations(stmts_->alloc_by_address);
      if (!holder.ok()) return holder.status();
      if (holder->empty()) return absl::InternalError(absl::StrCat("address: index and store disagree on ", wanted->ToString()));
      return absl::AlreadyExistsError(absl::StrCat("address: ", wanted->ToString(), " is held by owner ",
                                                   Q(holder->front().second.owner()), " in pool ",
                                                   Q(holder->front().second.pool())));
    }
    value = wanted->value();
  } else {
    std::optional<u128> next;
    if (pool.spec.strategy() == v1::ALLOCATION_STRATEGY_SEQUENTIAL && pool.cursor) {
      next = pool.free.NextFrom(*pool.cursor == pool.layout.range_last() ? pool.layout.range_first() : *pool.cursor + 1);
    } else {
      next = pool.free.Lowest();
    }
    if (!next) {
      return absl::ResourceExhaustedError(absl::StrCat("pool ", Q(pool.spec.name()), " is full: all ",
                                                       U128ToString(pool.layout.size()), " addresses are allocated"));
    }
    value = *next;
  }

  const IpAddress address(pool.layout.family(), value);
  const std::string bytes = address.ToBytes();
  ++revision_;
  const int64_t expire = req.ttl_seconds() > 0 ? time_ms_ + req.ttl_seconds() * 1000 : 0;
  stmts_->insert_alloc.Bind(1, pool.id)
      .Bind(2, pool.spec.network())
      .BindBlob(3, bytes)
      .Bind(4, req.owner())
      .Bind(5, req.node())
      .Bind(6, EncodeLabels(req.labels()))
      .Bind(7, req.ttl_seconds())
      .Bind(8, expire)
      .Bind(9, time_ms_)
      .Bind(10, static_cast<int64_t>(revision_))
      .Bind(11, static_cast<int64_t>(revision_));
  if (absl::Status s = stmts_->insert_alloc.Run(); !s.ok()) {
    --revision_;  // nothing was written
    return s;
  }

  owners_->Add(req.owner(), db_.last_insert_rowid(), pool.id);
  pool.free.Take(value);
  ++pool.used;
  pool.cursor = value;
  pool.dirty = true;

  v1::CommandResult result;
  v1::Allocation* a = result.mutable_allocation();
  a->set_pool(pool.spec.name());
  a->set_network(pool.spec.network());
  a->set_address(address.ToString());
  a->set_prefix_length(pool.layout.cidr().length());
  if (pool.layout.gateway()) a->set_gateway(pool.layout.gateway()->ToString());
  a->set_owner(req.owner());
  a->set_node(req.node());
  *a->mutable_labels() = req.labels();
  a->set_ttl_seconds(req.ttl_seconds());
  a->set_expire_time_unix_ms(expire);
  a->set_create_time_unix_ms(time_ms_);
  a->set_create_revision(revision_);
  a->set_revision(revision_);
  allocation_changes_.push_back(AllocationChange{*a, true});
  return result;
}

CommandOutcome StateMachine::Release(const v1::ReleaseRequest& req) {
  if (req.owner().empty() == req.address().empty()) {
    return absl::InvalidArgumentError("owner, address: set exactly one of owner or address");
  }
  PoolState* only_pool = nullptr;
  if (!req.pool().empty()) {
    auto p = PoolByName(req.pool(), "pool");
    if (!p.ok()) return p.status();
    only_pool = *p;
  }
  std::vector<std::pair<int64_t, v1::Allocation>> victims;
  if (!req.owner().empty()) {
    if (absl::Status s = ValidateOwner(req.owner(), "owner"); !s.ok()) return s;
    auto found = AllocationsOfOwner(req.owner(), only_pool ? only_pool->id : 0);
    if (!found.ok()) return found.status();
    victims = std::move(*found);
  } else {
    auto addr = IpAddress::Parse(req.address(), "address");
    if (!addr.ok()) return addr.status();
    if (absl::Status s = ValidateName(req.network(), "network", true); !s.ok()) return s;
    std::vector<std::string> networks;
    if (only_pool) {
      networks.push_back(only_pool->spec.network());
    } else if (!req.network().empty()) {
      networks.push_back(req.network());
    } else {
      for (const auto& [name, p] : pools_) {
        if (std::find(networks.begin(), networks.end(), p.spec.network()) == networks.end()) {
          networks.push_back(p.spec.network());
        }
      }
    }
    for (const std::string& net : networks) {
      stmts_->alloc_by_address.Bind(1, net).BindBlob(2, addr->ToBytes());
      auto found = QueryAllocations(stmts_->alloc_by_address);
      if (!found.ok()) return found.status();
      for (auto& v : *found) {
        if (only_pool == nullptr || v.second.pool() == only_pool->spec.name()) victims.push_back(std::move(v));
      }
    }
    if (victims.size() > 1) {
      std::vector<std::string> where;
      for (const auto& v : victims) where.push_back(absl::StrCat(Q(v.second.network()), " (pool ", Q(v.second.pool()), ")"));
      return absl::InvalidArgumentError(absl::StrCat("address: ", addr->ToString(), " is held in several networks: ",
                                                     absl::StrJoin(where, ", "), "; set network or pool"));
    }
  }
  v1::CommandResult result;
  std::vector<std::pair<PoolState*, u128>> gives;
  for (auto& [id, a] : victims) {
    PoolState* pool = nullptr;
    if (auto it = pools_.find(a.pool()); it != pools_.end()) pool = &it->second;
    if (pool == nullptr) return absl::InternalError(absl::StrCat("allocation of ", a.address(), " has no pool"));
    if (absl::Status s = FreeAllocation(*pool, id, a, "released"); !s.ok()) return s;
    gives.emplace_back(pool, IpAddress::Parse(a.address(), "address")->value());
    a.set_revision(revision_);
  }
  for (size_t i = 0; i < victims.size(); ++i) {
    auto& [id, a] = victims[i];
    auto& [pool, v] = gives[i];
    pool->free.Give(v);
    --pool->used;
    pool->dirty = true;
    owners_->Remove(a.owner(), id);
    *result.mutable_release()->add_released() = std::move(a);
  }
  result.mutable_release()->set_revision(revision_);
  return result;
}

CommandOutcome StateMachine::Renew(const v1::RenewRequest& req) {
  if (absl::Status s = ValidateOwner(req.owner(), "owner"); !s.ok()) return s;
  if (req.ttl_seconds() < 0 || req.ttl_seconds() > options_.max_ttl_seconds) {
    return absl::InvalidArgumentError(
        absl::StrCat("ttl_seconds: ", req.ttl_seconds(), " is outside 0..", options_.max_ttl_seconds));
  }
  PoolState* only_pool = nullptr;
  if (!req.pool().empty()) {
    auto p = PoolByName(req.pool(), "pool");
    if (!p.ok()) return p.status();
    only_pool = *p;
  }
  auto found = AllocationsOfOwner(req.owner(), only_pool ? only_pool->id : 0);
  if (!found.ok()) return found.status();
  if (found->empty()) {
    return absl::NotFoundError(absl::StrCat("owner: ", Q(req.owner()), " holds no allocation",
                                            only_pool ? absl::StrCat(" in pool ", Q(req.pool())) : ""));
  }
  v1::CommandResult result;
  for (auto& [id, a] : *found) {
    if (absl::Status s = RenewLease(id, req.ttl_seconds(), a); !s.ok()) return s;
    *result.mutable_renew()->add_allocations() = std::move(a);
  }
  return result;
}

CommandOutcome StateMachine::ExpireAllocations() {
  stmts_->alloc_expired.Bind(1, time_ms_).Bind(2, options_.max_expire_per_command);
  auto found = QueryAllocations(stmts_->alloc_expired);
  if (!found.ok()) return found.status();
  std::vector<std::pair<PoolState*, u128>> gives;
  for (const auto& [id, a] : *found) {
    auto it = pools_.find(a.pool());
    if (it == pools_.end()) return absl::InternalError(absl::StrCat("allocation of ", a.address(), " has no pool"));
    if (absl::Status s = FreeAllocation(it->second, id, a, "expired"); !s.ok()) return s;
    gives.emplace_back(&it->second, IpAddress::Parse(a.address(), "address")->value());
  }
  for (size_t i = 0; i < gives.size(); ++i) {
    auto& [pool, v] = gives[i];
    pool->free.Give(v);
    --pool->used;
    pool->dirty = true;
    owners_->Remove((*found)[i].second.owner(), (*found)[i].first);
  }
  v1::CommandResult result;
  result.set_changed(found->size());
  return result;
}

CommandOutcome StateMachine::PruneHistory(const v1::PruneHistory& req) {
  if (absl::Status s = stmts_->prune_history.Bind(1, req.older_than_unix_ms()).Run(); !s.ok()) return s;
  v1::CommandResult result;
  result.set_changed(static_cast<uint64_t>(db_.changes()));
  return result;
}

absl::StatusOr<v1::Allocation> StateMachine::AllocateAddress(const v1::AllocateRequest& req) {
  CommandOutcome out = Allocate(req);
  if (!out.ok()) return out.status();
  return std::move(*out->mutable_allocation());
}

absl::Status StateMachine::ReleaseOwner(const std::string& owner, const std::string& pool) {
  v1::ReleaseRequest req;
  req.set_owner(owner);
  req.set_pool(pool);
  return Release(req).status();
}

const v1::PoolSpec* StateMachine::FindPool(absl::string_view name) const {
  auto it = pools_.find(name);
  return it == pools_.end() ? nullptr : &it->second.spec;
}

std::string StateMachine::PoolContaining(const IpAddress& address) const {
  for (const auto& [name, pool] : pools_) {
    if (pool.layout.family() == address.family() && pool.layout.cidr().Contains(address)) return name;
  }
  return {};
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

absl::StatusOr<std::optional<int64_t>> StateMachine::EarliestExpiry() {
  auto row = stmts_->min_expiry.Step();
  std::optional<int64_t> out;
  if (row.ok() && *row && !stmts_->min_expiry.IsNull(0)) out = stmts_->min_expiry.Int(0);
  stmts_->min_expiry.Reset();
  if (!row.ok()) return row.status();
  return out;
}

}  // namespace abode::storage

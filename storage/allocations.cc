#include "storage/allocations.h"

#include <algorithm>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "domain/validation.h"
#include "storage/rows.h"
#include "storage/schema.h"

namespace abode::storage {
namespace {

using domain::IpAddress;
using domain::Pool;
using domain::u128;

std::string Q(absl::string_view s) { return absl::StrCat("\"", s, "\""); }

std::string CursorBytes(const std::optional<u128>& cursor, domain::Family f) {
  return cursor ? IpAddress(f, *cursor).ToBytes() : std::string();
}

}  // namespace

struct Allocations::Statements {
  Statement insert_pool, delete_pool, update_pool;
  Statement insert_alloc, delete_alloc, update_alloc_lease, update_alloc_labels;
  Statement alloc_by_id, alloc_by_address, alloc_by_pool, alloc_by_node, alloc_expired, min_expiry, scan_all;
  Statement insert_history, prune_history;
};

Allocations::Allocations(Database& db, domain::Stamp& stamp, OwnerIndex& owners, AllocationLimits limits)
    : db_(db), stamp_(stamp), owners_(owners), commands_(pools_, *this, limits) {}

Allocations::~Allocations() = default;

absl::Status Allocations::PrepareStatements() {
  stmts_ = std::make_unique<Statements>();
  const std::string cols = kAllocationColumns;
  return db_.PrepareAll({
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
      {&stmts_->update_alloc_labels, "UPDATE allocations SET labels = ?, revision = ? WHERE id = ?"},
      {&stmts_->alloc_by_id, absl::StrCat("SELECT ", cols, " FROM allocations a WHERE a.id = ?")},
      {&stmts_->alloc_by_address,
       absl::StrCat("SELECT ", cols, " FROM allocations a WHERE a.network = ? AND a.address = ?")},
      {&stmts_->alloc_by_pool, absl::StrCat("SELECT ", cols, " FROM allocations a WHERE a.pool_id = ? ORDER BY a.id")},
      {&stmts_->alloc_by_node,
       absl::StrCat("SELECT ", cols, " FROM allocations a WHERE a.node = ? AND a.node <> '' ORDER BY a.id")},
      {&stmts_->alloc_expired,
       absl::StrCat("SELECT ", cols,
                    " FROM allocations a WHERE a.expire_ms > 0 AND a.expire_ms <= ? ORDER BY a.expire_ms, a.id LIMIT ?")},
      {&stmts_->min_expiry, "SELECT MIN(expire_ms) FROM allocations WHERE expire_ms > 0"},
      {&stmts_->scan_all,
       absl::StrCat("SELECT ", cols, ", p.name FROM allocations a JOIN pools p ON p.id = a.pool_id")},
      {&stmts_->insert_history,
       "INSERT INTO history (network, address, pool, owner, node, from_ms, to_ms, from_revision, to_revision, "
       "end_reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"},
      {&stmts_->prune_history, "DELETE FROM history WHERE to_revision > 0 AND to_ms < ?"},
  });
}

absl::Status Allocations::Load() {
  owners_.mutex().AssertHeld();
  owners_.Clear();
  pools_.Clear();
  absl::Status s = db_.ForEachRow(
      "SELECT id, spec, cursor, create_revision, create_time_ms FROM pools ORDER BY id", [&](const Statement& row) {
        Pool p;
        p.id = row.Int(0);
        const absl::string_view spec = row.Blob(1);
        if (!p.spec.ParseFromArray(spec.data(), static_cast<int>(spec.size()))) {
          return absl::DataLossError(absl::StrCat("pool row ", p.id, " has an unreadable spec"));
        }
        auto layout = domain::PoolLayout::FromSpec(p.spec);
        if (!layout.ok()) {
          return absl::DataLossError(absl::StrCat("pool ", p.spec.name(), ": ", layout.status().message()));
        }
        p.layout = std::move(*layout);
        p.free = p.layout.Assignable();
        if (!row.Blob(2).empty()) {
          auto c = IpAddress::FromBytes(row.Blob(2));
          if (c.ok()) p.cursor = c->value();
        }
        p.create_revision = static_cast<uint64_t>(row.Int(3));
        p.create_time_ms = row.Int(4);
        pools_.Add(std::move(p));
        return absl::OkStatus();
      });
  if (!s.ok()) return s;
  return db_.ForEachRow("SELECT pool_id, address, id, owner FROM allocations", [&](const Statement& row) {
    Pool* pool = pools_.ById(row.Int(0));
    auto addr = IpAddress::FromBytes(row.Blob(1));
    if (pool == nullptr || !addr.ok() || !pool->free.Take(addr->value())) {
      return absl::DataLossError(
          absl::StrCat("allocation row in pool ", row.Int(0), " is not a free address of its pool"));
    }
    ++pool->used;
    return AddToOwnerIndex(row.Text(3), row.Int(2), pool->id);
  });
}

// Adds a stored row to the owner index, refusing a second row of one owner in one pool (no SQLite constraint
// stands guard over that; a snapshot could carry one).
absl::Status Allocations::AddToOwnerIndex(absl::string_view owner, int64_t row_id, int64_t pool_id) {
  auto held = OfOwner(owner, pool_id);
  if (!held.ok()) return held.status();
  if (!held->empty()) {
    return absl::DataLossError(absl::StrCat("owner ", Q(owner), " holds two allocations in pool ", pool_id, " (rows ",
                                            held->front().row_id, " and ", row_id, ")"));
  }
  owners_.Add(owner, row_id, pool_id);
  return absl::OkStatus();
}

absl::StatusOr<Allocations::Rows> Allocations::Query(Statement& stmt) {
  Rows out;
  absl::Status s = stmt.EachRow([&] {
    const Pool* pool = pools_.ById(RowPoolId(stmt, 0));
    PoolFacts facts;
    if (pool != nullptr) {
      facts = PoolFacts{pool->spec.name(), pool->layout.cidr().length(),
                        pool->layout.gateway() ? pool->layout.gateway()->ToString() : std::string()};
    }
    domain::StoredAllocation& a = out.emplace_back();
    a.row_id = RowId(stmt, 0);
    AllocationFromRow(stmt, 0, facts, &a.allocation);
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<Allocations::Rows> Allocations::OfOwner(absl::string_view owner, int64_t pool_id) {
  Rows out;
  OwnerIndex::Rows candidates = owners_.Find(owner, pool_id);
  std::sort(candidates.begin(), candidates.end(), [](const OwnerIndex::Row& a, const OwnerIndex::Row& b) {
    return std::tie(a.pool_id, a.row_id) < std::tie(b.pool_id, b.row_id);
  });
  for (const OwnerIndex::Row& r : candidates) {
    stmts_->alloc_by_id.Bind(1, r.row_id);
    auto rows = Query(stmts_->alloc_by_id);
    if (!rows.ok()) return rows.status();
    for (auto& row : *rows) {
      if (row.allocation.owner() == owner) out.push_back(std::move(row));  // not another owner of the same hash
    }
  }
  return out;
}

absl::StatusOr<std::vector<v1::Allocation>> Allocations::OfOwner(absl::string_view owner) {
  auto rows = OfOwner(owner, 0);
  if (!rows.ok()) return rows.status();
  std::vector<v1::Allocation> out;
  for (auto& row : *rows) out.push_back(std::move(row.allocation));
  return out;
}

absl::Status Allocations::ForEach(absl::FunctionRef<void(v1::Allocation)> visit) {
  Statement& stmt = stmts_->scan_all;
  return stmt.EachRow([&] {
    v1::Allocation a;
    AllocationFromRow(stmt, 0, PoolFacts{std::string(stmt.Text(kAllocationColumnCount)), 0, ""}, &a);
    visit(std::move(a));
  });
}

absl::StatusOr<Allocations::Rows> Allocations::AtAddress(absl::string_view network, const IpAddress& address) {
  stmts_->alloc_by_address.Bind(1, network).BindBlob(2, address.ToBytes());
  return Query(stmts_->alloc_by_address);
}

absl::StatusOr<Allocations::Rows> Allocations::InPool(int64_t pool_id) {
  stmts_->alloc_by_pool.Bind(1, pool_id);
  return Query(stmts_->alloc_by_pool);
}

absl::StatusOr<Allocations::Rows> Allocations::OnNode(absl::string_view node) {
  stmts_->alloc_by_node.Bind(1, node);
  return Query(stmts_->alloc_by_node);
}

absl::StatusOr<Allocations::Rows> Allocations::ExpiredAt(int64_t time_ms, int limit) {
  stmts_->alloc_expired.Bind(1, time_ms).Bind(2, limit);
  return Query(stmts_->alloc_expired);
}

// Every command below follows one rule: the domain's handler decides and describes the changes, Commit
// writes them to SQLite and only then changes memory, so a command refused anywhere (its savepoint rolls
// back) leaves memory untouched.

CommandOutcome Allocations::CreatePool(const v1::CreatePoolRequest& req, const domain::NodeModel& nodes) {
  AllocationChanges none;
  return Commit(commands_.CreatePool(req, nodes, stamp_, changes_), none);
}

absl::Status Allocations::WriteRemoval(const domain::AllocationChangeSet::Removal& r) {
  if (absl::Status s = stmts_->delete_alloc.Bind(1, r.row_id).Run(); !s.ok()) return s;
  // History holds ended holdings; the current holder is the allocation row itself.
  const v1::Allocation& a = r.allocation;
  stmts_->insert_history.Bind(1, r.pool->spec.network())
      .BindBlob(2, IpAddress(r.pool->layout.family(), r.value).ToBytes())
      .Bind(3, r.pool->spec.name())
      .Bind(4, a.owner())
      .Bind(5, a.node())
      .Bind(6, a.create_time_unix_ms())
      .Bind(7, stamp_.time_ms)
      .Bind(8, static_cast<int64_t>(a.create_revision()))
      .Bind(9, static_cast<int64_t>(r.revision))
      .Bind(10, r.reason);
  return stmts_->insert_history.Run();
}

absl::Status Allocations::Write(const domain::AllocationChangeSet& c) {
  if (c.has_new_pool) {
    const Pool& p = c.new_pool;
    std::string blob;
    p.spec.SerializeToString(&blob);
    stmts_->insert_pool.Bind(1, p.id)
        .Bind(2, p.spec.name())
        .Bind(3, p.spec.network())
        .BindBlob(4, blob)
        .Bind(5, static_cast<int64_t>(p.create_revision))
        .Bind(6, p.create_time_ms);
    if (absl::Status s = stmts_->insert_pool.Run(); !s.ok()) return s;
  }
  inserted_rows_.clear();
  for (const domain::AllocationChangeSet::Insert& in : c.inserts) {
    const v1::AllocateRequest& req = *in.request;
    const domain::Pool& pool = *in.pool;
    stmts_->insert_alloc.Bind(1, pool.id)
        .Bind(2, pool.spec.network())
        .BindBlob(3, IpAddress(pool.layout.family(), in.value).ToBytes())
        .Bind(4, req.owner())
        .Bind(5, req.node())
        .Bind(6, domain::EncodeLabels(req.labels()))
        .Bind(7, req.ttl_seconds())
        .Bind(8, in.expire_ms)
        .Bind(9, stamp_.time_ms)
        .Bind(10, static_cast<int64_t>(in.revision))
        .Bind(11, static_cast<int64_t>(in.revision));
    if (absl::Status s = stmts_->insert_alloc.Run(); !s.ok()) return s;
    inserted_rows_.push_back(db_.last_insert_rowid());
  }
  for (const auto& r : c.removals) {
    if (absl::Status s = WriteRemoval(r); !s.ok()) return s;
  }
  for (const auto& r : c.renewals) {
    stmts_->update_alloc_lease.Bind(1, r.ttl_seconds)
        .Bind(2, r.expire_ms)
        .Bind(3, static_cast<int64_t>(r.revision))
        .Bind(4, r.row_id);
    if (absl::Status s = stmts_->update_alloc_lease.Run(); !s.ok()) return s;
  }
  for (const auto& r : c.relabels) {
    stmts_->update_alloc_labels.Bind(1, r.labels).Bind(2, static_cast<int64_t>(r.revision)).Bind(3, r.row_id);
    if (absl::Status s = stmts_->update_alloc_labels.Run(); !s.ok()) return s;
  }
  if (c.deleted_pool != nullptr) return stmts_->delete_pool.Bind(1, c.deleted_pool->id).Run();
  return absl::OkStatus();
}

CommandOutcome Allocations::CommitChangeSet(domain::AllocationChangeSet& set, CommandOutcome outcome,
                                            AllocationChanges& changes) {
  if (!outcome.ok()) return outcome;
  if (absl::Status s = Write(set); !s.ok()) return s;
  // Written: now memory.
  stamp_.revision = set.revision;
  for (size_t i = 0; i < set.inserts.size(); ++i) {
    const domain::AllocationChangeSet::Insert& in = set.inserts[i];
    owners_.Add(in.request->owner(), inserted_rows_[i], in.pool->id);
    changes.push_back(AllocationChange{
        in.result_index < 0 ? outcome->allocation() : outcome->allocate_many().allocations(in.result_index), true});
  }
  for (auto& r : set.removals) owners_.Remove(r.allocation.owner(), r.row_id);
  commands_.CommitToPools(set);
  for (auto& r : set.removals) changes.push_back(AllocationChange{std::move(r.allocation), false});
  for (const auto& r : set.relabels) {
    changes.push_back(AllocationChange{outcome->update_labels().allocations(r.result_index), true, true});
  }
  set.Clear(stamp_.revision);
  return outcome;
}

CommandOutcome Allocations::DeletePool(const v1::DeletePoolRequest& req, AllocationChanges& changes) {
  return Commit(commands_.DeletePool(req, stamp_, changes_), changes);
}

CommandOutcome Allocations::Allocate(const v1::AllocateRequest& req, AllocationChanges& changes) {
  return Commit(commands_.Allocate(req, stamp_, changes_), changes);
}

CommandOutcome Allocations::AllocateMany(const v1::AllocateManyRequest& req, AllocationChanges& changes) {
  return Commit(commands_.AllocateMany(req, stamp_, changes_), changes);
}

CommandOutcome Allocations::Release(const v1::ReleaseRequest& req, AllocationChanges& changes) {
  return Commit(commands_.Release(req, stamp_, changes_), changes);
}

CommandOutcome Allocations::Renew(const v1::RenewRequest& req) {
  AllocationChanges none;
  return Commit(commands_.Renew(req, stamp_, changes_), none);
}

CommandOutcome Allocations::UpdateLabels(const v1::UpdateLabelsRequest& req, AllocationChanges& changes) {
  return Commit(commands_.UpdateLabels(req, stamp_, changes_), changes);
}

CommandOutcome Allocations::Expire(AllocationChanges& changes) {
  return Commit(commands_.Expire(stamp_, changes_), changes);
}

CommandOutcome Allocations::PruneHistory(const v1::PruneHistory& req) {
  if (absl::Status s = stmts_->prune_history.Bind(1, req.older_than_unix_ms()).Run(); !s.ok()) return s;
  v1::CommandResult result;
  result.set_changed(static_cast<uint64_t>(db_.changes()));
  return result;
}

absl::Status Allocations::WriteDirtyPools() {
  for (auto& [name, pool] : pools_) {
    if (!pool.dirty) continue;
    stmts_->update_pool.Bind(1, static_cast<int64_t>(pool.used))
        .BindBlob(2, CursorBytes(pool.cursor, pool.layout.family()))
        .Bind(3, pool.id);
    if (absl::Status s = stmts_->update_pool.Run(); !s.ok()) return s;
    pool.dirty = false;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<int64_t>> Allocations::EarliestExpiry() {
  auto row = stmts_->min_expiry.Step();
  std::optional<int64_t> out;
  if (row.ok() && *row && !stmts_->min_expiry.IsNull(0)) out = stmts_->min_expiry.Int(0);
  stmts_->min_expiry.Reset();
  if (!row.ok()) return row.status();
  return out;
}

}  // namespace abode::storage

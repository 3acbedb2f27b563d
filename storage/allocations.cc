#include "storage/allocations.h"

#include <algorithm>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "domain/allocation_policy.h"
#include "domain/validation.h"
#include "google/protobuf/util/message_differencer.h"
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
  Statement insert_alloc, delete_alloc, update_alloc_lease;
  Statement alloc_by_id, alloc_by_address, alloc_by_pool, alloc_expired, min_expiry, scan_all;
  Statement insert_history, prune_history;
};

Allocations::Allocations(Database& db, domain::Stamp& stamp, OwnerIndex& owners, AllocationLimits limits)
    : db_(db), stamp_(stamp), owners_(owners), limits_(limits) {}

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
      {&stmts_->alloc_by_id, absl::StrCat("SELECT ", cols, " FROM allocations a WHERE a.id = ?")},
      {&stmts_->alloc_by_address,
       absl::StrCat("SELECT ", cols, " FROM allocations a WHERE a.network = ? AND a.address = ?")},
      {&stmts_->alloc_by_pool, absl::StrCat("SELECT ", cols, " FROM allocations a WHERE a.pool_id = ? ORDER BY a.id")},
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
  auto held = RowsOfOwner(owner, pool_id);
  if (!held.ok()) return held.status();
  if (!held->empty()) {
    return absl::DataLossError(absl::StrCat("owner ", Q(owner), " holds two allocations in pool ", pool_id, " (rows ",
                                            held->front().first, " and ", row_id, ")"));
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
    v1::Allocation a;
    AllocationFromRow(stmt, 0, facts, &a);
    out.emplace_back(RowId(stmt, 0), std::move(a));
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<Allocations::Rows> Allocations::RowsOfOwner(absl::string_view owner, int64_t pool_id) {
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
      if (row.second.owner() == owner) out.push_back(std::move(row));  // not another owner of the same hash
    }
  }
  return out;
}

absl::StatusOr<std::vector<v1::Allocation>> Allocations::OfOwner(absl::string_view owner) {
  auto rows = RowsOfOwner(owner, 0);
  if (!rows.ok()) return rows.status();
  std::vector<v1::Allocation> out;
  for (auto& [id, a] : *rows) out.push_back(std::move(a));
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

// Every command below follows one rule: check everything, write to SQLite, and only then change the
// in-memory index, so a command refused half-way (the savepoint rolls back) leaves memory untouched.

CommandOutcome Allocations::CreatePool(const v1::CreatePoolRequest& req, const domain::NodeModel& nodes) {
  auto canonical = domain::CanonicalizePool(req.pool());
  if (!canonical.ok()) return canonical.status();
  const v1::PoolSpec& spec = canonical->spec;
  if (const Pool* existing = pools_.Find(spec.name()); existing != nullptr) {
    // A retried create of the same pool succeeds; a different pool under the same name does not.
    if (google::protobuf::util::MessageDifferencer::Equals(existing->spec, spec)) {
      v1::CommandResult same;
      *same.mutable_pool() = existing->Message();
      return same;
    }
    return absl::AlreadyExistsError(absl::StrCat("pool.name: pool ", Q(spec.name()), " already exists"));
  }
  if (absl::Status s = pools_.CheckNoOverlap(*canonical); !s.ok()) return s;
  if (auto magic = nodes.MagicInside(canonical->layout.cidr())) {
    return absl::FailedPreconditionError(absl::StrCat("pool.cidr: ", spec.cidr(), " contains magic address ",
                                                      Q(magic->first), " (", magic->second,
                                                      "); delete it or use another range"));
  }
  ++stamp_.revision;
  Pool p;
  p.id = pools_.next_id();
  p.spec = spec;
  p.layout = std::move(canonical->layout);
  p.free = p.layout.Assignable();
  p.create_revision = stamp_.revision;
  p.create_time_ms = stamp_.time_ms;
  std::string blob;
  spec.SerializeToString(&blob);
  stmts_->insert_pool.Bind(1, p.id)
      .Bind(2, spec.name())
      .Bind(3, spec.network())
      .BindBlob(4, blob)
      .Bind(5, static_cast<int64_t>(p.create_revision))
      .Bind(6, p.create_time_ms);
  if (absl::Status s = stmts_->insert_pool.Run(); !s.ok()) return s;
  v1::CommandResult result;
  *result.mutable_pool() = pools_.Add(std::move(p)).Message();
  return result;
}

absl::Status Allocations::Free(const Pool& pool, int64_t row_id, const v1::Allocation& alloc,
                               absl::string_view reason, AllocationChanges& changes) {
  auto addr = IpAddress::Parse(alloc.address(), "allocation.address");
  if (!addr.ok()) return absl::DataLossError(addr.status().message());
  ++stamp_.revision;
  if (absl::Status s = stmts_->delete_alloc.Bind(1, row_id).Run(); !s.ok()) return s;
  changes.push_back(AllocationChange{alloc, false});
  // History holds ended holdings; the current holder is the allocation row itself.
  stmts_->insert_history.Bind(1, pool.spec.network())
      .BindBlob(2, addr->ToBytes())
      .Bind(3, pool.spec.name())
      .Bind(4, alloc.owner())
      .Bind(5, alloc.node())
      .Bind(6, alloc.create_time_unix_ms())
      .Bind(7, stamp_.time_ms)
      .Bind(8, static_cast<int64_t>(alloc.create_revision()))
      .Bind(9, static_cast<int64_t>(stamp_.revision))
      .Bind(10, reason);
  return stmts_->insert_history.Run();
}

absl::Status Allocations::FreeAll(Rows& rows, absl::string_view reason, AllocationChanges& changes) {
  std::vector<std::pair<Pool*, u128>> gives;
  for (auto& [id, a] : rows) {
    Pool* pool = pools_.Find(a.pool());
    if (pool == nullptr) return absl::InternalError(absl::StrCat("allocation of ", a.address(), " has no pool"));
    if (absl::Status s = Free(*pool, id, a, reason, changes); !s.ok()) return s;
    gives.emplace_back(pool, IpAddress::Parse(a.address(), "address")->value());
    a.set_revision(stamp_.revision);
  }
  for (size_t i = 0; i < rows.size(); ++i) {
    auto& [pool, v] = gives[i];
    pool->free.Give(v);
    --pool->used;
    pool->dirty = true;
    owners_.Remove(rows[i].second.owner(), rows[i].first);
  }
  return absl::OkStatus();
}

CommandOutcome Allocations::DeletePool(const v1::DeletePoolRequest& req, AllocationChanges& changes) {
  auto pool = pools_.Named(req.name(), "name");
  if (!pool.ok()) return pool.status();
  Pool& p = **pool;
  if (p.used > 0 && !req.force()) {
    return absl::FailedPreconditionError(absl::StrCat("pool ", Q(p.spec.name()), " still has ", p.used,
                                                      " allocations; release them first or delete with force"));
  }
  stmts_->alloc_by_pool.Bind(1, p.id);
  auto held = Query(stmts_->alloc_by_pool);
  if (!held.ok()) return held.status();
  for (const auto& [id, a] : *held) {
    if (absl::Status s = Free(p, id, a, "pool-deleted", changes); !s.ok()) return s;
  }
  ++stamp_.revision;
  if (absl::Status s = stmts_->delete_pool.Bind(1, p.id).Run(); !s.ok()) return s;
  v1::CommandResult result;
  result.mutable_delete_pool()->set_released(held->size());
  result.mutable_delete_pool()->set_revision(stamp_.revision);
  for (const auto& [id, a] : *held) owners_.Remove(a.owner(), id);
  pools_.Remove(req.name());
  return result;
}

// Restarts the lease of allocation `id` (held as `a`) for `ttl_seconds`, or for its own TTL when that is 0.
// An allocation without a TTL has no lease: nothing changes.
absl::Status Allocations::RenewLease(int64_t id, int64_t ttl_seconds, v1::Allocation& a) {
  const int64_t ttl = ttl_seconds > 0 ? ttl_seconds : a.ttl_seconds();
  if (ttl <= 0) return absl::OkStatus();
  ++stamp_.revision;
  a.set_ttl_seconds(ttl);
  a.set_expire_time_unix_ms(stamp_.time_ms + ttl * 1000);
  a.set_revision(stamp_.revision);
  stmts_->update_alloc_lease.Bind(1, ttl)
      .Bind(2, a.expire_time_unix_ms())
      .Bind(3, static_cast<int64_t>(stamp_.revision))
      .Bind(4, id);
  return stmts_->update_alloc_lease.Run();
}

// The answer to an Allocate whose owner already holds an address in `pool` (or the error that kept it from
// finding out); nothing when the owner holds none.
std::optional<CommandOutcome> Allocations::HeldByOwner(const v1::AllocateRequest& req, const Pool& pool,
                                                       const std::optional<IpAddress>& wanted) {
  auto existing = RowsOfOwner(req.owner(), pool.id);
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

CommandOutcome Allocations::Allocate(const v1::AllocateRequest& req, AllocationChanges& changes) {
  if (absl::Status s = domain::CheckAllocateRequest(req, limits_.max_ttl_seconds); !s.ok()) return s;
  auto found = pools_.Named(req.pool(), "pool");
  if (!found.ok()) return found.status();
  Pool& pool = **found;
  auto wanted = domain::RequestedAddress(pool, req.address());
  if (!wanted.ok()) return wanted.status();

  // Idempotency: the owner already holds an address in this pool. The owner index answers a new owner (the
  // common case) without touching SQLite.
  if (auto held = HeldByOwner(req, pool, *wanted)) return std::move(*held);
  u128 value = 0;
  if (*wanted) {
    const IpAddress& w = **wanted;
    if (!pool.free.Contains(w.value())) {
      stmts_->alloc_by_address.Bind(1, pool.spec.network()).BindBlob(2, w.ToBytes());
      auto holder = Query(stmts_->alloc_by_address);
      if (!holder.ok()) return holder.status();
      if (holder->empty()) return absl::InternalError(absl::StrCat("address: index and store disagree on ", w.ToString()));
      return absl::AlreadyExistsError(absl::StrCat("address: ", w.ToString(), " is held by owner ",
                                                   Q(holder->front().second.owner()), " in pool ",
                                                   Q(holder->front().second.pool())));
    }
    value = w.value();
  } else {
    std::optional<u128> proposed = domain::ProposeAddress(pool);
    if (!proposed) {
      return absl::ResourceExhaustedError(absl::StrCat("pool ", Q(pool.spec.name()), " is full: all ",
                                                       domain::U128ToString(pool.layout.size()),
                                                       " addresses are allocated"));
    }
    value = *proposed;
  }

  const IpAddress address(pool.layout.family(), value);
  ++stamp_.revision;
  v1::CommandResult result;
  v1::Allocation& a = *result.mutable_allocation();
  a = domain::NewAllocation(pool, address, req, stamp_);
  stmts_->insert_alloc.Bind(1, pool.id)
      .Bind(2, pool.spec.network())
      .BindBlob(3, address.ToBytes())
      .Bind(4, req.owner())
      .Bind(5, req.node())
      .Bind(6, domain::EncodeLabels(req.labels()))
      .Bind(7, req.ttl_seconds())
      .Bind(8, a.expire_time_unix_ms())
      .Bind(9, stamp_.time_ms)
      .Bind(10, static_cast<int64_t>(stamp_.revision))
      .Bind(11, static_cast<int64_t>(stamp_.revision));
  if (absl::Status s = stmts_->insert_alloc.Run(); !s.ok()) {
    --stamp_.revision;  // nothing was written
    return s;
  }

  owners_.Add(req.owner(), db_.last_insert_rowid(), pool.id);
  pool.free.Take(value);
  ++pool.used;
  pool.cursor = value;
  pool.dirty = true;
  changes.push_back(AllocationChange{a, true});
  return result;
}

// The rows a Release by address names: the holders of the address in the pool's network, the request's
// network, or every network (then at most one may hold it).
absl::StatusOr<Allocations::Rows> Allocations::HoldersOf(const v1::ReleaseRequest& req, const Pool* only_pool) {
  auto addr = IpAddress::Parse(req.address(), "address");
  if (!addr.ok()) return addr.status();
  if (absl::Status s = domain::ValidateName(req.network(), "network", true); !s.ok()) return s;
  std::vector<std::string> networks;
  if (only_pool) {
    networks.push_back(only_pool->spec.network());
  } else if (!req.network().empty()) {
    networks.push_back(req.network());
  } else {
    networks = pools_.Networks();
  }
  Rows victims;
  for (const std::string& net : networks) {
    stmts_->alloc_by_address.Bind(1, net).BindBlob(2, addr->ToBytes());
    auto found = Query(stmts_->alloc_by_address);
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
  return victims;
}

CommandOutcome Allocations::Release(const v1::ReleaseRequest& req, AllocationChanges& changes) {
  if (req.owner().empty() == req.address().empty()) {
    return absl::InvalidArgumentError("owner, address: set exactly one of owner or address");
  }
  Pool* only_pool = nullptr;
  if (!req.pool().empty()) {
    auto p = pools_.Named(req.pool(), "pool");
    if (!p.ok()) return p.status();
    only_pool = *p;
  }
  absl::StatusOr<Rows> victims;
  if (!req.owner().empty()) {
    if (absl::Status s = domain::ValidateOwner(req.owner(), "owner"); !s.ok()) return s;
    victims = RowsOfOwner(req.owner(), only_pool ? only_pool->id : 0);
  } else {
    victims = HoldersOf(req, only_pool);
  }
  if (!victims.ok()) return victims.status();
  if (absl::Status s = FreeAll(*victims, "released", changes); !s.ok()) return s;
  v1::CommandResult result;
  for (auto& [id, a] : *victims) *result.mutable_release()->add_released() = std::move(a);
  result.mutable_release()->set_revision(stamp_.revision);
  return result;
}

CommandOutcome Allocations::Renew(const v1::RenewRequest& req) {
  if (absl::Status s = domain::ValidateOwner(req.owner(), "owner"); !s.ok()) return s;
  if (absl::Status s = domain::CheckTtl(req.ttl_seconds(), limits_.max_ttl_seconds, "ttl_seconds"); !s.ok()) return s;
  Pool* only_pool = nullptr;
  if (!req.pool().empty()) {
    auto p = pools_.Named(req.pool(), "pool");
    if (!p.ok()) return p.status();
    only_pool = *p;
  }
  auto found = RowsOfOwner(req.owner(), only_pool ? only_pool->id : 0);
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

CommandOutcome Allocations::Expire(AllocationChanges& changes) {
  stmts_->alloc_expired.Bind(1, stamp_.time_ms).Bind(2, limits_.max_expire_per_command);
  auto found = Query(stmts_->alloc_expired);
  if (!found.ok()) return found.status();
  if (absl::Status s = FreeAll(*found, "expired", changes); !s.ok()) return s;
  v1::CommandResult result;
  result.set_changed(found->size());
  return result;
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

#include "storage/state_reader.h"

#include <charconv>

#include "absl/cleanup/cleanup.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "domain/address.h"
#include "domain/pool_layout.h"
#include "storage/rows.h"
#include "storage/schema.h"
#include "domain/validation.h"

namespace abode::storage {

using domain::DecodeLabels;
using domain::IpAddress;
using domain::ParseLabelSelector;
using domain::PoolLayout;
using domain::SelectorMatches;
using domain::U128ToString;
using domain::ValidateName;
using domain::ValidateNodeName;
using domain::ValidateOwner;
using domain::u128;
namespace {

constexpr int kDefaultPageSize = 500;
constexpr int kMaxPageSize = 5000;
constexpr char kTokenPrefix[] = "a1.";

std::string Q(absl::string_view s) { return absl::StrCat("\"", s, "\""); }

struct PoolRow {
  int64_t id = 0;
  v1::Pool pool;
  PoolFacts facts;
};

absl::StatusOr<PoolRow> DecodePool(const Statement& stmt) {
  PoolRow r;
  r.id = stmt.Int(0);
  const absl::string_view spec = stmt.Blob(1);
  if (!r.pool.mutable_spec()->ParseFromArray(spec.data(), static_cast<int>(spec.size()))) {
    return absl::DataLossError(absl::StrCat("pool row ", r.id, " has an unreadable spec"));
  }
  auto layout = PoolLayout::FromSpec(r.pool.spec());
  if (!layout.ok()) return absl::DataLossError(layout.status().message());
  const u128 used = static_cast<u128>(stmt.Int(2));
  r.pool.set_size(U128ToString(layout->size()));
  r.pool.set_used(static_cast<uint64_t>(stmt.Int(2)));
  r.pool.set_free(U128ToString(layout->size() - used));
  r.pool.set_create_revision(static_cast<uint64_t>(stmt.Int(3)));
  r.pool.set_create_time_unix_ms(stmt.Int(4));
  r.facts = PoolFacts{r.pool.spec().name(), layout->cidr().length(),
                      layout->gateway() ? layout->gateway()->ToString() : std::string()};
  return r;
}

constexpr char kPoolColumns[] = "id, spec, used, create_revision, create_time_ms";

// All pools by id, read inside the caller's transaction.
absl::StatusOr<absl::flat_hash_map<int64_t, PoolRow>> AllPools(Database& db) {
  absl::flat_hash_map<int64_t, PoolRow> out;
  absl::Status s =
      db.ForEachRow(absl::StrCat("SELECT ", kPoolColumns, " FROM pools ORDER BY id"), [&](const Statement& row) {
        auto p = DecodePool(row);
        if (!p.ok()) return p.status();
        out.emplace(p->id, std::move(*p));
        return absl::OkStatus();
      });
  if (!s.ok()) return s;
  return out;
}

const PoolRow* FindPool(const absl::flat_hash_map<int64_t, PoolRow>& pools, absl::string_view name) {
  for (const auto& [id, p] : pools) {
    if (p.pool.spec().name() == name) return &p;
  }
  return nullptr;
}

// The pool a request's `pool` field names: null for "" (every pool), NOT_FOUND naming the field when the
// snapshot has no such pool.
absl::StatusOr<const PoolRow*> RequestedPool(const absl::flat_hash_map<int64_t, PoolRow>& pools,
                                             const std::string& name) {
  if (name.empty()) return nullptr;
  const PoolRow* p = FindPool(pools, name);
  if (p == nullptr) return absl::NotFoundError(absl::StrCat("pool: pool ", Q(name), " not found"));
  return p;
}

absl::StatusOr<uint64_t> ReadRevision(Database& db) {
  auto stmt = db.Prepare("SELECT value FROM meta WHERE key = 'revision'");
  if (!stmt.ok()) return stmt.status();
  auto row = stmt->Step();
  if (!row.ok()) return row.status();
  return *row ? static_cast<uint64_t>(stmt->Int(0)) : 0;
}

// Collects allocation rows from a prepared statement whose columns are kAllocationColumns.
absl::Status CollectAllocations(Statement& stmt, const absl::flat_hash_map<int64_t, PoolRow>& pools,
                                google::protobuf::RepeatedPtrField<v1::Allocation>* out) {
  return stmt.EachRow([&] {
    auto it = pools.find(RowPoolId(stmt, 0));
    AllocationFromRow(stmt, 0, it == pools.end() ? PoolFacts{} : it->second.facts, out->Add());
  });
}

// Appends the allocations holding `addr` (narrowed like the history query) as open history entries.
absl::Status AddCurrentHolders(Database& db, const IpAddress& addr, const v1::GetHistoryRequest& req,
                               google::protobuf::RepeatedPtrField<v1::HistoryEntry>* out) {
  auto pools = AllPools(db);
  if (!pools.ok()) return pools.status();
  std::vector<std::string> networks;
  if (!req.network().empty()) {
    networks.push_back(req.network());
  } else {
    for (const auto& [id, p] : *pools) {
      if (std::find(networks.begin(), networks.end(), p.pool.spec().network()) == networks.end()) {
        networks.push_back(p.pool.spec().network());
      }
    }
  }
  auto stmt = db.Prepare(absl::StrCat("SELECT ", kAllocationColumns, " FROM allocations a WHERE a.network = ? AND a.address = ?"));
  if (!stmt.ok()) return stmt.status();
  for (const std::string& net : networks) {
    stmt->Bind(1, net).BindBlob(2, addr.ToBytes());
    absl::Status s = stmt->EachRow([&] {
      auto it = pools->find(RowPoolId(*stmt, 0));
      v1::Allocation a;
      AllocationFromRow(*stmt, 0, it == pools->end() ? PoolFacts{} : it->second.facts, &a);
      if (!req.pool().empty() && a.pool() != req.pool()) return;
      if (req.at_time_unix_ms() != 0 && a.create_time_unix_ms() > req.at_time_unix_ms()) return;
      v1::HistoryEntry* e = out->Add();
      e->set_network(a.network());
      e->set_pool(a.pool());
      e->set_address(a.address());
      e->set_owner(a.owner());
      e->set_node(a.node());
      e->set_from_time_unix_ms(a.create_time_unix_ms());
      e->set_from_revision(a.create_revision());
    });
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

// What a query by owner and pool reads first: every pool (the first read of a transaction, which fixes its
// snapshot); the owner's rows, when an owner is given, found in the owner index while sharing its mutex so
// that they are those of the snapshot; and the pool the request names (null: every pool).
struct PinnedRead {
  absl::flat_hash_map<int64_t, PoolRow> pools;
  OwnerIndex::Rows owned;
  const PoolRow* only = nullptr;  // into `pools`
};
absl::StatusOr<std::unique_ptr<PinnedRead>> PinSnapshot(Database& db, const OwnerIndex& owners,
                                                        const std::string& owner, const std::string& pool) {
  auto out = std::make_unique<PinnedRead>();
  auto pools = [&]() -> absl::StatusOr<absl::flat_hash_map<int64_t, PoolRow>> {
    if (owner.empty()) return AllPools(db);
    absl::ReaderMutexLock lock(&owners.mutex());
    auto read = AllPools(db);
    if (read.ok()) out->owned = owners.Find(owner);
    return read;
  }();
  if (!pools.ok()) return pools.status();
  out->pools = std::move(*pools);
  auto requested = RequestedPool(out->pools, pool);
  if (!requested.ok()) return requested.status();
  out->only = *requested;
  return out;
}

// " AND a.id IN (?, ?, ...)" for `n` ids.
std::string IdsIn(size_t n) {
  std::string out = " AND a.id IN (";
  for (size_t i = 0; i < n; ++i) absl::StrAppend(&out, i == 0 ? "?" : ", ?");
  return absl::StrCat(out, ")");
}

}  // namespace

class StateReader::Lease {
 public:
  Lease(StateReader* reader, std::unique_ptr<Database> db) : reader_(reader), db_(std::move(db)) {}
  ~Lease() {
    (void)db_->Exec("COMMIT");
    reader_->Return(std::move(db_));
  }
  Database& db() { return *db_; }

 private:
  StateReader* reader_;
  std::unique_ptr<Database> db_;
};

absl::StatusOr<std::unique_ptr<StateReader>> StateReader::Open(const std::string& db_path,
                                                               std::shared_ptr<OwnerIndex> owners) {
  if (owners == nullptr) return absl::InvalidArgumentError("state reader: the owner index is missing");
  std::unique_ptr<StateReader> r(new StateReader(db_path, std::move(owners)));
  auto first = r->Acquire();  // fail early if the database is not there
  if (!first.ok()) return first.status();
  r->Return(std::move(*first));
  return r;
}

absl::StatusOr<std::unique_ptr<Database>> StateReader::Acquire() {
  {
    absl::MutexLock lock(&mu_);
    if (!idle_.empty()) {
      auto db = std::move(idle_.back());
      idle_.pop_back();
      return db;
    }
  }
  auto db = Database::Open(db_path_, /*read_only=*/true);
  if (!db.ok()) return db.status();
  if (absl::Status s = db->Exec(kReaderPragmas); !s.ok()) return s;
  return std::make_unique<Database>(std::move(*db));
}

void StateReader::Return(std::unique_ptr<Database> db) {
  absl::MutexLock lock(&mu_);
  if (idle_.size() < 16) idle_.push_back(std::move(db));
}

#define ABODE_READ_TXN(lease)                              \
  auto lease##_db = Acquire();                             \
  if (!lease##_db.ok()) return lease##_db.status();        \
  Lease lease(this, std::move(*lease##_db));               \
  if (absl::Status s = lease.db().Exec("BEGIN"); !s.ok()) return s

absl::StatusOr<uint64_t> StateReader::Revision() {
  ABODE_READ_TXN(lease);
  return ReadRevision(lease.db());
}

absl::StatusOr<v1::Pool> StateReader::GetPool(const v1::GetPoolRequest& req) {
  if (absl::Status s = ValidateName(req.name(), "name", false); !s.ok()) return s;
  ABODE_READ_TXN(lease);
  auto stmt = lease.db().Prepare(absl::StrCat("SELECT ", kPoolColumns, " FROM pools WHERE name = ?"));
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, req.name());
  auto row = stmt->Step();
  if (!row.ok()) return row.status();
  if (!*row) return absl::NotFoundError(absl::StrCat("name: pool ", Q(req.name()), " not found"));
  auto p = DecodePool(*stmt);
  if (!p.ok()) return p.status();
  return std::move(p->pool);
}

absl::StatusOr<v1::ListPoolsResponse> StateReader::ListPools(const v1::ListPoolsRequest& req) {
  if (absl::Status s = ValidateName(req.network(), "network", true); !s.ok()) return s;
  ABODE_READ_TXN(lease);
  v1::ListPoolsResponse out;
  absl::Status s = lease.db().ForEachRow(
      absl::StrCat("SELECT ", kPoolColumns, " FROM pools ORDER BY name"), [&](const Statement& row) {
        auto p = DecodePool(row);
        if (!p.ok()) return p.status();
        if (req.network().empty() || p->pool.spec().network() == req.network()) *out.add_pools() = std::move(p->pool);
        return absl::OkStatus();
      });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<v1::GetAllocationResponse> StateReader::GetAllocation(const v1::GetAllocationRequest& req) {
  if (req.owner().empty() == req.address().empty()) {
    return absl::InvalidArgumentError("owner, address: set exactly one of owner or address");
  }
  if (!req.owner().empty()) {
    if (absl::Status s = ValidateOwner(req.owner(), "owner"); !s.ok()) return s;
  }
  ABODE_READ_TXN(lease);
  auto pinned = PinSnapshot(lease.db(), *owners_, req.owner(), req.pool());
  if (!pinned.ok()) return pinned.status();
  const auto& [pools, owned, only] = **pinned;
  v1::GetAllocationResponse out;
  const std::string cols = kAllocationColumns;
  if (!req.owner().empty()) {
    if (!owned.empty()) {
      auto stmt = lease.db().Prepare(absl::StrCat("SELECT ", cols, " FROM allocations a WHERE a.owner = ?",
                                                  only ? " AND a.pool_id = ?" : "", IdsIn(owned.size()),
                                                  " ORDER BY a.pool_id"));
      if (!stmt.ok()) return stmt.status();
      int i = 1;
      stmt->Bind(i++, req.owner());
      if (only) stmt->Bind(i++, only->id);
      for (const OwnerIndex::Row& r : owned) stmt->Bind(i++, r.row_id);
      if (absl::Status s = CollectAllocations(*stmt, pools, out.mutable_allocations()); !s.ok()) return s;
    }
  } else {
    auto addr = IpAddress::Parse(req.address(), "address");
    if (!addr.ok()) return addr.status();
    if (absl::Status s = ValidateName(req.network(), "network", true); !s.ok()) return s;
    auto stmt = lease.db().Prepare(absl::StrCat("SELECT ", cols, " FROM allocations a WHERE a.network = ? AND a.address = ?"));
    if (!stmt.ok()) return stmt.status();
    std::vector<std::string> networks;
    if (only) {
      networks.push_back(only->pool.spec().network());
    } else if (!req.network().empty()) {
      networks.push_back(req.network());
    } else {
      for (const auto& [id, p] : pools) {
        if (std::find(networks.begin(), networks.end(), p.pool.spec().network()) == networks.end()) {
          networks.push_back(p.pool.spec().network());
        }
      }
      std::sort(networks.begin(), networks.end());
    }
    for (const auto& net : networks) {
      stmt->Bind(1, net).BindBlob(2, addr->ToBytes());
      if (absl::Status s = CollectAllocations(*stmt, pools, out.mutable_allocations()); !s.ok()) return s;
      stmt->Reset();
    }
    if (only) {
      auto* list = out.mutable_allocations();
      for (int i = list->size() - 1; i >= 0; --i) {
        if (list->Get(i).pool() != req.pool()) list->DeleteSubrange(i, 1);
      }
    }
  }
  if (out.allocations().empty()) {
    return absl::NotFoundError(req.owner().empty()
                                   ? absl::StrCat("address: ", req.address(), " is not allocated")
                                   : absl::StrCat("owner: ", Q(req.owner()), " holds no allocation"));
  }
  return out;
}

absl::StatusOr<v1::ListAllocationsResponse> StateReader::ListAllocations(const v1::ListAllocationsRequest& req) {
  v1::ListAllocationsResponse out;
  if (absl::Status s = ListAllocationsInto(req, &out); !s.ok()) return s;
  return out;
}

absl::Status StateReader::ListAllocationsInto(const v1::ListAllocationsRequest& req,
                                              v1::ListAllocationsResponse* out) {
  if (req.page_size() < 0) return absl::InvalidArgumentError("page_size: must not be negative");
  const int page_size = req.page_size() == 0 ? kDefaultPageSize : std::min(req.page_size(), kMaxPageSize);
  int64_t after = 0;
  if (!req.page_token().empty()) {
    absl::string_view t = req.page_token();
    if (!absl::StartsWith(t, kTokenPrefix)) return absl::InvalidArgumentError("page_token: not a token from this API");
    t.remove_prefix(sizeof(kTokenPrefix) - 1);
    auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), after);
    if (ec != std::errc() || p != t.data() + t.size() || after < 0) {
      return absl::InvalidArgumentError("page_token: not a token from this API");
    }
  }
  if (!req.owner().empty()) {
    if (absl::Status s = ValidateOwner(req.owner(), "owner"); !s.ok()) return s;
  }
  if (absl::Status s = ValidateNodeName(req.node(), "node"); !s.ok()) return s;
  auto selector = ParseLabelSelector(req.label_selector(), "label_selector");
  if (!selector.ok()) return selector.status();

  ABODE_READ_TXN(lease);
  auto pinned = PinSnapshot(lease.db(), *owners_, req.owner(), req.pool());
  if (!pinned.ok()) return pinned.status();
  const auto& [pools, owned, only] = **pinned;
  std::string sql = absl::StrCat("SELECT ", kAllocationColumns, " FROM allocations a WHERE a.id > ?");
  if (only) absl::StrAppend(&sql, " AND a.pool_id = ?");
  // An owner without rows matches nothing: "a.id IN ()" is not SQL, and "a.id < 0" is never true.
  if (!req.owner().empty()) absl::StrAppend(&sql, " AND a.owner = ?", owned.empty() ? " AND a.id < 0" : IdsIn(owned.size()));
  if (!req.node().empty()) absl::StrAppend(&sql, " AND a.node = ?");
  absl::StrAppend(&sql, " ORDER BY a.id");
  auto stmt = lease.db().Prepare(sql);
  if (!stmt.ok()) return stmt.status();
  int i = 1;
  stmt->Bind(i++, after);
  if (only) stmt->Bind(i++, only->id);
  if (!req.owner().empty()) {
    stmt->Bind(i++, req.owner());
    for (const OwnerIndex::Row& r : owned) stmt->Bind(i++, r.row_id);
  }
  if (!req.node().empty()) stmt->Bind(i++, req.node());

  auto revision = ReadRevision(lease.db());
  if (!revision.ok()) return revision.status();
  out->set_revision(*revision);
  out->mutable_allocations()->Reserve(page_size);
  for (;;) {
    auto row = stmt->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    if (!selector->empty() && !SelectorMatches(*selector, DecodeLabels(stmt->Text(6)))) continue;
    if (out->allocations_size() == page_size) {
      // There is at least one more: the page ends at the last one returned.
      out->set_next_page_token(absl::StrCat(kTokenPrefix, after));
      break;
    }
    auto it = pools.find(RowPoolId(*stmt, 0));
    AllocationFromRow(*stmt, 0, it == pools.end() ? PoolFacts{} : it->second.facts, out->add_allocations());
    after = RowId(*stmt, 0);
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::GetHistoryResponse> StateReader::GetHistory(const v1::GetHistoryRequest& req) {
  auto addr = IpAddress::Parse(req.address(), "address");
  if (!addr.ok()) return addr.status();
  if (absl::Status s = ValidateName(req.network(), "network", true); !s.ok()) return s;
  if (absl::Status s = ValidateName(req.pool(), "pool", true); !s.ok()) return s;
  if (req.limit() < 0) return absl::InvalidArgumentError("limit: must not be negative");
  const int limit = req.limit() == 0 ? 100 : std::min(req.limit(), 1000);
  ABODE_READ_TXN(lease);
  std::string sql = absl::StrCat("SELECT ", kHistoryColumns, " FROM history h WHERE h.address = ?");
  if (!req.network().empty()) absl::StrAppend(&sql, " AND h.network = ?");
  if (!req.pool().empty()) absl::StrAppend(&sql, " AND h.pool = ?");
  if (req.at_time_unix_ms() != 0) absl::StrAppend(&sql, " AND h.from_ms <= ? AND (h.to_revision = 0 OR h.to_ms > ?)");
  absl::StrAppend(&sql, " ORDER BY h.from_revision DESC LIMIT ?");
  auto stmt = lease.db().Prepare(sql);
  if (!stmt.ok()) return stmt.status();
  int i = 1;
  stmt->BindBlob(i++, addr->ToBytes());
  if (!req.network().empty()) stmt->Bind(i++, req.network());
  if (!req.pool().empty()) stmt->Bind(i++, req.pool());
  if (req.at_time_unix_ms() != 0) {
    stmt->Bind(i++, req.at_time_unix_ms());
    stmt->Bind(i++, req.at_time_unix_ms());
  }
  stmt->Bind(i++, static_cast<int64_t>(limit));
  v1::GetHistoryResponse out;
  // The current holders first: they are allocation rows, shown as open entries.
  if (absl::Status s = AddCurrentHolders(lease.db(), *addr, req, out.mutable_entries()); !s.ok()) return s;
  if (absl::Status s = stmt->EachRow([&] { HistoryFromRow(*stmt, 0, out.add_entries()); }); !s.ok()) return s;
  std::stable_sort(out.mutable_entries()->begin(), out.mutable_entries()->end(),
                   [](const v1::HistoryEntry& a, const v1::HistoryEntry& b) {
                     return a.from_revision() > b.from_revision();
                   });
  while (out.entries_size() > limit) out.mutable_entries()->RemoveLast();
  return out;
}

#undef ABODE_READ_TXN

}  // namespace abode::storage

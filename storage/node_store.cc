#include "storage/node_store.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "storage/schema.h"

namespace abode::storage {
namespace {

static_assert(static_cast<int>(domain::NodeTable::kNodes) == kNodes &&
              static_cast<int>(domain::NodeTable::kExternals) == kExternals &&
              static_cast<int>(domain::NodeTable::kElastics) == kElastics &&
              static_cast<int>(domain::NodeTable::kMagics) == kMagics && domain::kNodeTableCount == kNodeTableCount);

std::string Q(absl::string_view s) { return absl::StrCat("\"", s, "\""); }

template <typename T>
std::shared_ptr<const T> Share(T value) {
  return std::make_shared<const T>(std::move(value));
}

}  // namespace

struct NodeStore::Statements {
  Statement upsert[kNodeTableCount];
  Statement remove[kNodeTableCount];
};

NodeStore::NodeStore(Database& db, domain::Stamp& stamp, Allocations& allocations, domain::NodeModel& model)
    : db_(db),
      stamp_(stamp),
      allocations_(allocations),
      model_(model),
      commands_(model, allocations.pools(), allocations.commands(), *this) {}
NodeStore::~NodeStore() = default;

absl::Status NodeStore::PrepareStatements() {
  stmts_ = std::make_unique<Statements>();
  for (int t = 0; t < kNodeTableCount; ++t) {
    absl::Status s = db_.PrepareAll({
        {&stmts_->upsert[t], absl::StrCat("INSERT INTO ", kNodeTables[t],
                                          " (name, record) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET record = "
                                          "excluded.record")},
        {&stmts_->remove[t], absl::StrCat("DELETE FROM ", kNodeTables[t], " WHERE name = ?")},
    });
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status NodeStore::WriteRows(const domain::NodeChangeSet& changes) {
  for (const domain::NodeChangeSet::Row& row : changes.rows) {
    const int t = static_cast<int>(row.table);
    absl::Status s = row.record ? stmts_->upsert[t].Bind(1, row.name).BindBlob(2, domain::DeterministicBytes(*row.record)).Run()
                                : stmts_->remove[t].Bind(1, row.name).Run();
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

CommandOutcome NodeStore::Apply(const v1::Command& command, AllocationChanges& changes) {
  CommandOutcome out = commands_.Apply(command, stamp_, changes_);
  if (!out.ok()) return out;
  if (absl::Status s = WriteRows(changes_); !s.ok()) return s;
  if (changes_.has_allocations) {
    CommandOutcome written = allocations_.CommitChangeSet(changes_.allocations, changes_.allocation_result, changes);
    if (!written.ok()) return written.status();
  }
  // Written: now memory.
  stamp_.revision = changes_.revision;
  if (absl::Status s = commands_.CommitToModel(changes_, *out); !s.ok()) {
    store_failure_.Update(s);
    return s;
  }
  return out;
}

absl::Status NodeStore::AfterCommand(const AllocationChanges& changes, absl::string_view traceparent) {
  commands_.FollowAllocations(changes, stamp_.revision, changes_);
  if (absl::Status s = WriteRows(changes_); !s.ok()) return s;
  v1::CommandResult none;
  if (absl::Status s = commands_.CommitToModel(changes_, none); !s.ok()) return s;
  model_.Recompute(traceparent, stamp_.revision);
  return absl::OkStatus();
}

absl::Status NodeStore::ForEach(absl::string_view owner, absl::FunctionRef<void(v1::Allocation)> visit) {
  if (owner.empty()) return allocations_.ForEach(visit);
  auto owned = allocations_.OfOwner(owner);
  if (!owned.ok()) return owned.status();
  for (auto& a : *owned) visit(std::move(a));
  return absl::OkStatus();
}

absl::Status NodeStore::Load() {
  domain::NodeObjects objects;
  for (int t = 0; t < kNodeTableCount; ++t) {
    const std::string sql = absl::StrCat("SELECT name, record FROM ", kNodeTables[t], " ORDER BY name");
    absl::Status s = db_.ForEachRow(sql, [&](const Statement& row) {
      const std::string name(row.Text(0));
      const absl::string_view blob = row.Blob(1);
      bool ok = false;
      auto parse = [&](auto& into, auto msg) {
        ok = msg.ParseFromArray(blob.data(), static_cast<int>(blob.size()));
        into[name] = Share(std::move(msg));
      };
      switch (t) {
        case kNodes: parse(objects.nodes, v1::Node()); break;
        case kExternals: parse(objects.externals, v1::ExternalAddress()); break;
        case kElastics: parse(objects.elastics, v1::ElasticAddress()); break;
        default: parse(objects.magics, v1::MagicAddress()); break;
      }
      if (!ok) return absl::DataLossError(absl::StrCat(kNodeTables[t], " row ", Q(name), " is unreadable"));
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
  }
  return commands_.Reload(std::move(objects), stamp_.revision);
}

}  // namespace abode::storage

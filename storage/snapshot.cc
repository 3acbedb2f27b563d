#include "storage/snapshot.h"

#include <cstring>

#include "abode/v1/snapshot.pb.h"
#include "absl/cleanup/cleanup.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "domain/address.h"
#include "domain/node_model.h"
#include "domain/validation.h"
#include "storage/rows.h"
#include "storage/schema.h"

namespace abode::storage {
namespace {

using google::protobuf::io::CodedInputStream;
using google::protobuf::io::CodedOutputStream;

void WriteRecord(CodedOutputStream& out, const v1::SnapshotRecord& record) {
  out.WriteVarint32(static_cast<uint32_t>(record.ByteSizeLong()));
  record.SerializeWithCachedSizes(&out);
}

absl::StatusOr<int64_t> MetaValue(Database& db, absl::string_view key) {
  auto stmt = db.Prepare("SELECT value FROM meta WHERE key = ?");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, key);
  auto row = stmt->Step();
  if (!row.ok()) return row.status();
  return *row ? stmt->Int(0) : 0;
}

std::string Q(absl::string_view s) { return absl::StrCat("\"", s, "\""); }

// The record field and trailer count of each node-state table.
google::protobuf::Message* NodeRecord(int table, v1::SnapshotRecord& rec, v1::SnapshotTrailer& counts) {
  switch (table) {
    case kNodes:
      counts.set_nodes(counts.nodes() + 1);
      return rec.mutable_node();
    case kExternals:
      counts.set_external_addresses(counts.external_addresses() + 1);
      return rec.mutable_external_address();
    case kElastics:
      counts.set_elastic_addresses(counts.elastic_addresses() + 1);
      return rec.mutable_elastic_address();
    default:
      counts.set_magic_addresses(counts.magic_addresses() + 1);
      return rec.mutable_magic_address();
  }
}

// Node-state rows in table, then name order.
absl::Status DumpNodeRecords(Database& db, CodedOutputStream& out, v1::SnapshotTrailer& counts) {
  v1::SnapshotRecord rec;
  for (int t = 0; t < kNodeTableCount; ++t) {
    absl::Status s = db.ForEachRow(absl::StrCat("SELECT name, record FROM ", kNodeTables[t], " ORDER BY name"),
                                   [&](const Statement& row) {
                                     rec.Clear();
                                     const absl::string_view blob = row.Blob(1);
                                     google::protobuf::Message* msg = NodeRecord(t, rec, counts);
                                     if (!msg->ParseFromArray(blob.data(), static_cast<int>(blob.size()))) {
                                       return absl::DataLossError(absl::StrCat(kNodeTables[t], " row ",
                                                                               Q(row.Text(0)), " is unreadable"));
                                     }
                                     WriteRecord(out, rec);
                                     return absl::OkStatus();
                                   });
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

// Stores a node-state record; false when the record is of another kind.
absl::StatusOr<bool> LoadNodeRecord(Database& db, const v1::SnapshotRecord& rec, v1::SnapshotTrailer& seen) {
  int table = -1;
  const google::protobuf::Message* msg = nullptr;
  std::string name;
  auto pick = [&](int t, const auto& object) {
    table = t;
    msg = &object;
    name = object.spec().name();
  };
  switch (rec.record_case()) {
    case v1::SnapshotRecord::kNode: pick(kNodes, rec.node()); break;
    case v1::SnapshotRecord::kExternalAddress: pick(kExternals, rec.external_address()); break;
    case v1::SnapshotRecord::kElasticAddress: pick(kElastics, rec.elastic_address()); break;
    case v1::SnapshotRecord::kMagicAddress: pick(kMagics, rec.magic_address()); break;
    default: return false;
  }
  v1::SnapshotRecord counted;
  NodeRecord(table, counted, seen);
  auto stmt = db.Prepare(absl::StrCat("INSERT INTO ", kNodeTables[table], " (name, record) VALUES (?, ?)"));
  if (!stmt.ok()) return stmt.status();
  if (absl::Status s = stmt->Bind(1, name).BindBlob(2, domain::DeterministicBytes(*msg)).Run(); !s.ok()) {
    return absl::Status(s.code(),
                        absl::StrCat("snapshot: ", kNodeTables[table], " record ", Q(name), ": ", s.message()));
  }
  return true;
}

bool CountsMatch(const v1::SnapshotTrailer& want, const v1::SnapshotTrailer& seen) {
  return want.pools() == seen.pools() && want.allocations() == seen.allocations() &&
         want.history() == seen.history() && want.nodes() == seen.nodes() &&
         want.external_addresses() == seen.external_addresses() &&
         want.elastic_addresses() == seen.elastic_addresses() && want.magic_addresses() == seen.magic_addresses();
}

}  // namespace

absl::StatusOr<std::string> DumpSnapshot(Database& db) {
  if (absl::Status s = db.Exec("BEGIN"); !s.ok()) return s;
  absl::Cleanup end = [&db] { (void)db.Exec("COMMIT"); };
  return DumpSnapshotInTransaction(db);
}

absl::StatusOr<std::string> DumpSnapshotInTransaction(Database& db) {
  std::string out(kSnapshotMagic, sizeof(kSnapshotMagic));
  const uint32_t version = kSnapshotFormatVersion;
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((version >> (8 * i)) & 0xff));

  google::protobuf::io::StringOutputStream sink(&out);
  CodedOutputStream coded(&sink);
  coded.SetSerializationDeterministic(true);

  v1::SnapshotRecord rec;
  auto revision = MetaValue(db, "revision");
  if (!revision.ok()) return revision.status();
  auto time = MetaValue(db, "time_ms");
  if (!time.ok()) return time.status();
  rec.mutable_header()->set_revision(static_cast<uint64_t>(*revision));
  rec.mutable_header()->set_time_unix_ms(*time);
  rec.mutable_header()->set_schema_version(kStateVersion);
  WriteRecord(coded, rec);

  v1::SnapshotTrailer trailer;
  absl::flat_hash_map<int64_t, PoolFacts> facts;
  absl::Status s = db.ForEachRow(
      "SELECT id, spec, create_revision, create_time_ms, cursor FROM pools ORDER BY id", [&](const Statement& row) {
        rec.Clear();
        v1::SnapshotPool* p = rec.mutable_pool();
        p->set_id(static_cast<uint64_t>(row.Int(0)));
        const absl::string_view spec = row.Blob(1);
        if (!p->mutable_spec()->ParseFromArray(spec.data(), static_cast<int>(spec.size()))) {
          return absl::DataLossError(absl::StrCat("pool row ", row.Int(0), " has an unreadable spec"));
        }
        p->set_create_revision(static_cast<uint64_t>(row.Int(2)));
        p->set_create_time_unix_ms(row.Int(3));
        p->set_cursor(std::string(row.Blob(4)));
        facts[row.Int(0)] = PoolFacts{p->spec().name(), 0, ""};
        WriteRecord(coded, rec);
        trailer.set_pools(trailer.pools() + 1);
        return absl::OkStatus();
      });
  if (!s.ok()) return s;
  s = db.ForEachRow(absl::StrCat("SELECT ", kAllocationColumns, " FROM allocations a ORDER BY a.id"),
                    [&](const Statement& row) {
                      rec.Clear();
                      v1::SnapshotAllocation* a = rec.mutable_allocation();
                      a->set_id(static_cast<uint64_t>(RowId(row, 0)));
                      a->set_pool_id(static_cast<uint64_t>(RowPoolId(row, 0)));
                      AllocationFromRow(row, 0, facts[RowPoolId(row, 0)], a->mutable_allocation());
                      // Derived from the pool: not state of the allocation.
                      a->mutable_allocation()->clear_prefix_length();
                      a->mutable_allocation()->clear_gateway();
                      WriteRecord(coded, rec);
                      trailer.set_allocations(trailer.allocations() + 1);
                      return absl::OkStatus();
                    });
  if (!s.ok()) return s;
  s = db.ForEachRow(absl::StrCat("SELECT ", kHistoryColumns, " FROM history h ORDER BY h.id"),
                    [&](const Statement& row) {
                      rec.Clear();
                      rec.mutable_history()->set_id(static_cast<uint64_t>(row.Int(0)));
                      HistoryFromRow(row, 0, rec.mutable_history()->mutable_entry());
                      WriteRecord(coded, rec);
                      trailer.set_history(trailer.history() + 1);
                      return absl::OkStatus();
                    });
  if (!s.ok()) return s;
  if (absl::Status s = DumpNodeRecords(db, coded, trailer); !s.ok()) return s;
  rec.Clear();
  *rec.mutable_trailer() = trailer;
  WriteRecord(coded, rec);
  coded.Trim();
  if (coded.HadError()) return absl::InternalError("snapshot serialisation failed");
  return out;
}

absl::Status LoadSnapshot(Database& db, absl::string_view data) {
  constexpr size_t kHeader = sizeof(kSnapshotMagic) + 4;
  if (data.size() < kHeader || std::memcmp(data.data(), kSnapshotMagic, sizeof(kSnapshotMagic)) != 0) {
    return absl::FailedPreconditionError("snapshot: not an abode snapshot (bad magic)");
  }
  uint32_t version = 0;
  for (int i = 0; i < 4; ++i) version |= static_cast<uint32_t>(static_cast<unsigned char>(data[8 + i])) << (8 * i);
  if (version != kSnapshotFormatVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat("snapshot: format version ", version, " is not supported (this build reads ",
                     kSnapshotFormatVersion, ")"));
  }
  for (const char* table : {"meta", "pools", "allocations", "history"}) {
    if (absl::Status s = db.Exec(absl::StrCat("DELETE FROM ", table)); !s.ok()) return s;
  }
  for (const char* table : kNodeTables) {
    if (absl::Status s = db.Exec(absl::StrCat("DELETE FROM ", table)); !s.ok()) return s;
  }
  auto set_meta = db.Prepare("INSERT INTO meta (key, value) VALUES (?, ?)");
  auto ins_pool = db.Prepare(
      "INSERT INTO pools (id, name, network, spec, used, cursor, create_revision, create_time_ms) "
      "VALUES (?, ?, ?, ?, 0, ?, ?, ?)");
  auto ins_alloc = db.Prepare(
      "INSERT INTO allocations (id, pool_id, network, address, owner, node, labels, ttl_s, expire_ms, create_ms, "
      "create_revision, revision) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  auto ins_hist = db.Prepare(
      "INSERT INTO history (id, network, address, pool, owner, node, from_ms, to_ms, from_revision, to_revision, "
      "end_reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  auto set_used = db.Prepare(
      "UPDATE pools SET used = (SELECT COUNT(*) FROM allocations a WHERE a.pool_id = pools.id)");
  for (auto* s : {&set_meta, &ins_pool, &ins_alloc, &ins_hist, &set_used}) {
    if (!s->ok()) return s->status();
  }

  CodedInputStream in(reinterpret_cast<const uint8_t*>(data.data() + kHeader), static_cast<int>(data.size() - kHeader));
  in.SetTotalBytesLimit(INT32_MAX);
  v1::SnapshotRecord rec;
  v1::SnapshotTrailer seen;
  bool have_header = false;
  bool have_trailer = false;
  while (!have_trailer) {
    uint32_t len = 0;
    if (!in.ReadVarint32(&len)) return absl::DataLossError("snapshot: truncated (no trailer)");
    // The parser stops quietly at the end of the input, so a record cut short could still parse.
    if (len > data.size() - kHeader - static_cast<size_t>(in.CurrentPosition())) {
      return absl::DataLossError("snapshot: truncated (record cut short)");
    }
    const auto limit = in.PushLimit(static_cast<int>(len));
    if (!rec.ParseFromCodedStream(&in) || !in.ConsumedEntireMessage()) {
      return absl::DataLossError("snapshot: unreadable record");
    }
    in.PopLimit(limit);
    switch (rec.record_case()) {
      case v1::SnapshotRecord::kHeader: {
        if (rec.header().schema_version() > kStateVersion) {
          return absl::FailedPreconditionError(absl::StrCat("snapshot: state version ", rec.header().schema_version(),
                                                            " is newer than this build's ", kStateVersion));
        }
        have_header = true;
        if (absl::Status s = set_meta->Bind(1, "revision").Bind(2, static_cast<int64_t>(rec.header().revision())).Run();
            !s.ok()) {
          return s;
        }
        if (absl::Status s = set_meta->Bind(1, "time_ms").Bind(2, rec.header().time_unix_ms()).Run(); !s.ok()) {
          return s;
        }
        break;
      }
      case v1::SnapshotRecord::kPool: {
        const auto& p = rec.pool();
        std::string spec;
        p.spec().SerializeToString(&spec);
        ins_pool->Bind(1, static_cast<int64_t>(p.id()))
            .Bind(2, p.spec().name())
            .Bind(3, p.spec().network())
            .BindBlob(4, spec)
            .BindBlob(5, p.cursor())
            .Bind(6, static_cast<int64_t>(p.create_revision()))
            .Bind(7, p.create_time_unix_ms());
        if (absl::Status s = ins_pool->Run(); !s.ok()) return s;
        seen.set_pools(seen.pools() + 1);
        break;
      }
      case v1::SnapshotRecord::kAllocation: {
        const auto& sa = rec.allocation();
        const auto& a = sa.allocation();
        auto addr = domain::IpAddress::Parse(a.address(), "snapshot.allocation.address");
        if (!addr.ok()) return absl::DataLossError(addr.status().message());
        ins_alloc->Bind(1, static_cast<int64_t>(sa.id()))
            .Bind(2, static_cast<int64_t>(sa.pool_id()))
            .Bind(3, a.network())
            .BindBlob(4, addr->ToBytes())
            .Bind(5, a.owner())
            .Bind(6, a.node())
            .Bind(7, domain::EncodeLabels(a.labels()))
            .Bind(8, a.ttl_seconds())
            .Bind(9, a.expire_time_unix_ms())
            .Bind(10, a.create_time_unix_ms())
            .Bind(11, static_cast<int64_t>(a.create_revision()))
            .Bind(12, static_cast<int64_t>(a.revision()));
        if (absl::Status s = ins_alloc->Run(); !s.ok()) return s;
        seen.set_allocations(seen.allocations() + 1);
        break;
      }
      case v1::SnapshotRecord::kHistory: {
        const auto& e = rec.history().entry();
        auto addr = domain::IpAddress::Parse(e.address(), "snapshot.history.address");
        if (!addr.ok()) return absl::DataLossError(addr.status().message());
        ins_hist->Bind(1, static_cast<int64_t>(rec.history().id()))
            .Bind(2, e.network())
            .BindBlob(3, addr->ToBytes())
            .Bind(4, e.pool())
            .Bind(5, e.owner())
            .Bind(6, e.node())
            .Bind(7, e.from_time_unix_ms())
            .Bind(8, e.to_time_unix_ms())
            .Bind(9, static_cast<int64_t>(e.from_revision()))
            .Bind(10, static_cast<int64_t>(e.to_revision()))
            .Bind(11, e.end_reason());
        if (absl::Status s = ins_hist->Run(); !s.ok()) return s;
        seen.set_history(seen.history() + 1);
        break;
      }
      case v1::SnapshotRecord::kTrailer: {
        const auto& t = rec.trailer();
        if (!CountsMatch(t, seen)) {
          return absl::DataLossError("snapshot: record counts do not match its trailer");
        }
        have_trailer = true;
        break;
      }
      default: {
        auto handled = LoadNodeRecord(db, rec, seen);
        if (!handled.ok()) return handled.status();
        if (!*handled) return absl::FailedPreconditionError("snapshot: record of an unknown kind");
        break;
      }
    }
    if (!have_header) return absl::DataLossError("snapshot: missing header");
  }
  return set_used->Run();
}

absl::StatusOr<std::unique_ptr<PinnedState>> PinnedState::Pin(const std::string& db_path) {
  auto db = Database::Open(db_path, /*read_only=*/true);
  if (!db.ok()) return db.status();
  std::unique_ptr<PinnedState> p(new PinnedState(std::move(*db)));
  if (absl::Status s = p->db_.Exec("BEGIN"); !s.ok()) return s;
  p->open_ = true;
  // A WAL read transaction takes its view at its first read, not at BEGIN.
  if (absl::Status s = p->db_.Exec("SELECT count(*) FROM meta"); !s.ok()) return s;
  return p;
}

PinnedState::~PinnedState() {
  if (open_) (void)db_.Exec("COMMIT");
}

absl::StatusOr<std::string> PinnedState::Dump() { return DumpSnapshotInTransaction(db_); }

}  // namespace abode::storage

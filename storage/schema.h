// The SQLite schema of the materialised state, private to storage/ (other folders see SchemaVersion() in
// state_machine.h). A database whose schema version (PRAGMA user_version) differs from kSchemaVersion is
// rebuilt from the raft snapshot and log instead of migrated in place: bump kSchemaVersion with every change.
#ifndef ABODE_STORAGE_SCHEMA_H_
#define ABODE_STORAGE_SCHEMA_H_

#include <cstdint>

namespace abode::storage {

inline constexpr uint32_t kSchemaVersion = 4;

// Durability comes from the raft log (fsync on every append). The materialised database only has to stay
// consistent across a crash or power loss (WAL with synchronous=NORMAL: no fsync per commit), because it
// records the raft index it reflects and start-up replays the log from there.
inline constexpr char kWriterPragmas[] = R"sql(
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
PRAGMA temp_store = MEMORY;
PRAGMA cache_size = -65536;
PRAGMA mmap_size = 0;
PRAGMA foreign_keys = OFF;
)sql";

inline constexpr char kReaderPragmas[] = R"sql(
PRAGMA cache_size = -16384;
PRAGMA mmap_size = 0;
PRAGMA query_only = ON;
)sql";

inline constexpr char kSchema[] = R"sql(
CREATE TABLE meta (
  key TEXT PRIMARY KEY,
  value INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE pools (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  network TEXT NOT NULL,
  spec BLOB NOT NULL,
  used INTEGER NOT NULL DEFAULT 0,
  cursor BLOB NOT NULL DEFAULT x'',
  create_revision INTEGER NOT NULL,
  create_time_ms INTEGER NOT NULL
);

-- One address has at most one holder per network. One owner holds at most one address per pool: the state
-- machine's in-memory owner index (owner_index.h) keeps that, as no SQLite index is kept on owner.
CREATE TABLE allocations (
  id INTEGER PRIMARY KEY,
  pool_id INTEGER NOT NULL,
  network TEXT NOT NULL,
  address BLOB NOT NULL,
  owner TEXT NOT NULL,
  node TEXT NOT NULL,
  labels TEXT NOT NULL,
  ttl_s INTEGER NOT NULL,
  expire_ms INTEGER NOT NULL,
  create_ms INTEGER NOT NULL,
  create_revision INTEGER NOT NULL,
  revision INTEGER NOT NULL,
  UNIQUE (network, address)
);
CREATE INDEX allocations_pool ON allocations (pool_id);
CREATE INDEX allocations_node ON allocations (node) WHERE node <> '';
CREATE INDEX allocations_expire ON allocations (expire_ms) WHERE expire_ms > 0;

-- Who held which address from when to when, for holdings that ended. The current holder of an address is
-- its allocation row; readers present it as an open entry (to_revision = 0).
CREATE TABLE history (
  id INTEGER PRIMARY KEY,
  network TEXT NOT NULL,
  address BLOB NOT NULL,
  pool TEXT NOT NULL,
  owner TEXT NOT NULL,
  node TEXT NOT NULL,
  from_ms INTEGER NOT NULL,
  to_ms INTEGER NOT NULL,
  from_revision INTEGER NOT NULL,
  to_revision INTEGER NOT NULL,
  end_reason TEXT NOT NULL
);
CREATE INDEX history_address ON history (address, network, from_revision);
CREATE INDEX history_closed ON history (to_ms) WHERE to_revision > 0;

-- Nodes and the addresses they carry (see domain/node_model.h): one deterministic protobuf record per name.
CREATE TABLE nodes (name TEXT PRIMARY KEY, record BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE external_addresses (name TEXT PRIMARY KEY, record BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE elastic_addresses (name TEXT PRIMARY KEY, record BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE magic_addresses (name TEXT PRIMARY KEY, record BLOB NOT NULL) WITHOUT ROWID;
)sql";

// Column list shared by every query that decodes an allocation row (see rows.h).
inline constexpr char kAllocationColumns[] =
    "a.id, a.pool_id, a.network, a.address, a.owner, a.node, a.labels, a.ttl_s, a.expire_ms, a.create_ms, "
    "a.create_revision, a.revision";
inline constexpr int kAllocationColumnCount = 12;

// The node-state tables: one deterministic protobuf record per name.
enum NodeTable { kNodes = 0, kExternals = 1, kElastics = 2, kMagics = 3 };
inline constexpr int kNodeTableCount = 4;
inline constexpr const char* kNodeTables[kNodeTableCount] = {"nodes", "external_addresses", "elastic_addresses",
                                                             "magic_addresses"};

inline constexpr char kHistoryColumns[] =
    "h.id, h.network, h.address, h.pool, h.owner, h.node, h.from_ms, h.to_ms, h.from_revision, h.to_revision, "
    "h.end_reason";

}  // namespace abode::storage

#endif  // ABODE_STORAGE_SCHEMA_H_

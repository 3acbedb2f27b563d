// Tests only: the commands, batches, raw SQLite access and fixture that the state machine's tests share.
#ifndef ABODE_STORAGE_STATE_MACHINE_TEST_FIXTURE_H_
#define ABODE_STORAGE_STATE_MACHINE_TEST_FIXTURE_H_

#include <sqlite3.h>
#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "abode/v1/snapshot.pb.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "gtest/gtest.h"
#include "domain/address.h"
#include "storage/snapshot.h"
#include "test-support/temp_dir.h"
#include "storage/state_machine.h"

namespace abode::storage::state_machine_testing {

using test_support::TempDir;

inline constexpr int64_t kT0 = 1'700'000'000'000;

struct SqliteHandle {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using RawDb = std::unique_ptr<sqlite3, SqliteHandle>;

inline RawDb OpenRaw(const std::string& path) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
  return RawDb(db);
}

// Rows of a query as text, one string per row with columns joined by '|'.
inline std::vector<std::string> QueryRows(sqlite3* db, const std::string& sql) {
  std::vector<std::string> rows;
  sqlite3_stmt* stmt = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  while (sqlite3_step(stmt) == SQLITE_ROW) {
    std::string row;
    for (int i = 0; i < sqlite3_column_count(stmt); ++i) {
      if (i > 0) row += "|";
      const unsigned char* t = sqlite3_column_text(stmt, i);
      row += t ? reinterpret_cast<const char*>(t) : "NULL";
    }
    rows.push_back(row);
  }
  sqlite3_finalize(stmt);
  return rows;
}

// ---- command builders ----

inline v1::PoolSpec Spec(const std::string& name, const std::string& cidr, const std::string& network = "") {
  v1::PoolSpec s;
  s.set_name(name);
  s.set_cidr(cidr);
  s.set_network(network);
  return s;
}

inline v1::Command CreatePool(const v1::PoolSpec& spec) {
  v1::Command c;
  *c.mutable_create_pool()->mutable_pool() = spec;
  return c;
}

inline v1::Command DeletePool(const std::string& name, bool force = false) {
  v1::Command c;
  c.mutable_delete_pool()->set_name(name);
  c.mutable_delete_pool()->set_force(force);
  return c;
}

inline v1::Command Allocate(const std::string& pool, const std::string& owner, const std::string& address = "",
                     int64_t ttl_seconds = 0) {
  v1::Command c;
  v1::AllocateRequest* a = c.mutable_allocate();
  a->set_pool(pool);
  a->set_owner(owner);
  a->set_address(address);
  a->set_ttl_seconds(ttl_seconds);
  return c;
}

inline v1::Command AllocateMany(const std::string& owner, const std::vector<std::pair<std::string, std::string>>& items) {
  v1::Command c;
  c.mutable_allocate_many()->set_owner(owner);
  c.mutable_allocate_many()->set_node("node-1");
  for (const auto& [pool, address] : items) {
    v1::AllocateItem* item = c.mutable_allocate_many()->add_items();
    item->set_pool(pool);
    item->set_address(address);
  }
  return c;
}

inline v1::Command ReleaseOwner(const std::string& owner, const std::string& pool = "") {
  v1::Command c;
  c.mutable_release()->set_owner(owner);
  c.mutable_release()->set_pool(pool);
  return c;
}

inline v1::Command ReleaseAddress(const std::string& address, const std::string& network = "", const std::string& pool = "") {
  v1::Command c;
  c.mutable_release()->set_address(address);
  c.mutable_release()->set_network(network);
  c.mutable_release()->set_pool(pool);
  return c;
}

inline v1::Command Renew(const std::string& owner, int64_t ttl_seconds = 0, const std::string& pool = "") {
  v1::Command c;
  c.mutable_renew()->set_owner(owner);
  c.mutable_renew()->set_ttl_seconds(ttl_seconds);
  c.mutable_renew()->set_pool(pool);
  return c;
}

inline v1::Command Expire() {
  v1::Command c;
  c.mutable_expire_allocations();
  return c;
}

inline v1::Command Prune(int64_t older_than) {
  v1::Command c;
  c.mutable_prune_history()->set_older_than_unix_ms(older_than);
  return c;
}

inline v1::CommandBatch Batch(std::vector<v1::Command> commands, int64_t time_ms) {
  v1::CommandBatch b;
  b.set_format_version(kCommandFormatVersion);
  b.set_time_unix_ms(time_ms);
  for (auto& c : commands) *b.add_commands() = std::move(c);
  return b;
}

inline std::string Msg(const absl::Status& s) { return std::string(s.message()); }

// Serialised with map entries sorted, so that equal messages give equal bytes.
inline std::string Bytes(const google::protobuf::MessageLite& m) {
  std::string out;
  google::protobuf::io::StringOutputStream sink(&out);
  google::protobuf::io::CodedOutputStream coded(&sink);
  coded.SetSerializationDeterministic(true);
  m.SerializeToCodedStream(&coded);
  coded.Trim();
  return out;
}

// ---- snapshot record codec, to craft damaged snapshots ----

inline std::vector<v1::SnapshotRecord> DecodeRecords(const std::string& snap) {
  std::vector<v1::SnapshotRecord> out;
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(snap.data() + 12),
                                            static_cast<int>(snap.size() - 12));
  for (;;) {
    uint32_t len = 0;
    if (!in.ReadVarint32(&len)) break;
    const auto limit = in.PushLimit(static_cast<int>(len));
    v1::SnapshotRecord r;
    EXPECT_TRUE(r.ParseFromCodedStream(&in));
    in.PopLimit(limit);
    out.push_back(r);
  }
  return out;
}

inline std::string EncodeRecords(const std::string& prefix12, const std::vector<v1::SnapshotRecord>& records) {
  std::string out = prefix12;
  {
    google::protobuf::io::StringOutputStream sink(&out);
    google::protobuf::io::CodedOutputStream coded(&sink);
    coded.SetSerializationDeterministic(true);
    for (const auto& r : records) {
      coded.WriteVarint32(static_cast<uint32_t>(r.ByteSizeLong()));
      r.SerializeWithCachedSizes(&coded);
    }
  }
  return out;
}


class StateMachineTest : public ::testing::Test {
 protected:
  void SetUp() override { sm_ = OpenMachine("state.db"); }

  std::unique_ptr<StateMachine> OpenMachine(const std::string& file) {
    StateMachineOptions opts;
    opts.db_path = dir_.File(file);
    auto sm = StateMachine::Open(opts);
    EXPECT_TRUE(sm.ok()) << sm.status();
    return sm.ok() ? std::move(*sm) : nullptr;
  }

  // Applies one batch to `sm` at `time`, expecting the batch itself to be accepted.
  static std::vector<CommandOutcome> ApplyTo(StateMachine& sm, std::vector<v1::Command> commands, int64_t time) {
    auto r = sm.Apply(Batch(std::move(commands), time));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? std::move(*r) : std::vector<CommandOutcome>();
  }

  std::vector<CommandOutcome> ApplyAll(std::vector<v1::Command> commands) {
    return ApplyTo(*sm_, std::move(commands), now_);
  }

  // One command in a batch of its own.
  CommandOutcome Run(v1::Command command) {
    auto outcomes = ApplyAll({std::move(command)});
    if (outcomes.size() != 1) return absl::InternalError("no outcome");
    return outcomes[0];
  }

  v1::Allocation MustAllocate(const std::string& pool, const std::string& owner, const std::string& address = "",
                              int64_t ttl = 0) {
    CommandOutcome r = Run(Allocate(pool, owner, address, ttl));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->allocation() : v1::Allocation();
  }

  v1::Pool MustCreate(const v1::PoolSpec& spec) {
    CommandOutcome r = Run(CreatePool(spec));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->pool() : v1::Pool();
  }

  // The pool's counts, read back through an idempotent re-create of its stored spec.
  v1::Pool Counts(const v1::PoolSpec& stored_spec) {
    CommandOutcome r = Run(CreatePool(stored_spec));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->pool() : v1::Pool();
  }

  std::string Snap(StateMachine& sm) {
    auto s = sm.Snapshot();
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? *s : std::string();
  }

  TempDir dir_;
  std::unique_ptr<StateMachine> sm_;
  int64_t now_ = kT0;
};


}  // namespace abode::storage::state_machine_testing

#endif  // ABODE_STORAGE_STATE_MACHINE_TEST_FIXTURE_H_

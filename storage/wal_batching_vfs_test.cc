#include "storage/wal_batching_vfs.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "storage/sqlite.h"
#include "test-support/temp_dir.h"

namespace abode::storage {
namespace {

using test_support::TempDir;

class WalBatchingVfsTest : public ::testing::Test {
 protected:
  std::unique_ptr<Database> OpenWriter() {
    auto db = Database::Open(path_, /*read_only=*/false, WalBatchingVfsName());
    EXPECT_TRUE(db.ok()) << db.status();
    if (!db.ok()) return nullptr;
    auto out = std::make_unique<Database>(std::move(*db));
    EXPECT_TRUE(out->Exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;").ok());
    EXPECT_TRUE(out->Exec("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v BLOB NOT NULL)").ok());
    return out;
  }

  // A second connection through the default VFS, as the readers and the checkpointer are.
  std::unique_ptr<Database> OpenReader() {
    auto db = Database::Open(path_, /*read_only=*/true);
    EXPECT_TRUE(db.ok()) << db.status();
    return db.ok() ? std::make_unique<Database>(std::move(*db)) : nullptr;
  }

  static int64_t Query(Database& db, const std::string& sql) {
    auto stmt = db.Prepare(sql);
    EXPECT_TRUE(stmt.ok()) << stmt.status();
    if (!stmt.ok()) return -1;
    auto row = stmt->Step();
    EXPECT_TRUE(row.ok() && *row);
    return stmt->Int(0);
  }

  static std::string IntegrityCheck(Database& db) {
    auto stmt = db.Prepare("PRAGMA integrity_check");
    if (!stmt.ok()) return std::string(stmt.status().message());
    auto row = stmt->Step();
    if (!row.ok() || !*row) return "no answer";
    return std::string(stmt->Text(0));
  }

  static WalBatchingStats Stats(Database& db) {
    WalBatchingStats s;
    EXPECT_EQ(sqlite3_file_control(db.handle(), "main", kWalBatchingStatsOpcode, &s), SQLITE_OK);
    return s;
  }

  // One transaction of `rows` rows of 600 bytes: several pages, so many frames.
  static void Insert(Database& db, int first, int rows) {
    ASSERT_TRUE(db.Exec("BEGIN").ok());
    for (int i = first; i < first + rows; ++i) {
      ASSERT_TRUE(db.Exec(absl::StrCat("INSERT INTO t (id, v) VALUES (", i, ", randomblob(600))")).ok());
    }
    ASSERT_TRUE(db.Exec("COMMIT").ok());
  }

  TempDir dir_;
  std::string path_ = dir_.File("state.db");
};

TEST_F(WalBatchingVfsTest, EachCommitIsOneWriteAndVisibleToOtherConnectionsAtOnce) {
  auto writer = OpenWriter();
  auto reader = OpenReader();
  ASSERT_TRUE(writer && reader);
  sqlite3_wal_autocheckpoint(writer->handle(), 0);  // no checkpoints: only the commits write
  const WalBatchingStats before = Stats(*writer);
  for (int i = 0; i < 50; ++i) {
    const WalBatchingStats s0 = Stats(*writer);
    Insert(*writer, i * 20, 20);
    const WalBatchingStats s1 = Stats(*writer);
    EXPECT_EQ(s1.writes_issued - s0.writes_issued, 1u) << "commit " << i;
    EXPECT_GE(s1.writes_received - s0.writes_received, 2u * 4) << "commit " << i;  // a frame is two writes
    EXPECT_EQ(Query(*reader, "SELECT count(*) FROM t"), (i + 1) * 20);
  }
  const WalBatchingStats after = Stats(*writer);
  EXPECT_GT(after.writes_received - before.writes_received, 10 * (after.writes_issued - before.writes_issued));
  EXPECT_EQ(IntegrityCheck(*reader), "ok");
}

TEST_F(WalBatchingVfsTest, CheckpointsRestartsAndReopeningKeepEveryCommit) {
  {
    auto writer = OpenWriter();
    ASSERT_TRUE(writer);
    sqlite3_wal_autocheckpoint(writer->handle(), 16);  // checkpoints and WAL restarts all along
    for (int i = 0; i < 200; ++i) Insert(*writer, i * 5, 5);
    EXPECT_EQ(Query(*writer, "SELECT count(*) FROM t"), 1000);
  }
  auto reader = OpenReader();
  ASSERT_TRUE(reader);
  EXPECT_EQ(Query(*reader, "SELECT count(*) FROM t"), 1000);
  EXPECT_EQ(Query(*reader, "SELECT max(id) FROM t"), 999);
  EXPECT_EQ(IntegrityCheck(*reader), "ok");
}

// With a tiny page cache SQLite writes frames before the commit (spills), overwrites frames of the same
// transaction in place and rewrites their checksums; rolled-back frames are left behind in the WAL.
TEST_F(WalBatchingVfsTest, SpilledOverwrittenAndRolledBackFramesStayCorrect) {
  auto writer = OpenWriter();
  auto reader = OpenReader();
  ASSERT_TRUE(writer && reader);
  ASSERT_TRUE(writer->Exec("PRAGMA cache_size = 8").ok());
  Insert(*writer, 0, 10);

  ASSERT_TRUE(writer->Exec("BEGIN").ok());
  for (int i = 10; i < 400; ++i) {
    ASSERT_TRUE(writer->Exec(absl::StrCat("INSERT INTO t (id, v) VALUES (", i, ", randomblob(600))")).ok());
  }
  ASSERT_TRUE(writer->Exec("ROLLBACK").ok());
  EXPECT_EQ(Query(*reader, "SELECT count(*) FROM t"), 10);

  ASSERT_TRUE(writer->Exec("BEGIN").ok());
  for (int i = 10; i < 400; ++i) {
    ASSERT_TRUE(writer->Exec(absl::StrCat("INSERT INTO t (id, v) VALUES (", i, ", randomblob(600))")).ok());
  }
  const absl::Status updated = writer->Exec("UPDATE t SET v = randomblob(500) WHERE id % 7 = 0");
  ASSERT_TRUE(updated.ok()) << updated;
  ASSERT_TRUE(writer->Exec("COMMIT").ok());
  EXPECT_EQ(Query(*reader, "SELECT count(*) FROM t"), 400);
  EXPECT_EQ(Query(*reader, "SELECT count(*) FROM t WHERE length(v) = 500"), 58);
  EXPECT_EQ(IntegrityCheck(*reader), "ok");
  writer.reset();
  reader.reset();
  auto again = OpenReader();
  ASSERT_TRUE(again);
  EXPECT_EQ(Query(*again, "SELECT count(*) FROM t"), 400);
  EXPECT_EQ(IntegrityCheck(*again), "ok");
}

// kill -9 of a writer in the middle of its commits: the database opens consistent and holds every commit
// the writer had finished, and nothing of a commit it had not.
TEST_F(WalBatchingVfsTest, AWriterKilledMidCommitLosesNothingItCommitted) {
  int acks[2];
  ASSERT_EQ(::pipe(acks), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(acks[0]);
    auto db = Database::Open(path_, /*read_only=*/false, WalBatchingVfsName());
    if (!db.ok() || !db->Exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;").ok() ||
        !db->Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB NOT NULL)").ok()) {
      ::_exit(1);
    }
    sqlite3_wal_autocheckpoint(db->handle(), 64);
    for (int64_t batch = 0;; ++batch) {
      if (!db->Exec("BEGIN").ok()) ::_exit(2);
      for (int i = 0; i < 10; ++i) {
        if (!db->Exec(absl::StrCat("INSERT INTO t (id, v) VALUES (", batch * 10 + i, ", randomblob(700))")).ok()) {
          ::_exit(3);
        }
      }
      if (!db->Exec("COMMIT").ok()) ::_exit(4);
      if (::write(acks[1], &batch, sizeof(batch)) != static_cast<ssize_t>(sizeof(batch))) ::_exit(5);
    }
  }
  ::close(acks[1]);
  int64_t last = -1;
  for (int n = 0; n < 300; ++n) {
    int64_t batch = 0;
    ASSERT_EQ(::read(acks[0], &batch, sizeof(batch)), static_cast<ssize_t>(sizeof(batch)));
    last = batch;
  }
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  ::close(acks[0]);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the writer stopped on its own: " << status;

  auto db = Database::Open(path_, /*read_only=*/false);
  ASSERT_TRUE(db.ok()) << db.status();
  EXPECT_EQ(IntegrityCheck(*db), "ok");
  const int64_t count = Query(*db, "SELECT count(*) FROM t");
  const int64_t max = Query(*db, "SELECT max(id) FROM t");
  EXPECT_GE(count, (last + 1) * 10) << "a commit the writer had finished is missing";
  EXPECT_EQ(count % 10, 0) << "part of a commit survived";
  EXPECT_EQ(max + 1, count) << "commits are missing in the middle";
}

}  // namespace
}  // namespace abode::storage

#include "storage/wal_checkpointer.h"

#include <sys/stat.h>

#include <chrono>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "storage/sqlite.h"
#include "test-support/eventually.h"
#include "test-support/temp_dir.h"

namespace abode::storage {
namespace {

using test_support::TempDir;

int64_t FileSize(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<int64_t>(st.st_size) : -1;
}

class WalCheckpointerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto db = Database::Open(path_, /*read_only=*/false);
    ASSERT_TRUE(db.ok()) << db.status();
    writer_ = std::make_unique<Database>(std::move(*db));
    ASSERT_TRUE(writer_->Exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;").ok());
    ASSERT_TRUE(writer_->Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB NOT NULL)").ok());
  }

  // One transaction of `rows` rows of 4 KiB each: at least that many new WAL pages.
  void Write(int rows) {
    ASSERT_TRUE(writer_->Exec("BEGIN").ok());
    for (int i = 0; i < rows; ++i) {
      ASSERT_TRUE(writer_->Exec(absl::StrCat("INSERT INTO t (v) VALUES (zeroblob(4000))")).ok());
    }
    ASSERT_TRUE(writer_->Exec("COMMIT").ok());
  }

  int64_t Rows() {
    auto stmt = writer_->Prepare("SELECT count(*) FROM t");
    EXPECT_TRUE(stmt.ok());
    auto row = stmt->Step();
    EXPECT_TRUE(row.ok() && *row);
    return stmt->Int(0);
  }

  TempDir dir_;
  std::string path_ = dir_.File("state.db");
  std::unique_ptr<Database> writer_;
};

TEST_F(WalCheckpointerTest, CopiesTheWalIntoTheDatabaseFromItsOwnThread) {
  auto c = WalCheckpointer::Start(*writer_, path_, /*threshold_pages=*/64);
  ASSERT_TRUE(c.ok()) << c.status();
  const int64_t db_before = FileSize(path_);
  Write(10);  // below the threshold: nothing to do
  EXPECT_EQ((*c)->stats().checkpoints, 0u);
  Write(100);
  // The commit only signals the checkpointer; the copy happens on its thread, soon after.
  test_support::Eventually([&] { return (*c)->stats().pages_copied != 0; }, std::chrono::seconds(10),
                           std::chrono::milliseconds(5));
  const WalCheckpointer::Stats stats = (*c)->stats();
  EXPECT_GE(stats.checkpoints, 1u);
  EXPECT_GE(stats.pages_copied, 110u);
  EXPECT_EQ(stats.failures, 0u);
  EXPECT_GT(FileSize(path_), db_before + 100 * 4000);  // the rows reached the database file
  EXPECT_EQ(Rows(), 110);

  // With everything copied, the writer starts the WAL over instead of growing it.
  const int64_t wal = FileSize(path_ + "-wal");
  for (int i = 0; i < 5; ++i) {
    Write(20);
    const uint64_t before = (*c)->stats().checkpoints;
    Write(60);
    EXPECT_TRUE(test_support::Eventually([&] { return (*c)->stats().checkpoints != before; },
                                         std::chrono::seconds(10), std::chrono::milliseconds(5)))
        << "round " << i << ": no checkpoint after 80 pages";
  }
  EXPECT_EQ(Rows(), 110 + 5 * 80);
  EXPECT_LE(FileSize(path_ + "-wal"), wal + 2 * 80 * 4096 + 65536);
}

TEST_F(WalCheckpointerTest, TheWriterDoesNotCheckpointWhileAttachedAndDoesAgainAfter) {
  {
    auto c = WalCheckpointer::Start(*writer_, path_, /*threshold_pages=*/1'000'000);
    ASSERT_TRUE(c.ok()) << c.status();
    Write(300);
    // Neither the writer (its automatic checkpoint is off) nor the checkpointer (under its threshold) copied.
    EXPECT_LT(FileSize(path_), 300 * 4000);
    EXPECT_EQ((*c)->stats().checkpoints, 0u);
  }
  // Detached: the writer's own checkpoints are back.
  const int64_t before = FileSize(path_);
  Write(1100);
  EXPECT_GT(FileSize(path_), before + 1000 * 4000);
  EXPECT_EQ(Rows(), 1400);
}

TEST_F(WalCheckpointerTest, OpeningAMissingDirectoryFails) {
  EXPECT_FALSE(WalCheckpointer::Start(*writer_, dir_.File("no/such/dir/state.db")).ok());
}

}  // namespace
}  // namespace abode::storage

#include "storage/backup_file.h"

#include <dirent.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "test-support/temp_dir.h"

namespace abode::storage {
namespace {

Backup Sample(std::string snapshot) {
  Backup b;
  b.header.set_member_id(2);
  b.header.set_applied_index(41);
  b.header.set_revision(17);
  b.header.set_time_unix_ms(1'700'000'000'000);
  b.header.set_size(snapshot.size());
  b.header.set_checksum(Fnv1a64(snapshot));
  b.header.set_allocations(3);
  b.snapshot = std::move(snapshot);
  return b;
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void Spit(const std::string& path, const std::string& data) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
}

std::vector<std::string> Entries(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return names;
  while (dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(d);
  return names;
}

TEST(BackupFileTest, Fnv1a64MatchesTheReferenceValues) {
  EXPECT_EQ(Fnv1a64(""), 0xcbf29ce484222325ULL);
  EXPECT_EQ(Fnv1a64("a"), 0xaf63dc4c8601ec8cULL);
  EXPECT_EQ(Fnv1a64("foobar"), 0x85944171f73967e8ULL);
}

TEST(BackupFileTest, WrittenFileReadsBackWithItsHeader) {
  test_support::TempDir dir("backup");
  const std::string path = dir.File("state.abodebak");
  const std::string snapshot("ABODESNP\x01\x00\x00\x00 state bytes \x00\xff", 26);
  ASSERT_TRUE(WriteBackupFile(path, Sample(snapshot)).ok());
  EXPECT_EQ(Entries(dir.path()), std::vector<std::string>{"state.abodebak"});  // no temporary file left
  auto back = ReadBackupFile(path);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->snapshot, snapshot);
  EXPECT_EQ(back->header.applied_index(), 41u);
  EXPECT_EQ(back->header.revision(), 17u);
  EXPECT_EQ(back->header.member_id(), 2u);
  EXPECT_EQ(back->header.checksum(), Fnv1a64(snapshot));
  EXPECT_EQ(Slurp(path).substr(0, 8), "ABODEBAK");
}

TEST(BackupFileTest, ReplacesAnOlderBackupWhole) {
  test_support::TempDir dir("backup");
  const std::string path = dir.File("b");
  ASSERT_TRUE(WriteBackupFile(path, Sample(std::string(5000, 'x'))).ok());
  ASSERT_TRUE(WriteBackupFile(path, Sample("short")).ok());
  auto back = ReadBackupFile(path);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->snapshot, "short");
}

TEST(BackupFileTest, RefusesToWriteASnapshotItsHeaderDoesNotDescribe) {
  test_support::TempDir dir("backup");
  Backup b = Sample("state");
  b.header.set_checksum(b.header.checksum() ^ 1);
  absl::Status s = WriteBackupFile(dir.File("b"), b);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_TRUE(Entries(dir.path()).empty());
}

TEST(BackupFileTest, AFailedWriteLeavesNothing) {
  test_support::TempDir dir("backup");
  absl::Status s = WriteBackupFile(dir.File("missing/b"), Sample("state"));
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
  EXPECT_TRUE(Entries(dir.path()).empty());
}

TEST(BackupFileTest, DetectsAFlippedByteAndATruncation) {
  test_support::TempDir dir("backup");
  const std::string path = dir.File("b");
  ASSERT_TRUE(WriteBackupFile(path, Sample(std::string(100, 's'))).ok());
  const std::string good = Slurp(path);

  std::string flipped = good;
  flipped[flipped.size() - 10] ^= 0x20;
  Spit(path, flipped);
  auto r = ReadBackupFile(path);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << r.status();
  EXPECT_NE(r.status().message().find("checksum"), std::string::npos) << r.status();

  Spit(path, good.substr(0, good.size() - 1));
  r = ReadBackupFile(path);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << r.status();
  EXPECT_NE(r.status().message().find("bytes"), std::string::npos) << r.status();

  Spit(path, good.substr(0, 14));
  r = ReadBackupFile(path);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << r.status();
}

TEST(BackupFileTest, RefusesOtherFilesAndNewerFormats) {
  test_support::TempDir dir("backup");
  const std::string path = dir.File("b");
  Spit(path, "SQLite format 3\0 and more");
  EXPECT_EQ(ReadBackupFile(path).status().code(), absl::StatusCode::kFailedPrecondition);

  ASSERT_TRUE(WriteBackupFile(path, Sample("state")).ok());
  std::string newer = Slurp(path);
  newer[8] = 2;
  Spit(path, newer);
  auto r = ReadBackupFile(path);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition) << r.status();
  EXPECT_NE(r.status().message().find("format version 2"), std::string::npos) << r.status();

  EXPECT_EQ(ReadBackupFile(dir.File("none")).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace abode::storage

// cluster status | add | remove | transfer | checksum, and backup, through RunAbodectl against a fake
// transport.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "cli/abodectl_fixture.h"
#include "cli/api_methods.h"
#include "storage/backup_file.h"
#include "test-support/temp_dir.h"

namespace abode::cli {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

v1::ClusterStatus ThreeMembers() {
  v1::ClusterStatus status;
  status.set_member_id(2);
  status.set_role("follower");
  status.set_term(7);
  status.set_leader_id(1);
  status.set_leader_address("10.0.0.1:7443");
  status.set_commit_index(120);
  status.set_applied_index(119);
  status.set_ready(true);
  for (int id = 1; id <= 3; ++id) {
    v1::Member& member = *status.add_members();
    member.set_id(id);
    member.set_role(id == 1 ? "leader" : "voter");
    member.set_raft_address("10.0.0." + std::to_string(id) + ":7444");
    member.set_grpc_address("10.0.0." + std::to_string(id) + ":7443");
  }
  return status;
}

using ClusterCommandsTest = AbodectlTest;

TEST_F(ClusterCommandsTest, StatusTableMarksTheLeader) {
  fake_.Respond(ThreeMembers());
  const Result result = Run({"cluster", "status"});
  ASSERT_EQ(result.exit_code, kExitOk) << result.err;
  EXPECT_EQ(fake_.calls()[0].method, kClusterStatus.path);
  EXPECT_THAT(result.out,
              StartsWith("member 2 answered: follower, term 7, leader 1, commit 120, applied 119, ready\n"));
  EXPECT_THAT(result.out, HasSubstr("ID   LEADER   ROLE     RAFT-ADDRESS    GRPC-ADDRESS\n"
                                    "1    *        leader   10.0.0.1:7444   10.0.0.1:7443\n"
                                    "2             voter    10.0.0.2:7444   10.0.0.2:7443\n"));
}

TEST_F(ClusterCommandsTest, StatusJsonHasLeaderIdAndMembers) {
  fake_.Respond(ThreeMembers());
  const Result result = Run({"-o", "json", "cluster", "status"});
  ASSERT_EQ(result.exit_code, kExitOk) << result.err;
  const nlohmann::json json = nlohmann::json::parse(result.out);
  EXPECT_EQ(json["leader_id"], 1);
  ASSERT_EQ(json["members"].size(), 3u);
  EXPECT_EQ(json["members"][0]["id"], 1);
  EXPECT_EQ(json["members"][0]["role"], "leader");
  EXPECT_EQ(json["members"][0]["address"], "10.0.0.1:7444@10.0.0.1:7443");
}

TEST_F(ClusterCommandsTest, AddSplitsTheMemberAddress) {
  fake_.Respond(ThreeMembers());
  const Result result = Run({"cluster", "add", "4", "10.0.0.4:7444@10.0.0.4:7443", "--non-voting"});
  ASSERT_EQ(result.exit_code, kExitOk) << result.err;
  EXPECT_EQ(fake_.calls()[0].method, kAddMember.path);
  const auto& request = fake_.request<v1::AddMemberRequest>();
  EXPECT_EQ(request.id(), 4u);
  EXPECT_EQ(request.raft_address(), "10.0.0.4:7444");
  EXPECT_EQ(request.grpc_address(), "10.0.0.4:7443");
  EXPECT_TRUE(request.non_voting());

  fake_.Respond(ThreeMembers());
  ASSERT_EQ(Run({"cluster", "add", "5", "h5:1@h5:2"}).exit_code, kExitOk);
  EXPECT_FALSE(fake_.request<v1::AddMemberRequest>(1).non_voting());
}

TEST_F(ClusterCommandsTest, RemoveTransferChecksum) {
  fake_.Respond(ThreeMembers());
  ASSERT_EQ(Run({"cluster", "remove", "3"}).exit_code, kExitOk);
  EXPECT_EQ(fake_.calls()[0].method, kRemoveMember.path);
  EXPECT_EQ(fake_.request<v1::RemoveMemberRequest>(0).id(), 3u);

  fake_.Respond(ThreeMembers());
  ASSERT_EQ(Run({"cluster", "transfer", "2"}).exit_code, kExitOk);
  EXPECT_EQ(fake_.calls()[1].method, kTransferLeadership.path);
  EXPECT_EQ(fake_.request<v1::TransferLeadershipRequest>(1).id(), 2u);

  fake_.Respond(ThreeMembers());
  ASSERT_EQ(Run({"cluster", "transfer"}).exit_code, kExitOk);
  EXPECT_EQ(fake_.request<v1::TransferLeadershipRequest>(2).id(), 0u);

  v1::ChecksumResponse checksum;
  checksum.set_member_id(1);
  checksum.set_applied_index(42);
  checksum.set_revision(17);
  checksum.set_checksum(0xab);
  checksum.set_allocations(5);
  fake_.Respond(checksum);
  Result result = Run({"cluster", "checksum"});
  ASSERT_EQ(result.exit_code, kExitOk) << result.err;
  EXPECT_EQ(fake_.calls()[3].method, kChecksum.path);
  EXPECT_EQ(result.out, "member 1 at applied index 42 (revision 17): checksum 00000000000000ab, 5 allocations\n");
  fake_.Respond(checksum);
  result = Run({"-o", "json", "cluster", "checksum"});
  EXPECT_EQ(nlohmann::json::parse(result.out)["checksum"], "00000000000000ab");
}

TEST_F(ClusterCommandsTest, RpcErrorExitsOne) {
  fake_.Fail(absl::UnavailableError("no quorum"));
  const Result result = Run({"cluster", "remove", "2"});
  EXPECT_EQ(result.exit_code, kExitRpcError);
  EXPECT_EQ(result.err, "error: UNAVAILABLE: no quorum\n");
}

TEST_F(ClusterCommandsTest, BadUsageExitsTwo) {
  ExpectUsageError({"cluster"}, "subcommand");
  ExpectUsageError({"cluster", "add", "4"}, "ADDRESS");
  ExpectUsageError({"cluster", "add", "4", "10.0.0.4:7444"}, "RAFT_HOST:PORT@GRPC_HOST:PORT");
  ExpectUsageError({"cluster", "add", "0", "a:1@b:2"}, "ID");
  ExpectUsageError({"cluster", "add", "x", "a:1@b:2"}, "ID");
  ExpectUsageError({"cluster", "remove"}, "ID");
  ExpectUsageError({"cluster", "transfer", "-1"}, "ID");
}

// A backup stream as the server sends it: the header, then `snapshot` in `chunks` pieces.
std::vector<std::unique_ptr<google::protobuf::Message>> BackupStream(const std::string& snapshot, int chunks,
                                                                     uint64_t checksum) {
  std::vector<std::unique_ptr<google::protobuf::Message>> out;
  auto header = std::make_unique<v1::BackupChunk>();
  v1::BackupHeader& h = *header->mutable_header();
  h.set_member_id(2);
  h.set_applied_index(50);
  h.set_revision(30);
  h.set_size(snapshot.size());
  h.set_checksum(checksum);
  h.set_allocations(4);
  out.push_back(std::move(header));
  const size_t piece = snapshot.size() / static_cast<size_t>(chunks) + 1;
  for (size_t at = 0; at < snapshot.size(); at += piece) {
    auto data = std::make_unique<v1::BackupChunk>();
    data->set_data(snapshot.substr(at, piece));
    out.push_back(std::move(data));
  }
  return out;
}

TEST_F(ClusterCommandsTest, BackupWritesTheStreamedStateToTheFile) {
  test_support::TempDir dir("backup");
  const std::string snapshot(1000, 's');
  fake_.RespondStream(BackupStream(snapshot, 3, storage::Fnv1a64(snapshot)), absl::OkStatus());
  const Result result = Run({"-o", "json", "backup", "--to", dir.File("b")});
  ASSERT_EQ(result.exit_code, kExitOk) << result.err;
  ASSERT_EQ(fake_.opened_streams().size(), 1u);
  EXPECT_EQ(fake_.opened_streams()[0].method, kBackup.path);
  EXPECT_EQ(fake_.written().size(), 1u);  // one request, then this side closed
  EXPECT_TRUE(fake_.writes_done());
  const nlohmann::json out = nlohmann::json::parse(result.out);
  EXPECT_EQ(out["file"], dir.File("b"));
  EXPECT_EQ(out["applied_index"], 50);
  EXPECT_EQ(out["bytes"], 1000);
  auto back = storage::ReadBackupFile(dir.File("b"));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->snapshot, snapshot);
  EXPECT_EQ(back->header.revision(), 30u);
}

TEST_F(ClusterCommandsTest, BackupRefusesADamagedOrBrokenStreamAndWritesNothing) {
  test_support::TempDir dir("backup");
  const std::string snapshot(1000, 's');
  struct Case {
    std::string name;
    std::vector<std::unique_ptr<google::protobuf::Message>> messages;
    absl::Status status;
    std::string reason;
  };
  std::vector<Case> cases;
  cases.push_back({"checksum", BackupStream(snapshot, 2, storage::Fnv1a64(snapshot) ^ 1), absl::OkStatus(),
                   "DATA_LOSS: backup: the snapshot's checksum"});
  cases.push_back({"no header", BackupStream(snapshot, 2, 0), absl::OkStatus(), "starts without a header"});
  cases.back().messages.erase(cases.back().messages.begin());
  cases.push_back({"short", BackupStream(snapshot, 2, storage::Fnv1a64(snapshot)), absl::OkStatus(),
                   "DATA_LOSS: backup: the snapshot holds 501 bytes"});
  cases.back().messages.pop_back();
  cases.push_back({"broken", BackupStream(snapshot, 2, storage::Fnv1a64(snapshot)),
                   absl::UnavailableError("no leader"), "UNAVAILABLE: no leader"});
  for (Case& c : cases) {
    SCOPED_TRACE(c.name);
    fake_.RespondStream(std::move(c.messages), c.status);
    const Result result = Run({"backup", "--to", dir.File("b")});
    EXPECT_EQ(result.exit_code, kExitRpcError);
    EXPECT_THAT(result.err, HasSubstr(c.reason));
    EXPECT_FALSE(std::filesystem::exists(dir.File("b")));
  }
}

TEST_F(ClusterCommandsTest, BackupNeedsAFile) { ExpectUsageError({"backup"}, "--to"); }

}  // namespace
}  // namespace abode::cli

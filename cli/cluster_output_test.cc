#include "cli/cluster_output.h"

#include <gtest/gtest.h>

namespace abode::cli {
namespace {

TEST(ClusterOutputTest, StatusJsonHasEveryKey) {
  v1::ClusterStatus status;
  status.set_member_id(1);
  status.set_role("leader");
  status.set_term(3);
  status.set_leader_id(1);
  status.set_commit_index(10);
  status.set_applied_index(9);
  status.set_ready(true);
  status.set_revision(4);
  v1::Member& member = *status.add_members();
  member.set_id(1);
  member.set_role("leader");
  member.set_raft_address("127.0.0.1:7444");
  member.set_grpc_address("127.0.0.1:7443");
  const nlohmann::json expected = {
      {"member_id", 1},
      {"role", "leader"},
      {"term", 3},
      {"leader_id", 1},
      {"leader_address", nullptr},
      {"commit_index", 10},
      {"applied_index", 9},
      {"ready", true},
      {"revision", 4},
      {"members", nlohmann::json::array({{{"id", 1},
                                          {"role", "leader"},
                                          {"address", "127.0.0.1:7444@127.0.0.1:7443"},
                                          {"raft_address", "127.0.0.1:7444"},
                                          {"grpc_address", "127.0.0.1:7443"},
                                          {"leader", true}}})},
  };
  EXPECT_EQ(ClusterStatusJson(status), expected);
}

TEST(ClusterOutputTest, UnknownLeaderIsSaid) {
  v1::ClusterStatus status;
  status.set_member_id(2);
  status.set_role("candidate");
  EXPECT_EQ(ClusterStatusTable(status),
            "member 2 answered: candidate, term 0, leader unknown, commit 0, applied 0, not ready\n"
            "ID   LEADER   ROLE   RAFT-ADDRESS   GRPC-ADDRESS\n");
}

TEST(ClusterOutputTest, ChecksumJsonHasEveryKey) {
  v1::ChecksumResponse checksum;
  checksum.set_member_id(3);
  checksum.set_applied_index(50);
  checksum.set_revision(20);
  checksum.set_checksum(0xfedcba9876543210ULL);
  checksum.set_allocations(12);
  const nlohmann::json expected = {
      {"member_id", 3}, {"applied_index", 50}, {"revision", 20}, {"checksum", "fedcba9876543210"}, {"allocations", 12}};
  EXPECT_EQ(ChecksumJson(checksum), expected);
}

}  // namespace
}  // namespace abode::cli

// What abodectl prints for the Cluster service. JSON keys are a contract; cluster_output_test pins them.
#ifndef ABODE_CLI_CLUSTER_OUTPUT_H_
#define ABODE_CLI_CLUSTER_OUTPUT_H_

#include <nlohmann/json.hpp>
#include <string>

#include "abode/v1/cluster.pb.h"
#include "cli/output.h"

namespace abode::cli {

// Keys: member_id (the replica that answered), role, term, leader_id (0: none known), leader_address (null when
// unknown), commit_index, applied_index, ready, revision, members (array of objects: id, role, address as
// "RAFT@GRPC", raft_address, grpc_address, leader).
nlohmann::json ClusterStatusJson(const v1::ClusterStatus& status);
// One line about the replica that answered, then ID LEADER ("*" for the leader) ROLE RAFT-ADDRESS GRPC-ADDRESS.
std::string ClusterStatusTable(const v1::ClusterStatus& status);

// Keys: member_id, applied_index, revision, checksum (16 hex digits), allocations.
nlohmann::json ChecksumJson(const v1::ChecksumResponse& checksum);

void WriteClusterStatus(Output& output, const v1::ClusterStatus& status);
void WriteChecksum(Output& output, const v1::ChecksumResponse& checksum);
// What `abodectl backup` wrote to `path`.
void WriteBackupSaved(Output& output, const std::string& path, const v1::BackupHeader& header);

}  // namespace abode::cli

#endif  // ABODE_CLI_CLUSTER_OUTPUT_H_

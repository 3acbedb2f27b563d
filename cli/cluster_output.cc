#include "cli/cluster_output.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace abode::cli {
namespace {

std::string MemberAddress(const v1::Member& member) {
  return absl::StrCat(member.raft_address(), "@", member.grpc_address());
}

std::string ChecksumHex(const v1::ChecksumResponse& checksum) { return absl::StrFormat("%016x", checksum.checksum()); }

}  // namespace

nlohmann::json ClusterStatusJson(const v1::ClusterStatus& status) {
  nlohmann::json members = nlohmann::json::array();
  for (const v1::Member& member : status.members()) {
    members.push_back({
        {"id", member.id()},
        {"role", member.role()},
        {"address", MemberAddress(member)},
        {"raft_address", member.raft_address()},
        {"grpc_address", member.grpc_address()},
        {"leader", member.id() == status.leader_id()},
    });
  }
  return {
      {"member_id", status.member_id()},
      {"role", status.role()},
      {"term", status.term()},
      {"leader_id", status.leader_id()},
      {"leader_address", StringOrNull(status.leader_address())},
      {"commit_index", status.commit_index()},
      {"applied_index", status.applied_index()},
      {"ready", status.ready()},
      {"revision", status.revision()},
      {"members", std::move(members)},
  };
}

std::string ClusterStatusTable(const v1::ClusterStatus& status) {
  std::string text = absl::StrCat("member ", status.member_id(), " answered: ", status.role(), ", term ", status.term(),
                                  ", leader ", status.leader_id() == 0 ? "unknown" : absl::StrCat(status.leader_id()),
                                  ", commit ", status.commit_index(), ", applied ", status.applied_index(),
                                  status.ready() ? ", ready" : ", not ready", "\n");
  Table table({"ID", "LEADER", "ROLE", "RAFT-ADDRESS", "GRPC-ADDRESS"});
  for (const v1::Member& member : status.members()) {
    table.AddRow({absl::StrCat(member.id()), member.id() == status.leader_id() ? "*" : "", member.role(),
                  member.raft_address(), member.grpc_address()});
  }
  return text + table.Render();
}

nlohmann::json ChecksumJson(const v1::ChecksumResponse& checksum) {
  return {
      {"member_id", checksum.member_id()},     {"applied_index", checksum.applied_index()},
      {"revision", checksum.revision()},       {"checksum", ChecksumHex(checksum)},
      {"allocations", checksum.allocations()},
  };
}

void WriteClusterStatus(Output& output, const v1::ClusterStatus& status) {
  output.Write([&] { return ClusterStatusJson(status); }, [&] { return ClusterStatusTable(status); });
}

void WriteChecksum(Output& output, const v1::ChecksumResponse& checksum) {
  output.Write([&] { return ChecksumJson(checksum); },
               [&] {
                 return absl::StrCat("member ", checksum.member_id(), " at applied index ", checksum.applied_index(),
                                     " (revision ", checksum.revision(), "): checksum ", ChecksumHex(checksum), ", ",
                                     checksum.allocations(), " allocations\n");
               });
}

void WriteBackupSaved(Output& output, const std::string& path, const v1::BackupHeader& header) {
  const std::string checksum = absl::StrFormat("%016x", header.checksum());
  output.Write(
      [&]() -> nlohmann::json {
        return {
            {"file", path},           {"member_id", header.member_id()}, {"applied_index", header.applied_index()},
            {"revision", header.revision()}, {"checksum", checksum},     {"allocations", header.allocations()},
            {"bytes", header.size()},
        };
      },
      [&] {
        return absl::StrCat("backup ", path, ": member ", header.member_id(), " at applied index ",
                            header.applied_index(), " (revision ", header.revision(), "): checksum ", checksum, ", ",
                            header.allocations(), " allocations, ", header.size(), " bytes\n");
      });
}

}  // namespace abode::cli

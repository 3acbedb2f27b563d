// cluster status | add | remove | transfer | checksum, and backup.
#include <cstdint>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "cli/api_methods.h"
#include "cli/cluster_output.h"
#include "cli/commands.h"
#include "storage/backup_file.h"

namespace abode::cli {
namespace {

// A member address as the Cluster service spells it: "RAFT_HOST:PORT@GRPC_HOST:PORT".
CLI::Validator MemberAddressValidator() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        const auto at = text.find('@');
        if (at == std::string::npos || at == 0 || at + 1 == text.size() ||
            text.find('@', at + 1) != std::string::npos) {
          return "\"" + text + "\" is not RAFT_HOST:PORT@GRPC_HOST:PORT";
        }
        return {};
      },
      "RAFT@GRPC");
}

void ClusterStatusCommand(CLI::App& cluster, CommandAction& selected) {
  CLI::App* command = cluster.add_subcommand("status", "Members, roles, leader, term and indexes");
  OnSelected(command, selected, [](Session& session) -> absl::Status {
    return CallAndWrite(session, kClusterStatus, v1::ClusterStatusRequest(), &WriteClusterStatus);
  });
}

void ClusterAddCommand(CLI::App& cluster, CommandAction& selected) {
  struct Flags {
    v1::AddMemberRequest request;
    std::string address;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* command = cluster.add_subcommand("add", "Add a member to the cluster");
  command
      ->add_option_function<std::uint64_t>(
          "ID", [flags](std::uint64_t id) { flags->request.set_id(id); }, "The new member's id (> 0)")
      ->required()
      ->check(CLI::PositiveNumber);
  command->add_option("ADDRESS", flags->address, "Where it listens: RAFT_HOST:PORT@GRPC_HOST:PORT")
      ->required()
      ->check(MemberAddressValidator());
  command->add_flag(
      "--non-voting", [flags](std::int64_t count) { flags->request.set_non_voting(count > 0); },
      "Join as a standby that replicates but does not vote");
  OnSelected(command, selected, [flags](Session& session) -> absl::Status {
    v1::AddMemberRequest request = flags->request;
    const auto at = flags->address.find('@');
    request.set_raft_address(flags->address.substr(0, at));
    request.set_grpc_address(flags->address.substr(at + 1));
    return CallAndWrite(session, kAddMember, request, &WriteClusterStatus);
  });
}

void ClusterRemoveCommand(CLI::App& cluster, CommandAction& selected) {
  auto request = std::make_shared<v1::RemoveMemberRequest>();
  CLI::App* command = cluster.add_subcommand("remove", "Remove a member from the cluster");
  command
      ->add_option_function<std::uint64_t>(
          "ID", [request](std::uint64_t id) { request->set_id(id); }, "The member's id")
      ->required()
      ->check(CLI::PositiveNumber);
  OnSelected(command, selected, [request](Session& session) -> absl::Status {
    return CallAndWrite(session, kRemoveMember, *request, &WriteClusterStatus);
  });
}

void ClusterTransferCommand(CLI::App& cluster, CommandAction& selected) {
  auto request = std::make_shared<v1::TransferLeadershipRequest>();
  CLI::App* command = cluster.add_subcommand("transfer", "Hand leadership to a member (default: the most up to date)");
  command
      ->add_option_function<std::uint64_t>(
          "ID", [request](std::uint64_t id) { request->set_id(id); }, "The member to lead")
      ->check(CLI::PositiveNumber);
  OnSelected(command, selected, [request](Session& session) -> absl::Status {
    return CallAndWrite(session, kTransferLeadership, *request, &WriteClusterStatus);
  });
}

void ClusterChecksumCommand(CLI::App& cluster, CommandAction& selected) {
  CLI::App* command = cluster.add_subcommand("checksum", "Checksum of the replicated state at the applied index");
  OnSelected(command, selected, [](Session& session) -> absl::Status {
    return CallAndWrite(session, kChecksum, v1::ChecksumRequest(), &WriteChecksum);
  });
}

// backup --to FILE: the state, linearizable, streamed from the server, checked and written atomically.
void BackupCommand(CLI::App& app, CommandAction& selected) {
  auto to = std::make_shared<std::string>();
  CLI::App* command = app.add_subcommand(
      "backup", "Save a consistent snapshot of the whole state to a file (restore: abode-allocator --restore-from)");
  command->add_option("--to", *to, "The backup file (replaced atomically)")->required();
  OnSelected(command, selected, [to](Session& session) -> absl::Status {
    StreamOptions options;
    options.first_message_timeout = session.timeout;
    std::unique_ptr<Stream> stream = OpenServerStream(session.transport, kBackup, v1::BackupRequest(), options);
    storage::Backup backup;
    v1::BackupChunk chunk;
    bool have_header = false;
    while (stream->Read(chunk)) {
      if (!have_header) {
        if (!chunk.has_header()) return absl::DataLossError("backup: the server's stream starts without a header");
        backup.header = chunk.header();
        have_header = true;
        continue;
      }
      if (backup.snapshot.size() + chunk.data().size() > backup.header.size()) {
        return absl::DataLossError(absl::StrCat("backup: the server sent more than the ", backup.header.size(),
                                                " bytes its header announced"));
      }
      backup.snapshot += chunk.data();
    }
    if (absl::Status s = stream->Finish(); !s.ok()) return s;
    if (!have_header) return absl::DataLossError("backup: the server's stream ended without a header");
    if (absl::Status s = storage::WriteBackupFile(*to, backup); !s.ok()) return s;
    WriteBackupSaved(session.output, *to, backup.header);
    return absl::OkStatus();
  });
}

}  // namespace

void AddClusterCommands(CLI::App& app, CommandAction& selected) {
  CLI::App* cluster = app.add_subcommand("cluster", "Inspect and change the replicated cluster");
  cluster->require_subcommand(1);
  ClusterStatusCommand(*cluster, selected);
  ClusterAddCommand(*cluster, selected);
  ClusterRemoveCommand(*cluster, selected);
  ClusterTransferCommand(*cluster, selected);
  ClusterChecksumCommand(*cluster, selected);
  BackupCommand(app, selected);
}

}  // namespace abode::cli

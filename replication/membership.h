// Cluster members and their addresses. A member is known by a stable id (the StatefulSet ordinal + 1 in
// Kubernetes), the HOST:PORT of its raft transport and the HOST:PORT of its gRPC server. In the raft
// configuration both travel in one address string, "RAFT@GRPC", so every replica learns where to forward
// writes together with the membership itself.
#ifndef ABODE_REPLICATION_MEMBERSHIP_H_
#define ABODE_REPLICATION_MEMBERSHIP_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "replication/roles.h"

namespace abode::replication {

struct Member {
  uint64_t id = 0;
  std::string raft_address;  // HOST:PORT
  std::string grpc_address;  // HOST:PORT
  MemberRole role = MemberRole::kNone;  // filled in by status reports only
};

// The member with `id` in `members`, or null.
const Member* FindMember(const std::vector<Member>& members, uint64_t id);

// "RAFT@GRPC" as stored in the raft configuration.
std::string ConfigurationAddress(const Member& m);
// The inverse; an address without "@" is a raft address with no known gRPC address.
Member MemberFromConfiguration(uint64_t id, absl::string_view address);
// The raft part of a configuration address: what the TCP transport connects to.
std::string RaftPart(absl::string_view address);

// Parses "--peers": comma-separated "ID=RAFT_HOST:PORT[@GRPC_HOST:PORT]". Without "@GRPC", the gRPC address
// is the raft host with `default_grpc_port` (the cluster-wide gRPC port). Ids must be unique and > 0.
absl::StatusOr<std::vector<Member>> ParsePeers(absl::string_view spec, int default_grpc_port);

// Splits "HOST:PORT" (IPv6 hosts in brackets); INVALID_ARGUMENT naming `field` otherwise.
absl::Status SplitHostPort(absl::string_view address, absl::string_view field, std::string* host, int* port);

}  // namespace abode::replication

#endif  // ABODE_REPLICATION_MEMBERSHIP_H_

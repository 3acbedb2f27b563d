// The roles a replica and the members of its configuration play, as enums; their names are what the
// Cluster API and the metrics show.
#ifndef ABODE_REPLICATION_ROLES_H_
#define ABODE_REPLICATION_ROLES_H_

#include <array>

#include "absl/strings/string_view.h"

namespace abode::replication {

// What this replica is in raft's current term.
enum class RaftRole { kLeader, kFollower, kCandidate, kUnavailable };
inline constexpr std::array<RaftRole, 4> kRaftRoles = {RaftRole::kLeader, RaftRole::kFollower, RaftRole::kCandidate,
                                                       RaftRole::kUnavailable};

// What a member is in the configuration; the leader is shown as such whatever its configured role.
enum class MemberRole { kNone, kLeader, kVoter, kStandby, kSpare };
inline constexpr std::array<MemberRole, 4> kMemberRoles = {MemberRole::kLeader, MemberRole::kVoter,
                                                           MemberRole::kStandby, MemberRole::kSpare};

// "leader" | "follower" | "candidate" | "unavailable".
absl::string_view RoleName(RaftRole role);
// "leader" | "voter" | "standby" | "spare"; "" for kNone.
absl::string_view RoleName(MemberRole role);

}  // namespace abode::replication

#endif  // ABODE_REPLICATION_ROLES_H_

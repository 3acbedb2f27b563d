#include "replication/roles.h"

namespace abode::replication {

absl::string_view RoleName(RaftRole role) {
  switch (role) {
    case RaftRole::kLeader: return "leader";
    case RaftRole::kFollower: return "follower";
    case RaftRole::kCandidate: return "candidate";
    case RaftRole::kUnavailable: break;
  }
  return "unavailable";
}

absl::string_view RoleName(MemberRole role) {
  switch (role) {
    case MemberRole::kLeader: return "leader";
    case MemberRole::kVoter: return "voter";
    case MemberRole::kStandby: return "standby";
    case MemberRole::kSpare: return "spare";
    case MemberRole::kNone: break;
  }
  return "";
}

}  // namespace abode::replication

// Membership and leadership changes through c-raft, with the refusals that name the field. On the raft loop
// thread only; run by the leader.
#ifndef ABODE_REPLICATION_MEMBERSHIP_CHANGE_H_
#define ABODE_REPLICATION_MEMBERSHIP_CHANGE_H_

extern "C" {
#include <raft.h>
}

#include <functional>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "replication/membership.h"

namespace abode::replication {

enum class MembershipOp {
  kAdd,       // add `member` as a spare, then promote it (voter or standby) once it caught up
  kRemove,    // remove the member with `member.id`
  kTransfer,  // hand leadership to the member with `member.id`
};

using ChangeDone = absl::AnyInvocable<void(absl::Status) &&>;

// Starts `op` on `raft`, which must lead (UNAVAILABLE otherwise). `done` runs once, on the loop thread.
// `changed` runs (on the loop thread, before `done`) whenever the configuration changed, so that the answer
// can show it; it must stay callable until `done` ran.
void ChangeMembership(struct raft* raft, MembershipOp op, const Member& member, bool voter, ChangeDone done,
                      std::function<void()> changed);

}  // namespace abode::replication

#endif  // ABODE_REPLICATION_MEMBERSHIP_CHANGE_H_

#include "replication/membership_change.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace abode::replication {
namespace {

absl::string_view ConfiguredRoleName(int role) {
  switch (role) {
    case RAFT_VOTER: return RoleName(MemberRole::kVoter);
    case RAFT_STANDBY: return RoleName(MemberRole::kStandby);
    case RAFT_SPARE: return RoleName(MemberRole::kSpare);
  }
  return "unknown";
}

struct Change {
  struct raft_change change{};
  struct raft_transfer transfer{};
  ChangeDone done;
  struct raft* raft = nullptr;
  std::function<void()> changed;  // the configuration changed
  uint64_t id = 0;
  bool voter = true;
  absl::Status promote_failure;  // why the promotion failed, while the half-added member is removed again
};

absl::Status ChangeStatus(int status, absl::string_view what) {
  if (status == 0) return absl::OkStatus();
  if (status == RAFT_NOTLEADER || status == RAFT_LEADERSHIPLOST) {
    return absl::UnavailableError(absl::StrCat(what, ": leadership changed; retry"));
  }
  if (status == RAFT_CANTCHANGE) {
    return absl::FailedPreconditionError(absl::StrCat(what, ": another membership change is in progress"));
  }
  if (status == RAFT_DUPLICATEID || status == RAFT_DUPLICATEADDRESS) {
    return absl::AlreadyExistsError(absl::StrCat(what, ": ", raft_strerror(status)));
  }
  if (status == RAFT_BADID || status == RAFT_NOTFOUND) {
    return absl::NotFoundError(absl::StrCat(what, ": no such member"));
  }
  return absl::FailedPreconditionError(absl::StrCat(what, ": ", raft_strerror(status)));
}

bool InConfiguration(const raft_configuration& conf, uint64_t id) {
  for (unsigned i = 0; i < conf.n; ++i) {
    if (conf.servers[i].id == id) return true;
  }
  return false;
}

// Refusals naming the field, checked against the configuration raft holds. Raft itself names no field and
// compares whole "RAFT@GRPC" strings: it would take a second member on a raft or gRPC address already in
// use, and one on the leader's own raft address crashes it.
absl::Status CheckNewMember(const raft_configuration& conf, const Member& m) {
  for (unsigned i = 0; i < conf.n; ++i) {
    const raft_server& s = conf.servers[i];
    const Member e = MemberFromConfiguration(s.id, s.address);
    if (e.id == m.id) {
      return absl::AlreadyExistsError(absl::StrCat("id: member ", m.id, " is already in the cluster (",
                                                   ConfiguredRoleName(s.role), " at ", ConfigurationAddress(e), ")"));
    }
    if (e.raft_address == m.raft_address) {
      return absl::AlreadyExistsError(absl::StrCat("raft_address: \"", m.raft_address, "\" is already member ", e.id, "'s"));
    }
    if (e.grpc_address == m.grpc_address) {
      return absl::AlreadyExistsError(absl::StrCat("grpc_address: \"", m.grpc_address, "\" is already member ", e.id, "'s"));
    }
  }
  return absl::OkStatus();
}

void OnRolledBack(struct raft_change* req, int status) {
  auto* c = static_cast<Change*>(req->data);
  if (status != 0) {
    spdlog::warn("member {} could not be promoted and stays a spare: removing it failed: {}", c->id,
                 raft_strerror(status));
  }
  c->changed();
  std::move(c->done)(c->promote_failure);
  delete c;
}

// A member that was added but could not be promoted (unreachable, say) would otherwise stay behind as a
// spare, and a retried AddMember would find its id taken: remove it again before answering.
void OnAssigned(struct raft_change* req, int status) {
  auto* c = static_cast<Change*>(req->data);
  if (status == 0 || status == RAFT_NOTLEADER || status == RAFT_LEADERSHIPLOST) {
    if (status == 0) c->changed();  // the answer shows the member in its new role
    std::move(c->done)(ChangeStatus(status, "promote member"));
    delete c;
    return;
  }
  c->promote_failure = absl::Status(ChangeStatus(status, "promote member").code(),
                                    absl::StrCat("promote member: ", raft_strerror(status),
                                                 "; the member was removed again, add it once it is reachable"));
  if (raft_remove(c->raft, &c->change, c->id, &OnRolledBack) != 0) {
    spdlog::warn("member {} could not be promoted and stays a spare", c->id);
    std::move(c->done)(ChangeStatus(status, "promote member"));
    delete c;
  }
}

void OnAdded(struct raft_change* req, int status) {
  auto* c = static_cast<Change*>(req->data);
  if (status != 0) {
    std::move(c->done)(ChangeStatus(status, "add member"));
    delete c;
    return;
  }
  // Promotion waits for the new member to catch up with the log (c-raft's catch-up rounds).
  const int rv = raft_assign(c->raft, &c->change, c->id, c->voter ? RAFT_VOTER : RAFT_STANDBY, &OnAssigned);
  if (rv != 0) {
    std::move(c->done)(ChangeStatus(rv, "promote member"));
    delete c;
  }
}

void OnRemoved(struct raft_change* req, int status) {
  auto* c = static_cast<Change*>(req->data);
  if (status == 0) c->changed();  // the answer no longer shows the member
  std::move(c->done)(ChangeStatus(status, "remove member"));
  delete c;
}

void OnTransferred(struct raft_transfer* req) {
  auto* c = static_cast<Change*>(req->data);
  raft_id leader = 0;
  const char* address = nullptr;
  raft_leader(c->raft, &leader, &address);
  if (leader == c->raft->id && raft_state(c->raft) == RAFT_LEADER) {
    std::move(c->done)(absl::UnavailableError("transfer leadership: the target did not take over in time"));
  } else {
    std::move(c->done)(absl::OkStatus());
  }
  delete c;
}

}  // namespace

void ChangeMembership(struct raft* raft, MembershipOp op, const Member& member, bool voter, ChangeDone done,
                      std::function<void()> changed) {
  if (raft_state(raft) != RAFT_LEADER) {
    std::move(done)(absl::UnavailableError("this replica is not the raft leader; retry"));
    return;
  }
  auto* c = new Change();
  c->done = std::move(done);
  c->raft = raft;
  c->changed = std::move(changed);
  c->id = member.id;
  c->voter = voter;
  c->change.data = c;
  c->transfer.data = c;
  int rv = 0;
  const char* what = "";
  switch (op) {
    case MembershipOp::kAdd: {
      what = "add member";
      if (absl::Status refused = CheckNewMember(raft->configuration, member); !refused.ok()) {
        std::move(c->done)(refused);
        delete c;
        return;
      }
      const std::string address = ConfigurationAddress(member);
      rv = raft_add(raft, &c->change, member.id, address.c_str(), &OnAdded);
      break;
    }
    case MembershipOp::kRemove:
      what = "remove member";
      if (!InConfiguration(raft->configuration, member.id)) {
        std::move(c->done)(absl::NotFoundError(absl::StrCat("id: member ", member.id, " is not in the cluster")));
        delete c;
        return;
      }
      rv = raft_remove(raft, &c->change, member.id, &OnRemoved);
      break;
    case MembershipOp::kTransfer:
      what = "transfer leadership";
      rv = raft_transfer(raft, &c->transfer, member.id, &OnTransferred);
      break;
  }
  if (rv != 0) {
    std::move(c->done)(ChangeStatus(rv, what));
    delete c;
  }
}

}  // namespace abode::replication

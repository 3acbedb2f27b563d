// Membership changes on a cluster of real abode-allocator processes: a member started with --join is added
// through a follower and caught up by snapshot install; a follower and then the leader are removed; bad
// requests are refused with precise codes naming the field; `abodectl cluster add|remove` end to end; disaster
// recovery (--recover) and backup and restore (`abodectl backup`, --restore-from).
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "abode/v1/cluster.grpc.pb.h"
#include "absl/strings/str_format.h"
#include "integration/cluster_harness.h"
#include "test-support/eventually.h"
#include "test-support/temp_dir.h"

namespace abode::integration {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// A promotion waits for the new member to catch up, by snapshot install here.
constexpr int kChangeTimeoutMs = 30000;

grpc::Status AddMember(ClusterHarness& c, int via, uint64_t id, const std::string& raft_address,
                       const std::string& grpc_address, v1::ClusterStatus* out) {
  auto stub = v1::Cluster::NewStub(c.channel(via));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + milliseconds(kChangeTimeoutMs));
  v1::AddMemberRequest req;
  req.set_id(id);
  req.set_raft_address(raft_address);
  req.set_grpc_address(grpc_address);
  return stub->AddMember(&ctx, req, out);
}

grpc::Status RemoveMember(ClusterHarness& c, int via, uint64_t id, v1::ClusterStatus* out) {
  auto stub = v1::Cluster::NewStub(c.channel(via));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + milliseconds(kChangeTimeoutMs));
  v1::RemoveMemberRequest req;
  req.set_id(id);
  return stub->RemoveMember(&ctx, req, out);
}

std::set<uint64_t> MemberIds(const v1::ClusterStatus& st) {
  std::set<uint64_t> ids;
  for (const auto& m : st.members()) ids.insert(m.id());
  return ids;
}

// Raft ids of members numbered `members` (member i has id i + 1).
std::set<uint64_t> Ids(const std::vector<int>& members) {
  std::set<uint64_t> ids;
  for (int i : members) ids.insert(static_cast<uint64_t>(i) + 1);
  return ids;
}

// Every member listed with the addresses the harness gave it; one of them, the leader the status names,
// leads, and every other member is a voter.
bool VotersWithTheirLeader(const ClusterHarness& c, const v1::ClusterStatus& st) {
  if (MemberIds(st).count(st.leader_id()) == 0) return false;
  for (const auto& m : st.members()) {
    const int i = static_cast<int>(m.id()) - 1;
    if (i < 0 || i >= c.size()) return false;
    if (m.grpc_address() != c.grpc_address(i) || m.raft_address() != c.raft_address(i)) return false;
    if (m.role() != (m.id() == st.leader_id() ? "leader" : "voter")) return false;
  }
  return true;
}

// Polls member `i` until its status lists exactly the members `ids`: voters and their leader.
absl::StatusOr<v1::ClusterStatus> WaitForMembers(ClusterHarness& c, int i, const std::set<uint64_t>& ids) {
  std::string last = "no answer";
  v1::ClusterStatus listed;
  const bool ok = test_support::Eventually(
      [&] {
        auto st = c.Status(i, 1000);
        if (st.ok() && MemberIds(*st) == ids && VotersWithTheirLeader(c, *st)) {
          listed = *st;
          return true;
        }
        last = st.ok() ? st->ShortDebugString() : std::string(st.status().message());
        return false;
      },
      seconds(30), milliseconds(50));
  if (ok) return listed;
  return absl::DeadlineExceededError(
      absl::StrCat("member ", i + 1, " did not list the expected members (last: ", last, ")"));
}

std::unique_ptr<ClusterHarness> StartCluster(ClusterOptions o, int* leader) {
  auto h = ClusterHarness::Create(ABODE_ALLOCATOR_BIN, o);
  EXPECT_TRUE(h.ok()) << h.status();
  if (!h.ok()) return nullptr;
  const absl::Status started = (*h)->StartAll();
  EXPECT_TRUE(started.ok()) << started;
  if (!started.ok()) return nullptr;
  auto l = (*h)->WaitForLeader(seconds(30));
  EXPECT_TRUE(l.ok()) << l.status();
  if (!l.ok()) return nullptr;
  *leader = *l;
  return std::move(*h);
}

// Allocates in pool "p" through `member` (a follower forwards to the leader). A loaded machine may hold an
// election meanwhile: retried while UNAVAILABLE, which is safe as Allocate is idempotent per owner.
grpc::Status AllocateIn(ClusterHarness& c, int member, const std::string& owner) {
  const auto deadline = std::chrono::steady_clock::now() + seconds(30);
  for (;;) {
    v1::Allocation a;
    const grpc::Status s = Allocate(c, member, "p", owner, &a, 5000);
    if (s.error_code() != grpc::StatusCode::UNAVAILABLE || std::chrono::steady_clock::now() > deadline) return s;
    std::this_thread::sleep_for(milliseconds(50));
  }
}

// One write through each of `members`.
void ExpectWritesThrough(ClusterHarness& c, const std::vector<int>& members, const std::string& tag) {
  for (int i : members) {
    const grpc::Status s = AllocateIn(c, i, tag + "-" + std::to_string(i + 1));
    EXPECT_TRUE(s.ok()) << tag << " via member " << i + 1 << ": " << s.error_message();
  }
}

// All three members list each other as voters with one leader; a write through each commits, and the
// replicas converge on `allocations` allocations (the writes included).
void ExpectWholeClusterAgain(ClusterHarness& c, uint64_t allocations) {
  for (int i = 0; i < 3; ++i) {
    auto st = WaitForMembers(c, i, {1, 2, 3});
    EXPECT_TRUE(st.ok()) << st.status();
  }
  ExpectWritesThrough(c, {0, 1, 2}, "after");
  auto sum = c.WaitConverged(seconds(60));
  ASSERT_TRUE(sum.ok()) << sum.status();
  EXPECT_EQ(sum->allocations(), allocations);
}

TEST(MembershipTest, JoiningMemberAddedThroughAFollowerCatchesUpBySnapshotInstall) {
  ClusterOptions o;
  o.snapshot_threshold = 64;  // the log is compacted far past anything a new member could replay
  o.snapshot_trailing = 16;
  int leader = -1;
  auto c = StartCluster(o, &leader);
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(CreatePool(*c, leader, "p", "10.20.0.0/16").ok());
  for (int i = 0; i < 300; ++i) {
    const grpc::Status s = AllocateIn(*c, i % 3, "m-" + std::to_string(i));
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  auto joiner = c->AddJoiner();
  ASSERT_TRUE(joiner.ok()) << joiner.status();
  const uint64_t joiner_id = *joiner + 1;
  ASSERT_TRUE(c->Start(*joiner).ok());
  // Until it is added, a joining member has no configuration and knows no leader: it bootstrapped nothing.
  auto alone = c->Status(*joiner);
  ASSERT_TRUE(alone.ok()) << alone.status();
  EXPECT_EQ(alone->members_size(), 0) << alone->ShortDebugString();
  EXPECT_EQ(alone->leader_id(), 0u);
  EXPECT_FALSE(alone->ready());
  EXPECT_EQ(Slurp(c->log_path(*joiner)).find("bootstrapped"), std::string::npos);

  // Sent to a follower, the change is carried out by the leader, which answers with the new configuration.
  auto current = c->WaitForLeader(seconds(30), {0, 1, 2});
  ASSERT_TRUE(current.ok()) << current.status();
  const int follower = (*current + 1) % 3;
  v1::ClusterStatus added;
  const grpc::Status s = AddMember(*c, follower, joiner_id, c->raft_address(*joiner), c->grpc_address(*joiner), &added);
  ASSERT_TRUE(s.ok()) << s.error_code() << ": " << s.error_message();
  EXPECT_NE(added.member_id(), static_cast<uint64_t>(follower + 1)) << "answered by the follower itself";
  EXPECT_EQ(added.role(), "leader");
  EXPECT_EQ(added.leader_id(), added.member_id());
  EXPECT_EQ(MemberIds(added), (std::set<uint64_t>{1, 2, 3, 4})) << added.ShortDebugString();
  EXPECT_TRUE(VotersWithTheirLeader(*c, added)) << added.ShortDebugString();

  auto sum = c->WaitConverged(seconds(60));
  ASSERT_TRUE(sum.ok()) << sum.status();
  EXPECT_EQ(sum->allocations(), 300u);
  EXPECT_NE(Slurp(c->log_path(*joiner)).find("installed a snapshot"), std::string::npos)
      << "the new member caught up without a snapshot install";
  for (int i = 0; i < c->size(); ++i) {
    auto st = WaitForMembers(*c, i, {1, 2, 3, 4});
    EXPECT_TRUE(st.ok()) << st.status();
  }
  // The new member serves: a write through it is forwarded, and it applies it like every other member.
  ExpectWritesThrough(*c, {*joiner}, "via-new-member");
  auto after = c->WaitConverged(seconds(60));
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->allocations(), 301u);
}

TEST(MembershipTest, RemovedFollowerAndThenRemovedLeaderLeaveAWorkingCluster) {
  ClusterOptions o;
  o.members = 4;
  int leader = -1;
  auto c = StartCluster(o, &leader);
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(CreatePool(*c, leader, "p", "10.21.0.0/16").ok());
  ExpectWritesThrough(*c, {0, 1, 2, 3}, "before");

  // A follower, removed through another follower: the answer no longer lists it, nor does any remaining
  // member's status; the remaining three commit writes.
  const int victim = (leader + 1) % 4;
  v1::ClusterStatus removed;
  grpc::Status s = RemoveMember(*c, (leader + 2) % 4, victim + 1, &removed);
  ASSERT_TRUE(s.ok()) << s.error_code() << ": " << s.error_message();
  EXPECT_EQ(removed.role(), "leader") << "answered by the leader";
  EXPECT_EQ(MemberIds(removed).count(victim + 1), 0u) << removed.ShortDebugString();
  std::vector<int> remaining;
  for (int i = 0; i < 4; ++i) {
    if (i != victim) remaining.push_back(i);
  }
  for (int i : remaining) {
    auto st = WaitForMembers(*c, i, Ids(remaining));
    EXPECT_TRUE(st.ok()) << st.status();
  }
  ExpectWritesThrough(*c, remaining, "after-follower-removal");
  auto sum = c->WaitConverged(seconds(60), remaining);
  ASSERT_TRUE(sum.ok()) << sum.status();
  EXPECT_EQ(sum->allocations(), 7u);

  // The leader, removed through itself: it steps down once the change commits; the other two elect a
  // leader between them and commit writes. The removed leader no longer leads and takes no writes.
  auto current = c->WaitForLeader(seconds(30), remaining);
  ASSERT_TRUE(current.ok()) << current.status();
  leader = *current;
  std::vector<int> rest;
  for (int i : remaining) {
    if (i != leader) rest.push_back(i);
  }
  s = RemoveMember(*c, leader, leader + 1, &removed);
  if (s.ok()) {
    EXPECT_EQ(MemberIds(removed).count(leader + 1), 0u) << removed.ShortDebugString();
  } else {
    // The new majority is the other two alone. A member started a moment ago may not have its raft
    // connection to the leader yet (libraft 0.15 listens with a backlog of 1: a dropped SYN is sent again
    // after 1 s); then the leader cannot reach that majority, steps down before the change commits and
    // says so. The caller retries through a remaining member: OK, or NOT_FOUND once the change (already in
    // their logs) committed under the next leader.
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
    EXPECT_NE(s.error_message().find("leadership changed; retry"), std::string::npos) << s.error_message();
    const std::string first = s.error_message();
    const auto deadline = std::chrono::steady_clock::now() + seconds(30);
    int attempt = 0;
    for (;; ++attempt) {
      s = RemoveMember(*c, rest[attempt % 2], leader + 1, &removed);
      if (s.ok() || s.error_code() != grpc::StatusCode::UNAVAILABLE) break;
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << s.error_message();
      std::this_thread::sleep_for(milliseconds(100));
    }
    std::printf("removing the leader: \"%s\"; retry %d through the others: %s\n", first.c_str(), attempt + 1,
                s.ok() ? "OK" : s.error_message().c_str());
    EXPECT_TRUE(s.ok() || s.error_code() == grpc::StatusCode::NOT_FOUND) << s.error_code() << ": "
                                                                         << s.error_message();
  }
  auto next = c->WaitForLeader(seconds(30), rest);
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_NE(*next, leader);
  for (int i : rest) {
    auto st = WaitForMembers(*c, i, Ids(rest));
    EXPECT_TRUE(st.ok()) << st.status();
  }
  ExpectWritesThrough(*c, rest, "after-leader-removal");
  auto old = c->Status(leader);
  ASSERT_TRUE(old.ok()) << old.status();
  EXPECT_NE(old->role(), "leader") << old->ShortDebugString();
  v1::Allocation a;
  s = Allocate(*c, leader, "p", "via-removed-leader", &a);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  sum = c->WaitConverged(seconds(60), rest);
  ASSERT_TRUE(sum.ok()) << sum.status();
  EXPECT_EQ(sum->allocations(), 9u);
}

// The code and the start of the message, which names the field.
void ExpectRefused(const grpc::Status& s, grpc::StatusCode code, const std::string& field) {
  EXPECT_EQ(s.error_code(), code) << s.error_message();
  EXPECT_EQ(s.error_message().rfind(field + ": ", 0), 0u) << s.error_message();
}

// A member that joined later (--join) and was then wiped is listed as a voter like any other: started again
// with an empty data dir, it leaves the configuration and adds itself back instead of voting at once.
TEST(MembershipTest, AWipedMemberThatHadJoinedLeavesAndIsAddedBack) {
  int leader = -1;
  auto c = StartCluster({}, &leader);
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(CreatePool(*c, leader, "p", "10.25.0.0/16").ok());
  auto joiner = c->AddJoiner();
  ASSERT_TRUE(joiner.ok()) << joiner.status();
  ASSERT_TRUE(c->Start(*joiner).ok());
  EXPECT_NE(Slurp(c->log_path(*joiner)).find("waiting to be added"), std::string::npos);
  v1::ClusterStatus out;
  grpc::Status s = AddMember(*c, leader, *joiner + 1, c->raft_address(*joiner), c->grpc_address(*joiner), &out);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ExpectWritesThrough(*c, {0, 1, 2, 3}, "before");

  c->Kill(*joiner);
  c->Wipe(*joiner);
  ASSERT_TRUE(c->Start(*joiner).ok());
  EXPECT_NE(Slurp(c->log_path(*joiner)).find("left the configuration"), std::string::npos);
  for (int i = 0; i < c->size(); ++i) {
    auto st = WaitForMembers(*c, i, {1, 2, 3, 4});
    EXPECT_TRUE(st.ok()) << st.status();
  }
  ExpectWritesThrough(*c, {0, 1, 2, 3}, "after");
  auto sum = c->WaitConverged(seconds(60));
  ASSERT_TRUE(sum.ok()) << sum.status();
  EXPECT_EQ(sum->allocations(), 8u);
}

// A member the operator removed, then wiped and started again, finds a running cluster that does not list
// it: it does not add itself back (that would undo the operator's removal) but waits, as with --join, until
// the operator adds it; then it is caught up and votes again.
TEST(MembershipTest, AWipedMemberTheOperatorRemovedWaitsToBeAdded) {
  int leader = -1;
  auto c = StartCluster({}, &leader);
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(CreatePool(*c, leader, "p", "10.24.0.0/16").ok());
  ExpectWritesThrough(*c, {0, 1, 2}, "before");
  const int victim = (leader + 1) % 3;
  v1::ClusterStatus out;
  grpc::Status s = RemoveMember(*c, leader, victim + 1, &out);
  ASSERT_TRUE(s.ok()) << s.error_message();
  c->Kill(victim);
  c->Wipe(victim);
  ASSERT_TRUE(c->Start(victim).ok());
  // Start returned once the member serves: it has probed the cluster and chosen its plan, which its log
  // names (a member that meant to add itself would have started trying by now).
  const std::string started_log = Slurp(c->log_path(victim));
  EXPECT_NE(started_log.find("does not list member " + std::to_string(victim + 1)), std::string::npos) << started_log;
  EXPECT_NE(started_log.find("waiting to be added"), std::string::npos) << started_log;
  std::vector<int> rest;
  for (int i = 0; i < 3; ++i) {
    if (i != victim) rest.push_back(i);
  }
  // The others commit writes after the member came up, and still list only themselves.
  ExpectWritesThrough(*c, rest, "while-waiting");
  for (int i : rest) {
    auto st = WaitForMembers(*c, i, Ids(rest));
    EXPECT_TRUE(st.ok()) << st.status();
  }
  const std::string waiting_log = Slurp(c->log_path(victim));
  EXPECT_EQ(waiting_log.find("rejoin: "), std::string::npos) << "the member tried to add itself back\n" << waiting_log;
  EXPECT_EQ(waiting_log.find("configuration again"), std::string::npos) << waiting_log;

  // The operator's add is the one that adds it: adding a member the configuration lists is ALREADY_EXISTS.
  s = AddMember(*c, leader, victim + 1, c->raft_address(victim), c->grpc_address(victim), &out);
  ASSERT_TRUE(s.ok()) << s.error_code() << ": " << s.error_message();
  ExpectWholeClusterAgain(*c, 8);  // 3 before, 2 while waiting, 3 after
}

// Two of three members are lost for good (their data dirs gone) while all are down: no quorum can ever form
// again. The operator makes the survivor the whole configuration (--recover), starts it, and adds the other
// two back, which start empty and wait to be added. Everything the cluster acknowledged is still there.
TEST(MembershipTest, AfterLosingAMajorityTheSurvivorIsRecoveredAndTheOthersAddedBack) {
  int leader = -1;
  auto c = StartCluster({}, &leader);
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(CreatePool(*c, leader, "p", "10.26.0.0/16").ok());
  ExpectWritesThrough(*c, {0, 1, 2}, "before");
  auto converged = c->WaitConverged(seconds(30));
  ASSERT_TRUE(converged.ok()) << converged.status();
  const int survivor = (leader + 1) % 3;
  std::vector<int> lost;
  for (int i = 0; i < 3; ++i) {
    c->Kill(i);
    if (i != survivor) lost.push_back(i);
  }
  for (int i : lost) c->Wipe(i);

  // Refused: an id outside --peers, a configuration without this member, a member with no log.
  const std::string self = std::to_string(survivor + 1);
  const std::string other = std::to_string(lost[0] + 1);
  ProcessResult r = c->RunOnce(survivor, {"--recover", "9"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("id 9 is not in --peers"), std::string::npos) << r.err;
  r = c->RunOnce(survivor, {"--recover", other});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("must be in the new configuration"), std::string::npos) << r.err;
  r = c->RunOnce(lost[0], {"--recover", other});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("holds no raft log"), std::string::npos) << r.err;

  // The survivor's log, read while it is down: it holds everything the cluster had applied.
  auto log_state = [&](int i) -> nlohmann::json {
    const ProcessResult st = c->RunOnce(i, {"--log-state"});
    EXPECT_EQ(st.exit_code, 0) << st.err;
    return st.exit_code == 0 ? nlohmann::json::parse(st.out) : nlohmann::json::object();
  };
  const nlohmann::json before = log_state(survivor);
  ASSERT_TRUE(before.contains("last_index")) << before.dump();
  EXPECT_EQ(before["id"].get<uint64_t>(), static_cast<uint64_t>(survivor + 1));
  EXPECT_GE(before["last_index"].get<uint64_t>(), converged->applied_index());
  EXPECT_GE(before["term"].get<uint64_t>(), before["last_term"].get<uint64_t>());
  EXPECT_GE(before["last_term"].get<uint64_t>(), 1u);
  r = c->RunOnce(lost[0], {"--log-state"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("holds no raft log"), std::string::npos) << r.err;

  r = c->RunOnce(survivor, {"--recover", self});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  // The new configuration is one more entry in the log.
  EXPECT_EQ(log_state(survivor)["last_index"].get<uint64_t>(), before["last_index"].get<uint64_t>() + 1);
  ASSERT_TRUE(c->Start(survivor).ok());
  auto alone = WaitForMembers(*c, survivor, {static_cast<uint64_t>(survivor + 1)});
  ASSERT_TRUE(alone.ok()) << alone.status();
  ExpectWritesThrough(*c, {survivor}, "recovered");
  // Running members refuse a recovery: the data dir is locked.
  r = c->RunOnce(survivor, {"--recover", self});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("in use"), std::string::npos) << r.err;

  for (int i : lost) {
    ASSERT_TRUE(c->Start(i).ok());
    EXPECT_NE(Slurp(c->log_path(i)).find("waiting to be added"), std::string::npos);
    v1::ClusterStatus out;
    grpc::Status s = AddMember(*c, survivor, i + 1, c->raft_address(i), c->grpc_address(i), &out);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  ExpectWholeClusterAgain(*c, 7);  // 3 before, 1 on the survivor alone, 3 after
}

TEST(MembershipTest, BadChangesAreRefusedWithPreciseCodesNamingTheField) {
  int leader = -1;
  auto c = StartCluster({}, &leader);
  ASSERT_NE(c, nullptr);
  const int follower = (leader + 1) % 3;
  const std::string free_raft = "127.0.0.1:1";  // never dialled: every request below is refused
  const std::string free_grpc = "127.0.0.1:2";
  for (int via : {leader, follower}) {
    SCOPED_TRACE("via member " + std::to_string(via + 1) + (via == leader ? " (leader)" : " (follower)"));
    v1::ClusterStatus out;
    ExpectRefused(AddMember(*c, via, 0, free_raft, free_grpc, &out), grpc::StatusCode::INVALID_ARGUMENT, "id");
    ExpectRefused(AddMember(*c, via, 2, free_raft, free_grpc, &out), grpc::StatusCode::ALREADY_EXISTS, "id");
    ExpectRefused(AddMember(*c, via, 9, c->raft_address(0), free_grpc, &out), grpc::StatusCode::ALREADY_EXISTS,
                  "raft_address");
    ExpectRefused(AddMember(*c, via, 9, free_raft, c->grpc_address(1), &out), grpc::StatusCode::ALREADY_EXISTS,
                  "grpc_address");
    for (const char* bad : {"", "no-port", ":7444", "127.0.0.1:99999", "127.0.0.1:0", "::1:7444"}) {
      ExpectRefused(AddMember(*c, via, 9, bad, free_grpc, &out), grpc::StatusCode::INVALID_ARGUMENT, "raft_address");
      ExpectRefused(AddMember(*c, via, 9, free_raft, bad, &out), grpc::StatusCode::INVALID_ARGUMENT, "grpc_address");
    }
    ExpectRefused(RemoveMember(*c, via, 0, &out), grpc::StatusCode::INVALID_ARGUMENT, "id");
    ExpectRefused(RemoveMember(*c, via, 9, &out), grpc::StatusCode::NOT_FOUND, "id");
  }
  // Nothing changed: the same three voters everywhere, and the cluster commits.
  for (int i = 0; i < 3; ++i) {
    auto st = WaitForMembers(*c, i, {1, 2, 3});
    EXPECT_TRUE(st.ok()) << st.status();
  }
  ASSERT_TRUE(CreatePool(*c, follower, "p", "10.22.0.0/16").ok());
  ExpectWritesThrough(*c, {0, 1, 2}, "after-refusals");
}

TEST(MembershipTest, AnUnreachableMemberIsRefusedAndLeavesNoSpareBehind) {
  int leader = -1;
  auto c = StartCluster({}, &leader);
  ASSERT_NE(c, nullptr);
  // Nothing listens on these ports: the member is added, cannot be caught up, and the promotion fails.
  const std::string nobody_raft = "127.0.0.1:1";
  const std::string nobody_grpc = "127.0.0.1:2";
  for (int attempt = 0; attempt < 2; ++attempt) {
    SCOPED_TRACE("attempt " + std::to_string(attempt + 1));
    v1::ClusterStatus out;
    const grpc::Status s = AddMember(*c, leader, 7, nobody_raft, nobody_grpc, &out);
    // The second attempt meets the same failure, not ALREADY_EXISTS: the first left nothing behind.
    ASSERT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << s.error_message();
    EXPECT_NE(s.error_message().find("removed again"), std::string::npos) << s.error_message();
    for (int i = 0; i < 3; ++i) {
      auto st = WaitForMembers(*c, i, {1, 2, 3});
      EXPECT_TRUE(st.ok()) << st.status();
    }
  }
  ASSERT_TRUE(CreatePool(*c, leader, "p", "10.23.0.0/16").ok());
  ExpectWritesThrough(*c, {0, 1, 2}, "after-unreachable");
}

// abodectl against member `via`, with `-o json` when `json`.
ProcessResult Abodectl(ClusterHarness& c, int via, std::vector<std::string> args, bool json = true) {
  std::vector<std::string> argv = {ABODECTL_BIN, "--server", c.grpc_address(via), "--timeout", "30"};
  if (json) argv.insert(argv.end(), {"-o", "json"});
  argv.insert(argv.end(), args.begin(), args.end());
  return RunProcess(argv);
}

// The members of `abodectl cluster add|remove -o json` output, id -> role.
std::map<uint64_t, std::string> JsonMembers(const nlohmann::json& status) {
  std::map<uint64_t, std::string> out;
  if (!status.is_object() || !status["members"].is_array()) return out;
  for (const auto& m : status["members"]) out[m["id"].get<uint64_t>()] = m["role"].get<std::string>();
  return out;
}

TEST(MembershipTest, AbodectlClusterAddAndRemove) {
  int leader = -1;
  auto c = StartCluster({}, &leader);
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(CreatePool(*c, leader, "p", "10.23.0.0/16").ok());
  ExpectWritesThrough(*c, {0, 1, 2}, "before");
  auto joiner = c->AddJoiner();
  ASSERT_TRUE(joiner.ok()) << joiner.status();
  ASSERT_TRUE(c->Start(*joiner).ok());
  auto current = c->WaitForLeader(seconds(30), {0, 1, 2});
  ASSERT_TRUE(current.ok()) << current.status();
  const int follower = (*current + 1) % 3;
  const std::string address = c->raft_address(*joiner) + "@" + c->grpc_address(*joiner);

  ProcessResult r = Abodectl(*c, follower, {"cluster", "add", "4", address});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json added = nlohmann::json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(added.is_object()) << r.out;
  EXPECT_EQ(added["role"], "leader") << "answered by the leader";
  std::map<uint64_t, std::string> expected = {{1, "voter"}, {2, "voter"}, {3, "voter"}, {4, "voter"}};
  if (added["leader_id"].is_number()) expected[added["leader_id"].get<uint64_t>()] = "leader";
  auto members = JsonMembers(added);
  EXPECT_EQ(members, expected) << r.out;
  for (const auto& m : added["members"]) {
    if (m["id"] == 4) {
      EXPECT_EQ(m["address"], address);
    }
  }
  auto sum = c->WaitConverged(seconds(60));
  ASSERT_TRUE(sum.ok()) << sum.status();
  EXPECT_EQ(sum->allocations(), 3u);

  // Errors: exit 1, the code name and the field on stderr, nothing on stdout.
  struct Refusal {
    std::vector<std::string> args;
    std::string error;
  };
  const std::vector<Refusal> refusals = {
      {{"cluster", "add", "4", "127.0.0.1:1@127.0.0.1:2"}, "error: ALREADY_EXISTS: id: "},
      {{"cluster", "add", "5", address}, "error: ALREADY_EXISTS: raft_address: "},
      {{"cluster", "add", "5", "no-port@127.0.0.1:2"}, "error: INVALID_ARGUMENT: raft_address: "},
      {{"cluster", "add", "5", "127.0.0.1:1@127.0.0.1:0"}, "error: INVALID_ARGUMENT: grpc_address: "},
      {{"cluster", "remove", "9"}, "error: NOT_FOUND: id: "},
  };
  for (const Refusal& refusal : refusals) {
    r = Abodectl(*c, follower, refusal.args);
    EXPECT_EQ(r.exit_code, 1) << refusal.args[1] << " " << refusal.args[2] << ": " << r.err;
    EXPECT_EQ(r.err.rfind(refusal.error, 0), 0u) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
  }
  // What abodectl refuses itself, before any call: a usage error (exit 2).
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"cluster", "add", "0", address}, {"cluster", "add", "5", "127.0.0.1:1"}, {"cluster", "remove", "0"}}) {
    r = Abodectl(*c, follower, args);
    EXPECT_EQ(r.exit_code, 2) << args[1] << " " << args[2] << ": " << r.err;
    EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
  }

  // Removed again through the member itself (it passes the call to the leader): the answer lists the
  // other three, and so does every one of them.
  r = Abodectl(*c, *joiner, {"cluster", "remove", "4"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json removed = nlohmann::json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  EXPECT_EQ(removed["role"], "leader") << r.out;
  members = JsonMembers(removed);
  EXPECT_EQ(members.size(), 3u) << r.out;
  EXPECT_EQ(members.count(4), 0u) << r.out;
  for (int i = 0; i < 3; ++i) {
    auto st = WaitForMembers(*c, i, {1, 2, 3});
    EXPECT_TRUE(st.ok()) << st.status();
  }
  r = Abodectl(*c, follower, {"cluster", "status"}, /*json=*/false);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.find(c->grpc_address(*joiner)), std::string::npos) << r.out;
  ExpectWritesThrough(*c, {0, 1, 2}, "after");
}

// Backup and restore: `abodectl backup` through a follower while the cluster serves; every member is then
// lost. `abode-allocator --restore-from` makes member 1 afresh with the backup's state (the same checksum),
// it starts alone, and the others start empty and are added.
TEST(MembershipTest, ABackupThroughAFollowerRestoresIntoAFreshClusterWithTheSameState) {
  int leader = -1;
  auto c = StartCluster({}, &leader);
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(CreatePool(*c, leader, "p", "10.27.0.0/16").ok());
  ASSERT_TRUE(CreatePool(*c, leader, "q", "10.28.0.0/24").ok());
  ExpectWritesThrough(*c, {0, 1, 2}, "before");
  auto converged = c->WaitConverged(seconds(30));
  ASSERT_TRUE(converged.ok()) << converged.status();

  const int follower = (leader + 1) % 3;
  test_support::TempDir dir("backup");
  const std::string file = dir.File("abode.bak");
  ProcessResult r = Abodectl(*c, follower, {"backup", "--to", file});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json saved = nlohmann::json::parse(r.out);
  EXPECT_EQ(saved["checksum"], absl::StrFormat("%016x", converged->checksum()));
  EXPECT_EQ(saved["allocations"].get<uint64_t>(), 3u);
  EXPECT_EQ(saved["member_id"].get<uint64_t>(), static_cast<uint64_t>(follower + 1));
  EXPECT_GE(saved["applied_index"].get<uint64_t>(), converged->applied_index());  // a read index: never behind
  EXPECT_EQ(saved["file"], file);
  ExpectWritesThrough(*c, {leader}, "later");  // after the backup: not in it

  // A store is never replaced: member 1's data dir holds one.
  for (int i = 0; i < 3; ++i) c->Kill(i);
  r = c->RunOnce(0, {"--restore-from", file});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("is not empty"), std::string::npos) << r.err;
  for (int i = 0; i < 3; ++i) c->Wipe(i);
  // A damaged copy is refused and leaves no store behind.
  std::string bytes = Slurp(file);
  bytes[bytes.size() - 5] ^= 0x40;
  const std::string damaged = dir.File("damaged.bak");
  {
    std::FILE* f = std::fopen(damaged.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    std::fwrite(bytes.data(), 1, bytes.size(), f);
    std::fclose(f);
  }
  r = c->RunOnce(0, {"--restore-from", damaged});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("checksum"), std::string::npos) << r.err;
  std::error_code ec;
  EXPECT_TRUE(!std::filesystem::exists(c->data_dir(0), ec) || std::filesystem::is_empty(c->data_dir(0), ec));

  r = c->RunOnce(0, {"--restore-from", file});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  ASSERT_TRUE(c->Start(0).ok());
  auto alone = WaitForMembers(*c, 0, {1});
  ASSERT_TRUE(alone.ok()) << alone.status();
  auto restored = c->Checksum(0);
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(restored->checksum(), converged->checksum());
  EXPECT_EQ(restored->revision(), converged->revision());
  EXPECT_EQ(restored->allocations(), 3u);
  for (int i = 1; i <= 3; ++i) {
    r = Abodectl(*c, 0, {"get", "--owner", "before-" + std::to_string(i)});
    EXPECT_EQ(r.exit_code, 0) << r.err;
  }
  r = Abodectl(*c, 0, {"get", "--owner", "later-" + std::to_string(leader + 1)});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("NOT_FOUND"), std::string::npos) << r.err;
  r = Abodectl(*c, 0, {"pool", "get", "q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["cidr"], "10.28.0.0/24");

  for (int i = 1; i < 3; ++i) {
    ASSERT_TRUE(c->Start(i).ok());
    EXPECT_NE(Slurp(c->log_path(i)).find("waiting to be added"), std::string::npos);
    v1::ClusterStatus out;
    grpc::Status s = AddMember(*c, 0, i + 1, c->raft_address(i), c->grpc_address(i), &out);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  ExpectWholeClusterAgain(*c, 6);  // 3 restored, 3 after
  // The restored log starts with the state's snapshot: the members added later received it by install.
  for (int i = 1; i < 3; ++i) {
    EXPECT_NE(Slurp(c->log_path(i)).find("installed a snapshot"), std::string::npos) << "member " << i + 1;
  }
}

}  // namespace
}  // namespace abode::integration

// abode's replicated state machine (ReplicatedFsm over storage::StateMachine, with the entry and snapshot
// codec) run by c-raft inside its deterministic in-memory cluster (raft/fixture.h): simulated time, network
// and disks, so a lost leader, a partition or a snapshot install costs milliseconds of real time and runs
// the same way every time. The raft_fsm is the one the raft node runs.
extern "C" {
#include <raft.h>
#include <raft/fixture.h>
}

#include <algorithm>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "abode/v1/allocator.pb.h"
#include "abode/v1/commands.pb.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "allocator-service/raft_codec.h"
#include "allocator-service/replicated_fsm.h"
#include "gtest/gtest.h"
#include "storage/state_machine.h"
#include "storage/state_reader.h"
#include "test-support/temp_dir.h"

namespace abode::allocator {
namespace {

constexpr unsigned kServers = 3;
constexpr int64_t kTimeMs = 1'700'000'000'000;  // what a leader would stamp; fixed so runs compare
constexpr char kPool[] = "pods";
// Simulated milliseconds a step loop may run before the test gives up on it.
constexpr unsigned kPatienceMs = 20'000;

// One replica: its state machine behind the same ReplicatedFsm the raft node runs (snapshots serialised at
// once: the fixture's I/O has no libuv worker), observed the way the node observes it.
class Replica final : public ReplicatedFsm::Observer {
 public:
  static absl::StatusOr<std::unique_ptr<Replica>> Open(const std::string& db_path) {
    storage::StateMachineOptions options;
    options.db_path = db_path;
    auto sm = storage::StateMachine::Open(options);
    if (!sm.ok()) return sm.status();
    return std::unique_ptr<Replica>(new Replica(std::move(*sm)));
  }

  Replica(const Replica&) = delete;
  Replica& operator=(const Replica&) = delete;

  raft_fsm* fsm() { return fsm_.fsm(); }
  // The raft instance this fsm serves; set once the fixture has created it.
  void Attach(raft* r) {
    raft_ = r;
    fsm_.Attach(r);
  }
  storage::StateMachine& sm() { return *sm_; }

  void Pace(unsigned min_entries, double log_ratio, double stagger) { fsm_.Pace(min_entries, log_ratio, stagger); }
  uint64_t last_snapshot_index() const { return fsm_.stats().last_snapshot_index; }
  uint64_t snapshots_taken() const { return fsm_.stats().snapshots; }
  uint64_t restores() const { return fsm_.stats().restores; }
  uint64_t restored_index() const { return restored_index_; }  // frame index of the last restore
  uint64_t refused_entries() const { return fsm_.stats().refused_entries; }

  // What applying one proposal here produced: its log index and one outcome per command.
  struct Applied {
    uint64_t index = 0;
    std::vector<storage::CommandOutcome> outcomes;
  };
  const Applied* applied(uint64_t proposal_id) const {
    auto it = applied_.find(proposal_id);
    return it == applied_.end() ? nullptr : &it->second;
  }

  // ReplicatedFsm::Observer.
  void OnApplied(uint64_t index, uint64_t proposal_id, std::vector<storage::CommandOutcome> outcomes,
                 bool replayed) override {
    // Every entry reaches the state machine once, in log order, and nothing is replayed here (no restarts).
    EXPECT_FALSE(replayed) << "raft server " << raft_->id << " index " << index;
    EXPECT_EQ(index, sm_->raft_index()) << "raft server " << raft_->id;
    applied_[proposal_id] = Applied{index, std::move(outcomes)};
  }
  void OnApplyFailed(uint64_t index, const absl::Status& status) override {
    // The raft node stops the process here; a test reports it.
    ADD_FAILURE() << "raft server " << raft_->id << " cannot apply index " << index << ": " << status;
  }
  void OnRestored(uint64_t raft_index, bool installed) override {
    if (installed) restored_index_ = raft_index;
  }

 private:
  explicit Replica(std::unique_ptr<storage::StateMachine> sm)
      : sm_(std::move(sm)), fsm_(sm_.get(), this, /*asynchronous_snapshots=*/false) {}

  std::unique_ptr<storage::StateMachine> sm_;
  ReplicatedFsm fsm_;
  raft* raft_ = nullptr;
  std::map<uint64_t, Applied> applied_;  // by proposal id
  uint64_t restored_index_ = 0;
};

// ---- commands ----

v1::Command CreatePool(const std::string& name, const std::string& cidr) {
  v1::Command c;
  c.mutable_create_pool()->mutable_pool()->set_name(name);
  c.mutable_create_pool()->mutable_pool()->set_cidr(cidr);
  return c;
}

v1::Command Allocate(const std::string& owner) {
  v1::Command c;
  c.mutable_allocate()->set_pool(kPool);
  c.mutable_allocate()->set_owner(owner);
  return c;
}

// Allocations for owners prefix-first .. prefix-(first+n-1).
std::vector<v1::Command> Allocations(const std::string& prefix, int first, int n) {
  std::vector<v1::Command> out;
  for (int i = first; i < first + n; ++i) out.push_back(Allocate(absl::StrCat(prefix, "-", i)));
  return out;
}

class RaftFixtureTest;

// A command batch handed to raft_apply on one server; the callback fills in the rest.
struct Proposal {
  struct raft_apply req{};
  RaftFixtureTest* test = nullptr;
  unsigned server = 0;  // where it was proposed
  uint64_t proposal_id = 0;
  uint64_t index = 0;  // where raft_apply appended it
  bool answered = false;
  int status = -1;  // raft's status in the callback
};

class RaftFixtureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(raft_fixture_initialize(&fixture_), 0);
    initialized_ = true;
    for (unsigned i = 0; i < kServers; ++i) {
      auto replica = Replica::Open(dir_.File(absl::StrCat("state-", i + 1, ".db")));
      ASSERT_TRUE(replica.ok()) << replica.status();
      replicas_.push_back(std::move(*replica));
      ASSERT_EQ(raft_fixture_grow(&fixture_, replicas_[i]->fsm()), 0);
      raft* r = raft_fixture_get(&fixture_, i);
      replicas_[i]->Attach(r);
      raft_set_pre_vote(r, true);  // as raft_node.cc: a returning server does not disrupt a working leader
    }
    raft_configuration conf;
    ASSERT_EQ(raft_fixture_configuration(&fixture_, kServers, &conf), 0);
    const int bootstrapped = raft_fixture_bootstrap(&fixture_, &conf);
    raft_configuration_close(&conf);
    ASSERT_EQ(bootstrapped, 0);
    ASSERT_EQ(raft_fixture_start(&fixture_), 0);
    raft_fixture_elect(&fixture_, 0);
    ASSERT_EQ(raft_fixture_leader_index(&fixture_), 0u);
  }

  void TearDown() override {
    // Closing fails what is still pending; those callbacks need the proposals and this test alive.
    if (initialized_) raft_fixture_close(&fixture_);
  }

  raft* server(unsigned i) { return raft_fixture_get(&fixture_, i); }

  // Proposes one batch on server i (as the node would on its raft loop). Returns the proposal, or null
  // when raft refused to append it.
  Proposal* Propose(unsigned i, std::vector<v1::Command> commands) {
    v1::CommandBatch batch;
    batch.set_format_version(storage::kCommandFormatVersion);
    batch.set_time_unix_ms(kTimeMs);
    batch.set_proposal_id(++last_proposal_id_);
    auto& p = proposals_.emplace_back();
    p.test = this;
    p.server = i;
    p.proposal_id = batch.proposal_id();
    for (v1::Command& c : commands) *batch.add_commands() = std::move(c);
    raft_buffer buf = EncodeEntry(batch);
    return Submit(i, &p, buf);
  }

  // Proposes raw bytes on server i: an entry abode's codec cannot read (a broken or foreign proposer).
  Proposal* ProposeRaw(unsigned i, raft_buffer buf) {
    auto& p = proposals_.emplace_back();
    p.test = this;
    p.server = i;
    p.proposal_id = ++last_proposal_id_;
    return Submit(i, &p, buf);
  }

  Proposal* Submit(unsigned i, Proposal* p, raft_buffer buf) {
    p->req.data = p;
    const int rv = raft_apply(server(i), &p->req, &buf, 1, &RaftFixtureTest::OnApplied);
    if (rv != 0) {
      raft_free(buf.base);
      proposals_.pop_back();
      return nullptr;
    }
    p->index = raft_last_index(server(i));
    return p;
  }

  // Proposes `total` allocations for owners prefix-0.. in batches of `per_batch` on server i.
  std::vector<Proposal*> ProposeAllocations(unsigned i, const std::string& prefix, int first, int total,
                                            int per_batch) {
    std::vector<Proposal*> out;
    for (int n = first; n < first + total; n += per_batch) {
      Proposal* p = Propose(i, Allocations(prefix, n, std::min(per_batch, first + total - n)));
      EXPECT_NE(p, nullptr) << "raft server " << i + 1 << " refused a proposal";
      if (p != nullptr) out.push_back(p);
    }
    return out;
  }

  static void OnApplied(struct raft_apply* req, int status, void* result) {
    (void)result;
    auto* p = static_cast<Proposal*>(req->data);
    p->answered = true;
    p->status = status;
    if (status == 0) p->test->Confirm(*p);
  }

  // A caller heard success: remember what it was told. Each owner was told of one address only.
  void Confirm(const Proposal& p) {
    const Replica::Applied* applied = replicas_[p.server]->applied(p.proposal_id);
    ASSERT_NE(applied, nullptr) << "proposal " << p.proposal_id << " answered but not applied on its server";
    EXPECT_EQ(applied->index, p.index) << "applied at another index than it was appended at";
    for (const storage::CommandOutcome& outcome : applied->outcomes) {
      ASSERT_TRUE(outcome.ok()) << outcome.status();
      if (!outcome->has_allocation()) continue;
      const v1::Allocation& a = outcome->allocation();
      auto it = confirmed_.emplace(a.owner(), a.address()).first;
      EXPECT_EQ(it->second, a.address()) << a.owner() << " was told of two addresses";
    }
  }

  // Steps the cluster until `stop` holds; false if it still does not after max_ms of simulated time.
  bool StepUntil(std::function<bool()> stop, unsigned max_ms = kPatienceMs) {
    auto trampoline = [](raft_fixture*, void* arg) { return (*static_cast<std::function<bool()>*>(arg))(); };
    return raft_fixture_step_until(&fixture_, trampoline, &stop, max_ms);
  }

  // Steps until every server in `servers` has applied `index`.
  bool StepUntilApplied(const std::vector<unsigned>& servers, uint64_t index) {
    return StepUntil([&] {
      for (unsigned i : servers) {
        if (raft_last_applied(server(i)) < index) return false;
      }
      return true;
    });
  }

  // Steps until a server other than `old` leads.
  unsigned StepUntilNewLeader(unsigned old) {
    unsigned leader = kServers;
    EXPECT_TRUE(StepUntil([&] {
      for (unsigned i = 0; i < kServers; ++i) {
        if (i != old && raft_fixture_alive(&fixture_, i) && raft_state(server(i)) == RAFT_LEADER) leader = i;
      }
      return leader != kServers;
    })) << "no new leader";
    return leader;
  }

  // Every replica's state is byte-identical, at the same revision and raft index.
  void ExpectIdentical() {
    auto first = replicas_[0]->sm().Snapshot();
    ASSERT_TRUE(first.ok()) << first.status();
    for (unsigned i = 1; i < kServers; ++i) {
      auto snap = replicas_[i]->sm().Snapshot();
      ASSERT_TRUE(snap.ok()) << snap.status();
      EXPECT_TRUE(*snap == *first) << "raft server " << i + 1 << " holds another state (" << snap->size()
                                   << " bytes against " << first->size() << ")";
      EXPECT_EQ(replicas_[i]->sm().revision(), replicas_[0]->sm().revision()) << "raft server " << i + 1;
      EXPECT_EQ(replicas_[i]->sm().raft_index(), replicas_[0]->sm().raft_index()) << "raft server " << i + 1;
      EXPECT_EQ(raft_last_applied(server(i)), raft_last_applied(server(0))) << "raft server " << i + 1;
    }
  }

  // Allocations in server i's database, read as a client would, by owner.
  std::map<std::string, v1::Allocation> StoredAllocations(unsigned i) {
    std::map<std::string, v1::Allocation> out;
    auto reader = storage::StateReader::Open(replicas_[i]->sm().db_path(), replicas_[i]->sm().owner_index());
    EXPECT_TRUE(reader.ok()) << reader.status();
    if (!reader.ok()) return out;
    v1::ListAllocationsRequest req;
    req.set_pool(kPool);
    req.set_page_size(5000);
    for (;;) {
      auto page = (*reader)->ListAllocations(req);
      EXPECT_TRUE(page.ok()) << page.status();
      if (!page.ok()) return out;
      for (const v1::Allocation& a : page->allocations()) {
        EXPECT_TRUE(out.emplace(a.owner(), a).second) << a.owner() << " holds two addresses in one pool";
      }
      if (page->next_page_token().empty()) return out;
      req.set_page_token(page->next_page_token());
    }
  }

  // On every server: each confirmed allocation is held at the address its caller was told, and no
  // address has two holders.
  void ExpectConfirmedAllocationsHeld() {
    for (unsigned i = 0; i < kServers; ++i) {
      const auto stored = StoredAllocations(i);
      for (const auto& [owner, address] : confirmed_) {
        auto it = stored.find(owner);
        if (it == stored.end()) {
          ADD_FAILURE() << "raft server " << i + 1 << " lost the confirmed allocation of " << owner;
          continue;
        }
        EXPECT_EQ(it->second.address(), address) << owner << " on raft server " << i + 1;
      }
      std::set<std::string> addresses;
      for (const auto& [owner, a] : stored) {
        EXPECT_TRUE(addresses.insert(a.address()).second) << a.address() << " has two holders on raft server " << i + 1;
      }
    }
  }

  // The pool and `batches` committed batches of ten allocations ("base-*"), applied everywhere.
  void CommitBase(unsigned leader, int batches) {
    ASSERT_NE(Propose(leader, {CreatePool(kPool, "10.0.0.0/16")}), nullptr);
    ProposeAllocations(leader, "base", 0, batches * 10, 10);
    ASSERT_TRUE(StepUntilApplied({0, 1, 2}, raft_last_index(server(leader))));
  }

  test_support::TempDir dir_;
  std::vector<std::unique_ptr<Replica>> replicas_;  // outlive the fixture, whose servers call them
  std::list<Proposal> proposals_;                   // stable addresses for raft_apply
  std::map<std::string, std::string> confirmed_;    // owner -> address its caller was told
  raft_fixture fixture_{};
  bool initialized_ = false;
  uint64_t last_proposal_id_ = 0;
};

TEST_F(RaftFixtureTest, EveryReplicaReachesTheSameState) {
  ASSERT_NE(Propose(0, {CreatePool(kPool, "10.0.0.0/16")}), nullptr);
  const std::vector<Proposal*> batches = ProposeAllocations(0, "pod", 0, 300, 10);
  ASSERT_EQ(batches.size(), 30u);
  const uint64_t last = raft_last_index(server(0));
  ASSERT_TRUE(StepUntilApplied({0, 1, 2}, last));

  for (const Proposal& p : proposals_) {
    EXPECT_TRUE(p.answered && p.status == 0) << "proposal " << p.proposal_id << " status " << p.status;
  }
  EXPECT_EQ(confirmed_.size(), 300u);
  ExpectIdentical();
  EXPECT_EQ(replicas_[0]->sm().raft_index(), last);
  EXPECT_GE(replicas_[0]->sm().revision(), 301u);  // the pool and 300 allocations
  ExpectConfirmedAllocationsHeld();
  for (unsigned i = 0; i < kServers; ++i) EXPECT_EQ(StoredAllocations(i).size(), 300u) << "raft server " << i + 1;
}

TEST_F(RaftFixtureTest, LeaderLostMidStreamKeepsWhatWasConfirmed) {
  CommitBase(0, 5);
  const uint64_t committed = raft_last_index(server(0));

  // Ten more batches reach the followers' logs, but the leader dies before it hears they are stored.
  const std::vector<Proposal*> in_flight = ProposeAllocations(0, "lost", 0, 100, 10);
  ASSERT_TRUE(StepUntil([&] { return raft_last_index(server(1)) > committed; }));
  ASSERT_LT(server(0)->commit_index, in_flight.back()->index);
  raft_fixture_kill(&fixture_, 0);

  const unsigned leader = StepUntilNewLeader(0);
  ASSERT_NE(leader, kServers);
  ProposeAllocations(leader, "after", 0, 100, 10);
  const uint64_t last = raft_last_index(server(leader));
  ASSERT_TRUE(StepUntilApplied({1, 2}, last));

  raft_fixture_revive(&fixture_, 0);
  ASSERT_TRUE(StepUntilApplied({0, 1, 2}, last));

  // Nothing proposed on the lost leader was confirmed by it: whatever became of those entries, its
  // callers were told of failure (the new leader's log decides).
  for (const Proposal* p : in_flight) {
    EXPECT_TRUE(p->answered) << "proposal " << p->proposal_id;
    EXPECT_NE(p->status, 0) << "proposal " << p->proposal_id << " confirmed by a deposed leader";
  }
  // A caller told of failure retries; Allocate is idempotent per owner, so a retry of an allocation
  // that did commit answers with the address already held.
  const auto before_retry = StoredAllocations(leader);
  // The first of them had reached the new leader's log, so it committed there although its caller
  // heard of failure.
  EXPECT_EQ(before_retry.count("lost-0"), 1u);
  ProposeAllocations(leader, "lost", 0, 100, 10);
  ASSERT_TRUE(StepUntilApplied({0, 1, 2}, raft_last_index(server(leader))));
  for (int n = 0; n < 100; ++n) {
    const std::string owner = absl::StrCat("lost-", n);
    ASSERT_EQ(confirmed_.count(owner), 1u) << owner;
    auto held = before_retry.find(owner);
    if (held != before_retry.end()) {
      EXPECT_EQ(confirmed_[owner], held->second.address()) << owner;
    }
  }

  EXPECT_EQ(confirmed_.size(), 250u);  // base, after, lost (retried)
  ExpectIdentical();
  ExpectConfirmedAllocationsHeld();
}

TEST_F(RaftFixtureTest, PartitionedLeaderCommitsNothingAndRejoins) {
  CommitBase(0, 3);

  // Cut server 1 (the leader) off in both directions; what it is asked now can never commit.
  for (unsigned j = 1; j < kServers; ++j) {
    raft_fixture_saturate(&fixture_, 0, j);
    raft_fixture_saturate(&fixture_, j, 0);
  }
  const std::vector<Proposal*> cut_off = ProposeAllocations(0, "cut", 0, 50, 10);

  const unsigned leader = StepUntilNewLeader(0);
  ASSERT_NE(leader, kServers);
  ProposeAllocations(leader, "majority", 0, 100, 10);
  const uint64_t last = raft_last_index(server(leader));
  ASSERT_TRUE(StepUntilApplied({1, 2}, last));
  // The old leader notices it lost its quorum and steps down.
  ASSERT_TRUE(StepUntil([&] { return raft_state(server(0)) != RAFT_LEADER; }));
  for (const Proposal* p : cut_off) {
    EXPECT_TRUE(!p->answered || p->status != 0) << "proposal " << p->proposal_id << " confirmed while cut off";
  }

  for (unsigned j = 1; j < kServers; ++j) {
    raft_fixture_desaturate(&fixture_, 0, j);
    raft_fixture_desaturate(&fixture_, j, 0);
  }
  ASSERT_TRUE(StepUntilApplied({0, 1, 2}, last));
  // Make sure the healed server replaced its uncommitted tail: one more entry from the new leader.
  ASSERT_NE(Propose(leader, {Allocate("healed")}), nullptr);
  ASSERT_TRUE(StepUntilApplied({0, 1, 2}, raft_last_index(server(leader))));

  for (const Proposal* p : cut_off) {
    EXPECT_TRUE(p->answered && p->status != 0) << "proposal " << p->proposal_id << " status " << p->status;
  }
  ExpectIdentical();
  ExpectConfirmedAllocationsHeld();
  for (unsigned i = 0; i < kServers; ++i) {
    const auto stored = StoredAllocations(i);
    EXPECT_EQ(stored.size(), 30u + 100u + 1u) << "raft server " << i + 1;
    for (int n = 0; n < 50; ++n) {
      EXPECT_EQ(stored.count(absl::StrCat("cut-", n)), 0u) << "raft server " << i + 1 << " applied an entry "
                                                           << "the cut-off leader never committed";
    }
  }
}

TEST_F(RaftFixtureTest, FollowerBehindACompactedLogCatchesUpFromASnapshot) {
  for (unsigned i = 0; i < kServers; ++i) {
    raft_set_snapshot_threshold(server(i), 16);
    raft_set_snapshot_trailing(server(i), 8);
  }
  CommitBase(0, 2);

  raft_fixture_kill(&fixture_, 2);
  ProposeAllocations(0, "while-down", 0, 400, 5);
  const uint64_t last = raft_last_index(server(0));
  ASSERT_TRUE(StepUntilApplied({0, 1}, last));
  ASSERT_GT(replicas_[0]->snapshots_taken(), 0) << "the leader never compacted its log";
  const uint64_t down_at = raft_last_applied(server(2));
  ASSERT_LT(down_at + 8, last);  // what it misses is no longer in the leader's log

  raft_fixture_revive(&fixture_, 2);
  ASSERT_TRUE(StepUntilApplied({0, 1, 2}, last));
  EXPECT_GE(replicas_[2]->restores(), 1) << "the follower caught up without installing a snapshot";
  // The frame carried the index the leader's state was taken at.
  EXPECT_GT(replicas_[2]->restored_index(), down_at);
  EXPECT_LE(replicas_[2]->restored_index(), last);
  EXPECT_GE(raft_fixture_n_recv(&fixture_, 2, RAFT_IO_INSTALL_SNAPSHOT), 1u);
  EXPECT_EQ(replicas_[0]->restores(), 0);
  EXPECT_EQ(replicas_[1]->restores(), 0);

  // One more entry applied by the log on every replica, then all must agree to the byte.
  ASSERT_NE(Propose(0, {Allocate("after-restore")}), nullptr);
  ASSERT_TRUE(StepUntilApplied({0, 1, 2}, raft_last_index(server(0))));
  ExpectIdentical();
  ExpectConfirmedAllocationsHeld();
  EXPECT_EQ(StoredAllocations(2).size(), 20u + 400u + 1u);
}

TEST_F(RaftFixtureTest, PacedSnapshotsComeLessOftenAsTheStateGrows) {
  for (unsigned i = 0; i < kServers; ++i) {
    raft_set_snapshot_threshold(server(i), 16);
    raft_set_snapshot_trailing(server(i), 8);
    replicas_[i]->Pace(16, 0.5, SnapshotPacer::StaggerFor(i + 1));
  }
  CommitBase(0, 2);
  // 1,600 entries of one allocation each, applied ten at a time (raft looks at the threshold after each
  // round of applying): 100 snapshots at a fixed 16 entries.
  for (int round = 0; round < 160; ++round) {
    ProposeAllocations(0, "paced", round * 10, 10, 1);
    ASSERT_TRUE(StepUntilApplied({0, 1, 2}, raft_last_index(server(0))));
  }
  // Raft is told the paced threshold once each replica has stored its latest snapshot: half of that
  // snapshot's bytes in entries of one allocation, far above the minimum by now.
  ASSERT_TRUE(StepUntil([&] {
    for (unsigned i = 0; i < kServers; ++i) {
      if (server(i)->snapshot.threshold <= 200) return false;
    }
    return true;
  }));
  for (unsigned i = 0; i < kServers; ++i) {
    // The log between snapshots grew with the state: far fewer snapshots than 100, and still several.
    const uint64_t taken = replicas_[i]->snapshots_taken();
    EXPECT_GE(taken, 4u) << "raft server " << i + 1;
    EXPECT_LE(taken, 30u) << "raft server " << i + 1;
  }
  // Staggered: no two replicas took their latest snapshot at the same index.
  EXPECT_NE(replicas_[0]->last_snapshot_index(), replicas_[1]->last_snapshot_index());
  EXPECT_NE(replicas_[0]->last_snapshot_index(), replicas_[2]->last_snapshot_index());
  EXPECT_NE(replicas_[1]->last_snapshot_index(), replicas_[2]->last_snapshot_index());
  ExpectIdentical();
  ExpectConfirmedAllocationsHeld();
}

TEST_F(RaftFixtureTest, AnEntryTheCodecCannotReadIsNeverApplied) {
  CommitBase(0, 1);
  Proposal* good = Propose(0, {Allocate("before")});
  ASSERT_NE(good, nullptr);
  // A header that claims more payload than the entry holds.
  raft_buffer bad;
  bad.len = 16;
  bad.base = raft_calloc(1, bad.len);
  static_cast<uint8_t*>(bad.base)[0] = 0xff;
  Proposal* unreadable = ProposeRaw(0, bad);
  ASSERT_NE(unreadable, nullptr);
  Proposal* after = Propose(0, {Allocate("after")});
  ASSERT_NE(after, nullptr);

  raft_fixture_step_until_elapsed(&fixture_, 5'000);

  // Every replica applied up to the unreadable entry, refused it, and went no further: it halts rather
  // than skip an entry the others might have applied. (c-raft 0.15 then turns a follower whose apply
  // failed unavailable; the leader, having lost its followers, steps down.)
  EXPECT_TRUE(good->answered && good->status == 0);
  EXPECT_EQ(confirmed_.count("after"), 0u);
  for (unsigned i = 0; i < kServers; ++i) {
    EXPECT_GE(replicas_[i]->refused_entries(), 1) << "raft server " << i + 1;
    EXPECT_EQ(raft_last_applied(server(i)), good->index) << "raft server " << i + 1;
    EXPECT_EQ(replicas_[i]->sm().raft_index(), good->index) << "raft server " << i + 1;
    EXPECT_EQ(replicas_[i]->applied(after->proposal_id), nullptr) << "raft server " << i + 1;
  }
  ExpectIdentical();
}

}  // namespace
}  // namespace abode::allocator

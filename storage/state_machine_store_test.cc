// The state machine's store: the owner index, huge pools, snapshots and restores, determinism over a log.
#include "storage/state_machine.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/state_machine_test_fixture.h"

namespace abode::storage::state_machine_testing {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

// ---- the owner index ----

uint64_t EveryOwnerCollides(absl::string_view) { return 42; }

TEST_F(StateMachineTest, OwnersWhoseKeysHashAlikeKeepTheirOwnAllocations) {
  StateMachineOptions opts;
  opts.db_path = dir_.File("collide.db");
  opts.owner_index = std::make_shared<OwnerIndex>(&EveryOwnerCollides);
  auto sm = StateMachine::Open(opts);
  ASSERT_TRUE(sm.ok()) << sm.status();
  StateMachine& m = **sm;
  ApplyTo(m, {CreatePool(Spec("pods", "10.0.0.0/24")), CreatePool(Spec("more", "10.1.0.0/24"))}, kT0);
  auto out = ApplyTo(m, {Allocate("pods", "a"), Allocate("pods", "b"), Allocate("more", "b"), Allocate("pods", "c")},
                     kT0 + 1);
  ASSERT_THAT(out, SizeIs(4));
  for (const auto& o : out) ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(out[0]->allocation().address(), "10.0.0.1");
  EXPECT_EQ(out[1]->allocation().address(), "10.0.0.2");
  EXPECT_EQ(out[3]->allocation().address(), "10.0.0.3");

  // A retry finds its own address, not another owner's; asking for another address names its own.
  out = ApplyTo(m, {Allocate("pods", "c"), Allocate("pods", "a", "10.0.0.9"), Allocate("pods", "d")}, kT0 + 2);
  ASSERT_TRUE(out[0].ok());
  EXPECT_EQ(out[0]->allocation().address(), "10.0.0.3");
  EXPECT_EQ(out[1].status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(out[1].status().message(), HasSubstr("already holds 10.0.0.1"));
  ASSERT_TRUE(out[2].ok());
  EXPECT_EQ(out[2]->allocation().address(), "10.0.0.4");

  // Release and renew by owner touch that owner's allocations only, in every pool it holds one.
  out = ApplyTo(m, {ReleaseOwner("b"), Renew("c", 60), ReleaseOwner("nobody")}, kT0 + 3);
  ASSERT_TRUE(out[0].ok()) << out[0].status();
  ASSERT_THAT(out[0]->release().released(), SizeIs(2));
  EXPECT_EQ(out[0]->release().released(0).pool(), "pods");
  EXPECT_EQ(out[0]->release().released(1).pool(), "more");
  // Each release is a change of its own.
  EXPECT_EQ(out[0]->release().released(1).revision(), out[0]->release().released(0).revision() + 1);
  EXPECT_EQ(out[0]->release().revision(), out[0]->release().released(1).revision());
  ASSERT_TRUE(out[1].ok()) << out[1].status();
  ASSERT_THAT(out[1]->renew().allocations(), SizeIs(1));
  EXPECT_EQ(out[1]->renew().allocations(0).owner(), "c");
  ASSERT_TRUE(out[2].ok());
  EXPECT_THAT(out[2]->release().released(), IsEmpty());

  // The freed address goes to the next new owner; the others keep theirs.
  out = ApplyTo(m, {Allocate("pods", "e"), Allocate("pods", "a")}, kT0 + 4);
  EXPECT_EQ(out[0]->allocation().address(), "10.0.0.2");
  EXPECT_EQ(out[1]->allocation().address(), "10.0.0.1");
}

TEST_F(StateMachineTest, TheOwnerIndexIsRebuiltWhenTheStoreIsReopened) {
  MustCreate(Spec("pods", "10.0.0.0/24"));
  const v1::Allocation a = MustAllocate("pods", "a");
  MustAllocate("pods", "b");
  const uint64_t revision = sm_->revision();
  sm_.reset();

  StateMachineOptions opts;
  opts.db_path = dir_.File("state.db");
  opts.reuse_existing = true;
  auto sm = StateMachine::Open(opts);
  ASSERT_TRUE(sm.ok()) << sm.status();
  sm_ = std::move(*sm);
  EXPECT_EQ(sm_->revision(), revision);
  CommandOutcome retry = Run(Allocate("pods", "a"));
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_EQ(retry->allocation().address(), a.address());
  EXPECT_EQ(sm_->revision(), revision) << "a retry changes nothing";
  CommandOutcome released = Run(ReleaseOwner("b", "pods"));
  ASSERT_TRUE(released.ok()) << released.status();
  EXPECT_THAT(released->release().released(), SizeIs(1));
  absl::ReaderMutexLock lock(&sm_->owner_index()->mutex());
  EXPECT_EQ(sm_->owner_index()->rows(), 1u);
}

// ---- scale ----

TEST_F(StateMachineTest, HugePoolsAllocateWithoutEnumeration) {
  v1::PoolSpec v4 = Spec("v4", "10.0.0.0/8");
  v1::PoolSpec v6 = Spec("v6", "fd00:1:2::/48");
  const v1::Pool p4 = MustCreate(v4);
  const v1::Pool p6 = MustCreate(v6);
  EXPECT_EQ(p4.size(), "16777214");
  EXPECT_EQ(p6.size(), "1208925819614629174706175");

  constexpr int kBatches = 30;
  constexpr int kPerBatch = 100;
  for (int b = 0; b < kBatches; ++b) {
    std::vector<v1::Command> cmds;
    for (int i = 0; i < kPerBatch; ++i) {
      const std::string owner = absl::StrCat("o", b * kPerBatch + i);
      cmds.push_back(Allocate("v4", owner));
      cmds.push_back(Allocate("v6", owner));
    }
    for (const CommandOutcome& o : ApplyTo(*sm_, cmds, ++now_)) ASSERT_TRUE(o.ok()) << o.status();
  }
  const v1::Allocation last4 = MustAllocate("v4", "o2999");
  EXPECT_EQ(last4.address(), "10.0.11.184");  // the 3000th address after 10.0.0.0
  EXPECT_EQ(MustAllocate("v6", "o2999").address(), "fd00:1:2::bb8");
  EXPECT_EQ(MustAllocate("v4", "top", "10.255.255.254").address(), "10.255.255.254");
  EXPECT_EQ(MustAllocate("v6", "top", "fd00:1:2:ffff:ffff:ffff:ffff:ffff").address(),
            "fd00:1:2:ffff:ffff:ffff:ffff:ffff");

  const v1::Pool c4 = Counts(p4.spec());
  EXPECT_EQ(c4.used(), 3001u);
  EXPECT_EQ(c4.free(), "16774213");
  const v1::Pool c6 = Counts(p6.spec());
  EXPECT_EQ(c6.used(), 3001u);
  EXPECT_EQ(c6.free(), domain::U128ToString((domain::u128{1} << 80) - 1 - 3001));
  EXPECT_EQ(c6.free(), "1208925819614629174703174");
}

// ---- snapshots ----

TEST_F(StateMachineTest, SnapshotRestoreRoundTrip) {
  v1::PoolSpec seq = Spec("seq", "10.0.0.0/24", "blue");
  seq.set_strategy(v1::ALLOCATION_STRATEGY_SEQUENTIAL);
  MustCreate(seq);
  MustCreate(Spec("v6", "fd00::/64"));
  v1::Command labelled = Allocate("seq", "a", "", 60);
  labelled.mutable_allocate()->set_node("node-1");
  (*labelled.mutable_allocate()->mutable_labels())["app"] = "web";
  (*labelled.mutable_allocate()->mutable_labels())["example.com/tier"] = "front";
  ASSERT_TRUE(Run(labelled).ok());
  MustAllocate("seq", "b");
  MustAllocate("v6", "c");
  ASSERT_TRUE(Run(ReleaseOwner("b")).ok());
  const std::string snap = Snap(*sm_);
  EXPECT_EQ(snap.substr(0, 8), "ABODESNP");

  std::unique_ptr<StateMachine> restored = OpenMachine("restored.db");
  ASSERT_TRUE(restored->Restore(snap).ok());
  EXPECT_EQ(Snap(*restored), snap);
  EXPECT_EQ(restored->revision(), sm_->revision());
  EXPECT_EQ(restored->time_ms(), sm_->time_ms());
  EXPECT_EQ(*restored->EarliestExpiry(), *sm_->EarliestExpiry());

  // The in-memory index follows: the sequential cursor, the used addresses and the idempotency.
  const std::vector<v1::Command> next = {Allocate("seq", "d"), Allocate("seq", "a"), Allocate("v6", "e"),
                                         Allocate("seq", "f", "10.0.0.1")};
  auto o1 = ApplyTo(*sm_, next, kT0 + 100);
  auto o2 = ApplyTo(*restored, next, kT0 + 100);
  ASSERT_EQ(o1.size(), o2.size());
  for (size_t i = 0; i < o1.size(); ++i) {
    ASSERT_EQ(o1[i].status(), o2[i].status()) << i;
    if (o1[i].ok()) {
      EXPECT_EQ(Bytes(*o1[i]), Bytes(*o2[i])) << i;
    }
  }
  EXPECT_EQ(o1[0]->allocation().address(), "10.0.0.3");
  EXPECT_EQ(o1[3].status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(Snap(*sm_), Snap(*restored));
}

TEST_F(StateMachineTest, RestoredMachineAssignsTheSamePoolIds) {
  MustCreate(Spec("a", "10.0.0.0/24"));
  MustCreate(Spec("b", "10.1.0.0/24"));
  ASSERT_TRUE(Run(DeletePool("b")).ok());
  std::unique_ptr<StateMachine> restored = OpenMachine("restored.db");
  ASSERT_TRUE(restored->Restore(Snap(*sm_)).ok());
  ApplyTo(*sm_, {CreatePool(Spec("c", "10.2.0.0/24"))}, kT0 + 1);
  ApplyTo(*restored, {CreatePool(Spec("c", "10.2.0.0/24"))}, kT0 + 1);
  EXPECT_EQ(Snap(*sm_), Snap(*restored));
}

TEST_F(StateMachineTest, PinnedStateDumpsTheStateAtThePinWhileTheWriterGoesOn) {
  MustCreate(Spec("pods", "10.0.0.0/24"));
  MustAllocate("pods", "a");
  const std::string at_pin = Snap(*sm_);
  auto pinned = PinnedState::Pin(dir_.File("state.db"));
  ASSERT_TRUE(pinned.ok()) << pinned.status();
  // The writer commits more, enough to pass a WAL checkpoint threshold, while the pin is held.
  for (int i = 0; i < 300; ++i) MustAllocate("pods", "later-" + std::to_string(i % 200));
  ASSERT_TRUE(Run(ReleaseOwner("a")).ok());
  const std::string now = Snap(*sm_);
  ASSERT_NE(now, at_pin);

  auto dumped = (*pinned)->Dump();
  ASSERT_TRUE(dumped.ok()) << dumped.status();
  EXPECT_EQ(*dumped, at_pin);
  auto again = (*pinned)->Dump();  // the view holds for as long as the pin
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, at_pin);
  pinned->reset();
  EXPECT_EQ(Snap(*sm_), now);

  EXPECT_FALSE(PinnedState::Pin(dir_.File("missing.db")).ok());
}

TEST_F(StateMachineTest, BadSnapshotsAreRefusedAndTheStateIsKept) {
  MustCreate(Spec("pods", "10.0.0.0/24"));
  MustAllocate("pods", "a");
  MustAllocate("pods", "b", "", 30);
  const std::string good = Snap(*sm_);

  std::unique_ptr<StateMachine> other = OpenMachine("other.db");
  ApplyTo(*other, {CreatePool(Spec("mine", "192.168.0.0/24")), Allocate("mine", "x")}, kT0 + 7);
  const std::string before = Snap(*other);

  auto expect_refused = [&](const std::string& snap, absl::StatusCode code, const std::string& what) {
    const absl::Status s = other->Restore(snap);
    EXPECT_EQ(s.code(), code) << what << ": " << s;
    EXPECT_EQ(Snap(*other), before) << what;
    EXPECT_EQ(other->revision(), 2u) << what;
  };

  std::string bad_magic = good;
  bad_magic[0] = 'X';
  expect_refused(bad_magic, absl::StatusCode::kFailedPrecondition, "bad magic");
  expect_refused("", absl::StatusCode::kFailedPrecondition, "empty");
  expect_refused("ABODESN", absl::StatusCode::kFailedPrecondition, "short");
  std::string version = good;
  version[8] = 2;
  expect_refused(version, absl::StatusCode::kFailedPrecondition, "version 2");
  std::string high_version = good;
  high_version[11] = 1;
  expect_refused(high_version, absl::StatusCode::kFailedPrecondition, "version 2^24+1");

  // Truncated anywhere after the fixed header: the trailer is missing or a record is cut.
  for (size_t len = 12; len < good.size(); ++len) {
    expect_refused(good.substr(0, len), absl::StatusCode::kDataLoss, absl::StrCat("truncated at ", len));
  }
  expect_refused(good.substr(0, good.size() - 1), absl::StatusCode::kDataLoss, "last byte cut");

  // A record count that disagrees with the trailer.
  std::vector<v1::SnapshotRecord> records = DecodeRecords(good);
  ASSERT_GE(records.size(), 5u);
  ASSERT_TRUE(records.back().has_trailer());
  std::vector<v1::SnapshotRecord> dropped = records;
  dropped.erase(dropped.begin() + 2);  // an allocation
  expect_refused(EncodeRecords(good.substr(0, 12), dropped), absl::StatusCode::kDataLoss, "count mismatch");

  // A newer state version. Snapshots carry the state version, which SQLite index changes leave alone.
  ASSERT_TRUE(records[0].has_header());
  EXPECT_EQ(records[0].header().schema_version(), kStateVersion);
  std::vector<v1::SnapshotRecord> newer = records;
  newer[0].mutable_header()->set_schema_version(kStateVersion + 1);
  expect_refused(EncodeRecords(good.substr(0, 12), newer), absl::StatusCode::kFailedPrecondition, "state version 4");

  // Well-formed but inconsistent: an allocation outside its pool.
  std::vector<v1::SnapshotRecord> stray = records;
  ASSERT_TRUE(stray[2].has_allocation());
  stray[2].mutable_allocation()->mutable_allocation()->set_address("10.9.9.9");
  const absl::Status s = other->Restore(EncodeRecords(good.substr(0, 12), stray));
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(Snap(*other), before) << "a refused snapshot must leave the previous state";
  EXPECT_EQ(other->revision(), 2u);

  // Well-formed but inconsistent: one owner holding two addresses of one pool.
  std::vector<v1::SnapshotRecord> twice = records;
  v1::SnapshotRecord second = records[2];
  ASSERT_TRUE(second.has_allocation());
  second.mutable_allocation()->set_id(99);
  second.mutable_allocation()->mutable_allocation()->set_address("10.0.0.77");
  twice.insert(twice.begin() + 3, second);
  twice.back().mutable_trailer()->set_allocations(twice.back().trailer().allocations() + 1);
  const absl::Status dup = other->Restore(EncodeRecords(good.substr(0, 12), twice));
  EXPECT_EQ(dup.code(), absl::StatusCode::kDataLoss) << dup;
  EXPECT_THAT(dup.message(), HasSubstr("holds two allocations"));
  EXPECT_EQ(Snap(*other), before);

  // The re-encoding itself is faithful, and the machine still works after all those refusals.
  EXPECT_EQ(EncodeRecords(good.substr(0, 12), records), good);
  auto o = ApplyTo(*other, {Allocate("mine", "y")}, kT0 + 8);
  ASSERT_TRUE(o[0].ok()) << o[0].status();
  EXPECT_EQ(o[0]->allocation().address(), "192.168.0.2");
  EXPECT_EQ(o[0]->allocation().revision(), 3u);
  ASSERT_TRUE(other->Restore(good).ok());
  EXPECT_EQ(Snap(*other), good);
}

// ---- determinism over a random log ----

// A fixed pseudo-random command log over a handful of small pools, so that pools fill up, collide, get
// deleted and re-created, and addresses come and go.
class LogGenerator {
 public:
  explicit LogGenerator(uint64_t seed) : rng_(seed) {}

  std::vector<v1::CommandBatch> Next(int commands) {
    std::vector<v1::CommandBatch> out;
    while (commands > 0) {
      const int n = std::min(commands, 1 + static_cast<int>(Pick(8)));
      commands -= n;
      // Mostly forward, sometimes a leader with a slower clock.
      time_ += Pick(10) == 0 ? -static_cast<int64_t>(Pick(5000)) : static_cast<int64_t>(Pick(4000));
      std::vector<v1::Command> cmds;
      for (int i = 0; i < n; ++i) cmds.push_back(Command());
      out.push_back(Batch(std::move(cmds), time_));
    }
    return out;
  }

 private:
  uint64_t Pick(uint64_t n) { return rng_() % n; }

  v1::PoolSpec PoolSpecAt(size_t i) {
    struct Shape {
      const char* name;
      const char* cidr;
      const char* network;
      bool sequential;
    };
    static constexpr Shape kShapes[] = {
        {"red-a", "10.0.0.0/28", "red", false},    {"red-b", "10.0.0.16/29", "red", true},
        {"red-wide", "10.0.0.0/24", "red", false},  // overlaps red-a / red-b
        {"blue-a", "10.0.0.0/28", "blue", true},   {"v6-a", "fd00::/124", "", false},
        {"v6-b", "fd00::10/125", "", true},        {"gw", "192.168.1.0/29", "", false},
    };
    const Shape& s = kShapes[i];
    v1::PoolSpec spec = Spec(s.name, s.cidr, s.network);
    if (s.sequential) spec.set_strategy(v1::ALLOCATION_STRATEGY_SEQUENTIAL);
    if (std::string(s.name) == "gw") {
      spec.set_gateway("192.168.1.1");
      spec.add_exclude("192.168.1.4/31");
    }
    return spec;
  }

  std::string RandomAddress(const std::string& pool) {
    if (pool.rfind("v6", 0) == 0) return absl::StrCat("fd00::", absl::Hex(Pick(0x20)));
    if (pool == "gw") return absl::StrCat("192.168.1.", Pick(8));
    return absl::StrCat("10.0.0.", Pick(32));
  }

  v1::Command Command() {
    static constexpr const char* kPools[] = {"red-a", "red-b", "red-wide", "blue-a", "v6-a", "v6-b", "gw", "gone"};
    const std::string pool = kPools[Pick(8)];
    const std::string owner = absl::StrCat("owner-", Pick(40));
    const uint64_t kind = Pick(100);
    if (kind < 6) return CreatePool(PoolSpecAt(Pick(7)));
    if (kind < 9) return DeletePool(pool, Pick(2) == 0);
    if (kind < 50) {
      v1::Command c = Allocate(pool, owner, "", Pick(3) == 0 ? static_cast<int64_t>(1 + Pick(20)) : 0);
      if (Pick(2) == 0) c.mutable_allocate()->set_node(absl::StrCat("node-", Pick(4)));
      if (Pick(3) == 0) {
        (*c.mutable_allocate()->mutable_labels())["app"] = absl::StrCat("app", Pick(3));
        (*c.mutable_allocate()->mutable_labels())["zone"] = Pick(2) ? "a" : "b";
      }
      return c;
    }
    if (kind < 65) return Allocate(pool, owner, RandomAddress(pool), Pick(4) == 0 ? 5 : 0);
    if (kind < 75) return ReleaseOwner(owner, Pick(2) == 0 ? pool : "");
    if (kind < 85) {
      static constexpr const char* kNetworks[] = {"", "red", "blue", ""};
      return ReleaseAddress(RandomAddress(pool), kNetworks[Pick(4)], Pick(3) == 0 ? pool : "");
    }
    if (kind < 92) return Renew(owner, static_cast<int64_t>(Pick(30)), Pick(2) == 0 ? pool : "");
    if (kind < 98) return Expire();
    return Prune(time_ - 20000);
  }

  std::mt19937_64 rng_;
  int64_t time_ = kT0;
};

std::string OutcomeText(const CommandOutcome& o) { return o.ok() ? Bytes(*o) : o.status().ToString(); }

TEST_F(StateMachineTest, DeterministicAcrossReplicasSnapshotsAndRestores) {
  LogGenerator gen(0xab0de);
  const std::vector<v1::CommandBatch> log = gen.Next(3000);
  std::unique_ptr<StateMachine> twin = OpenMachine("twin.db");
  std::map<absl::StatusCode, int> codes;
  for (const v1::CommandBatch& b : log) {
    auto r1 = sm_->Apply(b);
    auto r2 = twin->Apply(b);
    ASSERT_TRUE(r1.ok()) << r1.status();
    ASSERT_TRUE(r2.ok()) << r2.status();
    ASSERT_EQ(r1->size(), r2->size());
    for (size_t i = 0; i < r1->size(); ++i) {
      ASSERT_EQ(OutcomeText((*r1)[i]), OutcomeText((*r2)[i]));
      ++codes[(*r1)[i].status().code()];
    }
  }
  // The log really exercised the interesting paths.
  EXPECT_GT(codes[absl::StatusCode::kOk], 1000);
  EXPECT_GT(codes[absl::StatusCode::kAlreadyExists], 10);
  EXPECT_GT(codes[absl::StatusCode::kResourceExhausted], 10);
  EXPECT_GT(codes[absl::StatusCode::kFailedPrecondition], 10);
  EXPECT_GT(codes[absl::StatusCode::kInvalidArgument], 10);
  EXPECT_GT(codes[absl::StatusCode::kNotFound], 10);
  EXPECT_GT(sm_->revision(), 1000u);

  const std::string snap = Snap(*sm_);
  EXPECT_EQ(Snap(*twin), snap);

  std::unique_ptr<StateMachine> restored = OpenMachine("restored.db");
  ASSERT_TRUE(restored->Restore(snap).ok());
  EXPECT_EQ(Snap(*restored), snap);

  // Replicas that continue from the snapshot stay in step with the one that lived through the log.
  for (const v1::CommandBatch& b : gen.Next(1500)) {
    auto r1 = sm_->Apply(b);
    auto r3 = restored->Apply(b);
    ASSERT_TRUE(r1.ok());
    ASSERT_TRUE(r3.ok());
    for (size_t i = 0; i < r1->size(); ++i) ASSERT_EQ(OutcomeText((*r1)[i]), OutcomeText((*r3)[i]));
  }
  EXPECT_EQ(Snap(*sm_), Snap(*restored));

  // Uniqueness, checked on the file itself: no address has two holders, and the store refuses a second one.
  RawDb db = OpenRaw(sm_->db_path());
  EXPECT_THAT(QueryRows(db.get(),
                        "SELECT network, hex(address), COUNT(*) FROM allocations GROUP BY network, address "
                        "HAVING COUNT(*) > 1"),
              IsEmpty());
  EXPECT_THAT(QueryRows(db.get(), "SELECT owner, pool_id FROM allocations GROUP BY owner, pool_id HAVING COUNT(*) > 1"),
              IsEmpty());
  // Every pool's used count matches its rows. History stores only ended holdings (the current holder is its
  // allocation row), each ending after it began.
  EXPECT_THAT(QueryRows(db.get(),
                        "SELECT p.name FROM pools p WHERE p.used <> "
                        "(SELECT COUNT(*) FROM allocations a WHERE a.pool_id = p.id)"),
              IsEmpty());
  EXPECT_THAT(QueryRows(db.get(), "SELECT h.id FROM history h WHERE h.to_revision <= h.from_revision"), IsEmpty());
  EXPECT_THAT(QueryRows(db.get(), "SELECT COUNT(*) > 0 FROM history"), ::testing::ElementsAre("1"));
  const std::vector<std::string> live = QueryRows(db.get(), "SELECT COUNT(*) FROM allocations");
  ASSERT_THAT(live, SizeIs(1));
  EXPECT_GT(std::stoi(live[0]), 0);

  char* err = nullptr;
  const int rc = sqlite3_exec(db.get(),
                              "INSERT INTO allocations (pool_id, network, address, owner, node, labels, ttl_s, "
                              "expire_ms, create_ms, create_revision, revision) SELECT pool_id, network, address, "
                              "owner || '-dup', node, labels, ttl_s, expire_ms, create_ms, create_revision, revision "
                              "FROM allocations ORDER BY id LIMIT 1",
                              nullptr, nullptr, &err);
  EXPECT_EQ(rc & 0xff, SQLITE_CONSTRAINT) << (err ? err : "");
  EXPECT_THAT(std::string(err ? err : ""), HasSubstr("UNIQUE"));
  sqlite3_free(err);
  EXPECT_EQ(Snap(*sm_), Snap(*restored));
}

}  // namespace
}  // namespace abode::storage::state_machine_testing

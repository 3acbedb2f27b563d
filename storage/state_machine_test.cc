#include "storage/state_machine.h"

#include <sqlite3.h>
#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "abode/v1/snapshot.pb.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "gtest/gtest.h"
#include "domain/address.h"
#include "storage/snapshot.h"
#include "test-support/temp_dir.h"

namespace abode::storage {
namespace {

using test_support::TempDir;

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

constexpr int64_t kT0 = 1'700'000'000'000;

struct SqliteHandle {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using RawDb = std::unique_ptr<sqlite3, SqliteHandle>;

RawDb OpenRaw(const std::string& path) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
  return RawDb(db);
}

// Rows of a query as text, one string per row with columns joined by '|'.
std::vector<std::string> QueryRows(sqlite3* db, const std::string& sql) {
  std::vector<std::string> rows;
  sqlite3_stmt* stmt = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  while (sqlite3_step(stmt) == SQLITE_ROW) {
    std::string row;
    for (int i = 0; i < sqlite3_column_count(stmt); ++i) {
      if (i > 0) row += "|";
      const unsigned char* t = sqlite3_column_text(stmt, i);
      row += t ? reinterpret_cast<const char*>(t) : "NULL";
    }
    rows.push_back(row);
  }
  sqlite3_finalize(stmt);
  return rows;
}

// ---- command builders ----

v1::PoolSpec Spec(const std::string& name, const std::string& cidr, const std::string& network = "") {
  v1::PoolSpec s;
  s.set_name(name);
  s.set_cidr(cidr);
  s.set_network(network);
  return s;
}

v1::Command CreatePool(const v1::PoolSpec& spec) {
  v1::Command c;
  *c.mutable_create_pool()->mutable_pool() = spec;
  return c;
}

v1::Command DeletePool(const std::string& name, bool force = false) {
  v1::Command c;
  c.mutable_delete_pool()->set_name(name);
  c.mutable_delete_pool()->set_force(force);
  return c;
}

v1::Command Allocate(const std::string& pool, const std::string& owner, const std::string& address = "",
                     int64_t ttl_seconds = 0) {
  v1::Command c;
  v1::AllocateRequest* a = c.mutable_allocate();
  a->set_pool(pool);
  a->set_owner(owner);
  a->set_address(address);
  a->set_ttl_seconds(ttl_seconds);
  return c;
}

v1::Command AllocateMany(const std::string& owner, const std::vector<std::pair<std::string, std::string>>& items) {
  v1::Command c;
  c.mutable_allocate_many()->set_owner(owner);
  c.mutable_allocate_many()->set_node("node-1");
  for (const auto& [pool, address] : items) {
    v1::AllocateItem* item = c.mutable_allocate_many()->add_items();
    item->set_pool(pool);
    item->set_address(address);
  }
  return c;
}

v1::Command ReleaseOwner(const std::string& owner, const std::string& pool = "") {
  v1::Command c;
  c.mutable_release()->set_owner(owner);
  c.mutable_release()->set_pool(pool);
  return c;
}

v1::Command ReleaseAddress(const std::string& address, const std::string& network = "", const std::string& pool = "") {
  v1::Command c;
  c.mutable_release()->set_address(address);
  c.mutable_release()->set_network(network);
  c.mutable_release()->set_pool(pool);
  return c;
}

v1::Command Renew(const std::string& owner, int64_t ttl_seconds = 0, const std::string& pool = "") {
  v1::Command c;
  c.mutable_renew()->set_owner(owner);
  c.mutable_renew()->set_ttl_seconds(ttl_seconds);
  c.mutable_renew()->set_pool(pool);
  return c;
}

v1::Command Expire() {
  v1::Command c;
  c.mutable_expire_allocations();
  return c;
}

v1::Command Prune(int64_t older_than) {
  v1::Command c;
  c.mutable_prune_history()->set_older_than_unix_ms(older_than);
  return c;
}

v1::CommandBatch Batch(std::vector<v1::Command> commands, int64_t time_ms) {
  v1::CommandBatch b;
  b.set_format_version(kCommandFormatVersion);
  b.set_time_unix_ms(time_ms);
  for (auto& c : commands) *b.add_commands() = std::move(c);
  return b;
}

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

// Serialised with map entries sorted, so that equal messages give equal bytes.
std::string Bytes(const google::protobuf::MessageLite& m) {
  std::string out;
  google::protobuf::io::StringOutputStream sink(&out);
  google::protobuf::io::CodedOutputStream coded(&sink);
  coded.SetSerializationDeterministic(true);
  m.SerializeToCodedStream(&coded);
  coded.Trim();
  return out;
}

// ---- snapshot record codec, to craft damaged snapshots ----

std::vector<v1::SnapshotRecord> DecodeRecords(const std::string& snap) {
  std::vector<v1::SnapshotRecord> out;
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(snap.data() + 12),
                                            static_cast<int>(snap.size() - 12));
  for (;;) {
    uint32_t len = 0;
    if (!in.ReadVarint32(&len)) break;
    const auto limit = in.PushLimit(static_cast<int>(len));
    v1::SnapshotRecord r;
    EXPECT_TRUE(r.ParseFromCodedStream(&in));
    in.PopLimit(limit);
    out.push_back(r);
  }
  return out;
}

std::string EncodeRecords(const std::string& prefix12, const std::vector<v1::SnapshotRecord>& records) {
  std::string out = prefix12;
  {
    google::protobuf::io::StringOutputStream sink(&out);
    google::protobuf::io::CodedOutputStream coded(&sink);
    coded.SetSerializationDeterministic(true);
    for (const auto& r : records) {
      coded.WriteVarint32(static_cast<uint32_t>(r.ByteSizeLong()));
      r.SerializeWithCachedSizes(&coded);
    }
  }
  return out;
}

// ---- fixture ----

class StateMachineTest : public ::testing::Test {
 protected:
  void SetUp() override { sm_ = OpenMachine("state.db"); }

  std::unique_ptr<StateMachine> OpenMachine(const std::string& file) {
    StateMachineOptions opts;
    opts.db_path = dir_.File(file);
    auto sm = StateMachine::Open(opts);
    EXPECT_TRUE(sm.ok()) << sm.status();
    return sm.ok() ? std::move(*sm) : nullptr;
  }

  // Applies one batch to `sm` at `time`, expecting the batch itself to be accepted.
  static std::vector<CommandOutcome> ApplyTo(StateMachine& sm, std::vector<v1::Command> commands, int64_t time) {
    auto r = sm.Apply(Batch(std::move(commands), time));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? std::move(*r) : std::vector<CommandOutcome>();
  }

  std::vector<CommandOutcome> ApplyAll(std::vector<v1::Command> commands) {
    return ApplyTo(*sm_, std::move(commands), now_);
  }

  // One command in a batch of its own.
  CommandOutcome Run(v1::Command command) {
    auto outcomes = ApplyAll({std::move(command)});
    if (outcomes.size() != 1) return absl::InternalError("no outcome");
    return outcomes[0];
  }

  v1::Allocation MustAllocate(const std::string& pool, const std::string& owner, const std::string& address = "",
                              int64_t ttl = 0) {
    CommandOutcome r = Run(Allocate(pool, owner, address, ttl));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->allocation() : v1::Allocation();
  }

  v1::Pool MustCreate(const v1::PoolSpec& spec) {
    CommandOutcome r = Run(CreatePool(spec));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->pool() : v1::Pool();
  }

  // The pool's counts, read back through an idempotent re-create of its stored spec.
  v1::Pool Counts(const v1::PoolSpec& stored_spec) {
    CommandOutcome r = Run(CreatePool(stored_spec));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->pool() : v1::Pool();
  }

  std::string Snap(StateMachine& sm) {
    auto s = sm.Snapshot();
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? *s : std::string();
  }

  TempDir dir_;
  std::unique_ptr<StateMachine> sm_;
  int64_t now_ = kT0;
};

// ---- pools ----

TEST_F(StateMachineTest, CreatePoolReturnsThePoolWithItsCounts) {
  v1::PoolSpec spec = Spec("pods", "10.0.0.0/24");
  spec.set_gateway("10.0.0.1");
  const v1::Pool p = MustCreate(spec);
  EXPECT_EQ(p.spec().name(), "pods");
  EXPECT_EQ(p.spec().strategy(), v1::ALLOCATION_STRATEGY_LOWEST);
  EXPECT_EQ(p.spec().purpose(), v1::POOL_PURPOSE_WORKLOAD);
  EXPECT_EQ(p.size(), "253");
  EXPECT_EQ(p.used(), 0u);
  EXPECT_EQ(p.free(), "253");
  EXPECT_EQ(p.create_revision(), 1u);
  EXPECT_EQ(p.create_time_unix_ms(), kT0);
  EXPECT_EQ(sm_->revision(), 1u);
  EXPECT_EQ(sm_->time_ms(), kT0);
}

TEST_F(StateMachineTest, CreatePoolStoresCanonicalText) {
  v1::PoolSpec spec = Spec("v6", "FD00:0:0:0::/64");
  spec.set_gateway("FD00::0001");
  spec.set_range_start("fd00:0::10");
  spec.set_range_end("fd00::00ff");
  spec.add_exclude("FD00::80/121");
  const v1::Pool p = MustCreate(spec);
  EXPECT_EQ(p.spec().cidr(), "fd00::/64");
  EXPECT_EQ(p.spec().gateway(), "fd00::1");
  EXPECT_EQ(p.spec().range_start(), "fd00::10");
  EXPECT_EQ(p.spec().range_end(), "fd00::ff");
  ASSERT_THAT(p.spec().exclude(), SizeIs(1));
  EXPECT_EQ(p.spec().exclude(0), "fd00::80/121");
  EXPECT_EQ(p.size(), "112");  // 0x10..0xff is 240, minus 128 excluded
}

TEST_F(StateMachineTest, RecreatingTheSameSpecReturnsThePool) {
  MustCreate(Spec("pods", "10.0.0.0/24"));
  MustAllocate("pods", "a");
  const uint64_t rev = sm_->revision();
  // Same pool in another spelling: still the same pool, and nothing changes.
  now_ += 1000;
  CommandOutcome again = Run(CreatePool(Spec("pods", "10.0.0.0/24")));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->pool().used(), 1u);
  EXPECT_EQ(again->pool().free(), "253");
  EXPECT_EQ(again->pool().create_revision(), 1u);
  EXPECT_EQ(again->pool().create_time_unix_ms(), kT0);
  EXPECT_EQ(sm_->revision(), rev);

  v1::PoolSpec explicit_defaults = Spec("pods", "10.0.0.0/24");
  explicit_defaults.set_strategy(v1::ALLOCATION_STRATEGY_LOWEST);
  explicit_defaults.set_purpose(v1::POOL_PURPOSE_WORKLOAD);
  EXPECT_TRUE(Run(CreatePool(explicit_defaults)).ok());

  CommandOutcome different = Run(CreatePool(Spec("pods", "10.0.1.0/24")));
  EXPECT_EQ(different.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(Msg(different.status()), HasSubstr("\"pods\""));
  v1::PoolSpec other_strategy = Spec("pods", "10.0.0.0/24");
  other_strategy.set_strategy(v1::ALLOCATION_STRATEGY_SEQUENTIAL);
  EXPECT_EQ(Run(CreatePool(other_strategy)).status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(sm_->revision(), rev);
}

TEST_F(StateMachineTest, OverlappingPoolsInOneNetworkAreRefused) {
  MustCreate(Spec("a", "10.0.0.0/16"));
  CommandOutcome inner = Run(CreatePool(Spec("b", "10.0.5.0/24")));
  EXPECT_EQ(inner.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Msg(inner.status()), HasSubstr("overlaps pool \"a\""));
  CommandOutcome outer = Run(CreatePool(Spec("c", "10.0.0.0/8")));
  EXPECT_EQ(outer.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Msg(outer.status()), HasSubstr("\"a\""));

  // The same CIDR in another network is another address space.
  MustCreate(Spec("a-blue", "10.0.0.0/16", "blue"));
  EXPECT_EQ(Run(CreatePool(Spec("b-blue", "10.0.255.0/24", "blue"))).status().code(),
            absl::StatusCode::kFailedPrecondition);
  // Adjacent is not overlapping; other families never overlap.
  MustCreate(Spec("next", "10.1.0.0/16"));
  MustCreate(Spec("v6", "::/0"));
  // Disjoint ranges of one CIDR share it.
  v1::PoolSpec low = Spec("low", "192.168.0.0/24");
  low.set_range_end("192.168.0.127");
  v1::PoolSpec high = Spec("high", "192.168.0.0/24");
  high.set_range_start("192.168.0.128");
  MustCreate(low);
  MustCreate(high);
  v1::PoolSpec middle = Spec("middle", "192.168.0.0/24");
  middle.set_range_start("192.168.0.127");
  middle.set_range_end("192.168.0.128");
  CommandOutcome both = Run(CreatePool(middle));
  EXPECT_EQ(both.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Msg(both.status()), HasSubstr("\"high\""));
}

TEST_F(StateMachineTest, APoolContainingAMagicAddressIsRefused) {
  v1::Command magic;
  auto* m = magic.mutable_create_magic_address()->mutable_address();
  m->set_name("dd-agent");
  m->set_address("169.254.210.210");
  m->set_label_selector("app=dd-agent");
  auto* port = m->add_ports();
  port->set_protocol(v1::PROTOCOL_UDP);
  port->set_port(8125);
  ASSERT_TRUE(Run(magic).ok());
  const uint64_t rev = sm_->revision();

  CommandOutcome covering = Run(CreatePool(Spec("ll", "169.254.0.0/16")));
  EXPECT_EQ(covering.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Msg(covering.status()), HasSubstr("magic address \"dd-agent\" (169.254.210.210)"));
  EXPECT_THAT(Msg(covering.status()), HasSubstr("pool.cidr"));
  // In any network: a magic address is reached on every node, whatever the network.
  EXPECT_EQ(Run(CreatePool(Spec("ll-blue", "169.254.210.0/24", "blue"))).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(sm_->revision(), rev);

  // Beside it, and in the other family, pools are fine.
  MustCreate(Spec("ll-low", "169.254.1.0/24"));
  MustCreate(Spec("v6", "fe80::/64"));
}

TEST_F(StateMachineTest, InvalidSpecIsRefusedAndLeavesNoTrace) {
  CommandOutcome r = Run(CreatePool(Spec("pods", "10.0.0.1/24")));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(r.status()), HasSubstr("pool.cidr"));
  EXPECT_EQ(sm_->revision(), 0u);
  EXPECT_EQ(Run(Allocate("pods", "a")).status().code(), absl::StatusCode::kNotFound);
}

// ---- allocation ----

TEST_F(StateMachineTest, LowestStrategySkipsTheNetworkAddressAndReusesFreedAddresses) {
  MustCreate(Spec("pods", "10.0.0.0/24"));
  const v1::Allocation a = MustAllocate("pods", "a");
  EXPECT_EQ(a.address(), "10.0.0.1");
  EXPECT_EQ(a.prefix_length(), 24);
  EXPECT_EQ(a.pool(), "pods");
  EXPECT_EQ(a.owner(), "a");
  EXPECT_EQ(MustAllocate("pods", "b").address(), "10.0.0.2");
  EXPECT_EQ(MustAllocate("pods", "c").address(), "10.0.0.3");
  ASSERT_TRUE(Run(ReleaseOwner("a")).ok());
  EXPECT_EQ(MustAllocate("pods", "d").address(), "10.0.0.1");
  EXPECT_EQ(MustAllocate("pods", "e").address(), "10.0.0.4");
}

TEST_F(StateMachineTest, GatewayAndExcludesAreSkipped) {
  v1::PoolSpec spec = Spec("pods", "10.0.0.0/24");
  spec.set_gateway("10.0.0.1");
  spec.add_exclude("10.0.0.2/31");
  MustCreate(spec);
  const v1::Allocation a = MustAllocate("pods", "a");
  EXPECT_EQ(a.address(), "10.0.0.4");
  EXPECT_EQ(a.gateway(), "10.0.0.1");
}

TEST_F(StateMachineTest, SequentialStrategyDoesNotReuseAtOnceAndWraps) {
  v1::PoolSpec spec = Spec("seq", "10.0.0.0/29");  // .1 - .6
  spec.set_strategy(v1::ALLOCATION_STRATEGY_SEQUENTIAL);
  MustCreate(spec);
  EXPECT_EQ(MustAllocate("seq", "o1").address(), "10.0.0.1");
  EXPECT_EQ(MustAllocate("seq", "o2").address(), "10.0.0.2");
  EXPECT_EQ(MustAllocate("seq", "o3").address(), "10.0.0.3");
  ASSERT_TRUE(Run(ReleaseOwner("o2")).ok());
  EXPECT_EQ(MustAllocate("seq", "o4").address(), "10.0.0.4");  // not the freed .2
  EXPECT_EQ(MustAllocate("seq", "o5").address(), "10.0.0.5");
  ASSERT_TRUE(Run(ReleaseOwner("o1")).ok());
  EXPECT_EQ(MustAllocate("seq", "o6").address(), "10.0.0.6");
  // The end of the range: wrap to the lowest free, .1, then on to .2.
  EXPECT_EQ(MustAllocate("seq", "o7").address(), "10.0.0.1");
  EXPECT_EQ(MustAllocate("seq", "o8").address(), "10.0.0.2");
  EXPECT_EQ(Run(Allocate("seq", "o9")).status().code(), absl::StatusCode::kResourceExhausted);
  // A requested address moves the cursor too.
  ASSERT_TRUE(Run(ReleaseOwner("o4")).ok());
  ASSERT_TRUE(Run(ReleaseOwner("o5")).ok());
  ASSERT_TRUE(Run(ReleaseOwner("o3")).ok());
  EXPECT_EQ(MustAllocate("seq", "p1", "10.0.0.4").address(), "10.0.0.4");
  EXPECT_EQ(MustAllocate("seq", "p2").address(), "10.0.0.5");
  EXPECT_EQ(MustAllocate("seq", "p3").address(), "10.0.0.3");
}

TEST_F(StateMachineTest, AllocateIsIdempotentPerOwnerAndPool) {
  MustCreate(Spec("pods", "10.0.0.0/24"));
  MustCreate(Spec("other", "10.1.0.0/24"));
  const v1::Allocation first = MustAllocate("pods", "k8s/uid-1/eth0");
  const uint64_t rev = sm_->revision();
  now_ += 5000;
  const v1::Allocation again = MustAllocate("pods", "k8s/uid-1/eth0");
  EXPECT_EQ(again.address(), first.address());
  EXPECT_EQ(again.create_revision(), first.create_revision());
  EXPECT_EQ(again.create_time_unix_ms(), first.create_time_unix_ms());
  EXPECT_EQ(sm_->revision(), rev) << "a retry without a TTL changes nothing";
  // Asking again for the address already held is the same retry.
  EXPECT_EQ(MustAllocate("pods", "k8s/uid-1/eth0", first.address()).address(), first.address());
  // The same owner in another pool holds another allocation.
  EXPECT_EQ(MustAllocate("other", "k8s/uid-1/eth0").address(), "10.1.0.1");
  // Asking for a different address while holding one is refused.
  CommandOutcome moved = Run(Allocate("pods", "k8s/uid-1/eth0", "10.0.0.77"));
  EXPECT_EQ(moved.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Msg(moved.status()), HasSubstr("already holds 10.0.0.1"));

  // Retries in one batch, after other owners: each answers the held address, costs no address of the pool
  // and no revision, and the next new owner gets the next free address.
  const uint64_t before = sm_->revision();
  auto batch = ApplyAll({Allocate("pods", "k8s/uid-1/eth0"), Allocate("pods", "k8s/uid-2/eth0"),
                         Allocate("pods", "k8s/uid-2/eth0"), Allocate("pods", "k8s/uid-1/eth0")});
  ASSERT_EQ(batch.size(), 4u);
  for (const auto& r : batch) ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(batch[0]->allocation().address(), "10.0.0.1");
  EXPECT_EQ(batch[1]->allocation().address(), "10.0.0.2");
  EXPECT_EQ(batch[2]->allocation().address(), "10.0.0.2");
  EXPECT_EQ(batch[3]->allocation().address(), "10.0.0.1");
  EXPECT_EQ(sm_->revision(), before + 1);
  EXPECT_EQ(MustAllocate("pods", "k8s/uid-3/eth0").address(), "10.0.0.3");

  // A retry in a pool that has filled up since is still answered with the held address.
  MustCreate(Spec("tiny", "10.2.0.0/30"));  // 10.2.0.1 and 10.2.0.2
  EXPECT_EQ(MustAllocate("tiny", "a").address(), "10.2.0.1");
  EXPECT_EQ(MustAllocate("tiny", "b").address(), "10.2.0.2");
  EXPECT_EQ(MustAllocate("tiny", "a").address(), "10.2.0.1");
  EXPECT_EQ(Run(Allocate("tiny", "c")).status().code(), absl::StatusCode::kResourceExhausted);
}

TEST_F(StateMachineTest, RequestedAddress) {
  v1::PoolSpec spec = Spec("pods", "10.0.0.0/24");
  spec.set_gateway("10.0.0.1");
  spec.add_exclude("10.0.0.200/29");
  MustCreate(spec);
  EXPECT_EQ(MustAllocate("pods", "a", "10.0.0.50").address(), "10.0.0.50");
  EXPECT_EQ(MustAllocate("pods", "first").address(), "10.0.0.2");

  CommandOutcome taken = Run(Allocate("pods", "b", "10.0.0.50"));
  EXPECT_EQ(taken.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(Msg(taken.status()), HasSubstr("held by owner \"a\""));

  struct Case {
    const char* address;
    const char* why;
  };
  for (const Case& c : {Case{"10.0.0.1", "gateway"}, Case{"10.0.0.0", "network address"},
                        Case{"10.0.0.255", "broadcast address"}, Case{"10.0.0.203", "excluded by 10.0.0.200/29"},
                        Case{"10.0.1.5", "outside pool"}, Case{"fd00::1", "outside pool"}}) {
    CommandOutcome r = Run(Allocate("pods", "b", c.address));
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << c.address;
    EXPECT_THAT(Msg(r.status()), HasSubstr(c.why)) << c.address;
    EXPECT_THAT(Msg(r.status()), ::testing::StartsWith("address:")) << c.address;
  }
  CommandOutcome garbage = Run(Allocate("pods", "b", "10.0.0"));
  EXPECT_EQ(garbage.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(garbage.status()), ::testing::StartsWith("address:"));
  // A requested address in non-canonical text is stored canonically.
  MustCreate(Spec("v6", "fd00::/64"));
  EXPECT_EQ(MustAllocate("v6", "a", "FD00:0::00AB").address(), "fd00::ab");
}

TEST_F(StateMachineTest, AllocateValidatesItsRequest) {
  MustCreate(Spec("pods", "10.0.0.0/24"));
  EXPECT_EQ(Run(Allocate("pods", "")).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Run(Allocate("pods", std::string(254, 'o'))).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Run(Allocate("", "a")).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Run(Allocate("nope", "a")).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Run(Allocate("pods", "a", "", -1)).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Run(Allocate("pods", "a", "", int64_t{11} * 365 * 24 * 3600)).status().code(),
            absl::StatusCode::kInvalidArgument);
  v1::Command bad_node = Allocate("pods", "a");
  bad_node.mutable_allocate()->set_node("Node_1");
  EXPECT_EQ(Run(bad_node).status().code(), absl::StatusCode::kInvalidArgument);
  v1::Command bad_label = Allocate("pods", "a");
  (*bad_label.mutable_allocate()->mutable_labels())["bad key"] = "v";
  EXPECT_EQ(Run(bad_label).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Run(v1::Command()).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(sm_->revision(), 1u);
}

TEST_F(StateMachineTest, FullPoolIsResourceExhausted) {
  MustCreate(Spec("tiny", "10.0.0.0/30"));  // .1 and .2
  MustAllocate("tiny", "a");
  MustAllocate("tiny", "b");
  CommandOutcome full = Run(Allocate("tiny", "c"));
  EXPECT_EQ(full.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(Msg(full.status()), HasSubstr("\"tiny\" is full"));
  // Retries of existing owners still succeed on a full pool.
  EXPECT_EQ(MustAllocate("tiny", "a").address(), "10.0.0.1");
  ASSERT_TRUE(Run(ReleaseAddress("10.0.0.2")).ok());
  EXPECT_EQ(MustAllocate("tiny", "c").address(), "10.0.0.2");

  // A pool whose every address is reserved is full from the start.
  v1::PoolSpec none = Spec("none", "10.9.0.1/32");
  none.set_gateway("10.9.0.1");
  MustCreate(none);
  EXPECT_EQ(Run(Allocate("none", "x")).status().code(), absl::StatusCode::kResourceExhausted);
}

// ---- release ----

TEST_F(StateMachineTest, ReleaseByOwnerAndByAddress) {
  MustCreate(Spec("pods", "10.0.0.0/24"));
  MustCreate(Spec("ext", "192.0.2.0/24"));
  MustAllocate("pods", "a");
  MustAllocate("ext", "a");
  MustAllocate("pods", "b");

  // By owner and pool: only that pool.
  CommandOutcome one = Run(ReleaseOwner("a", "ext"));
  ASSERT_TRUE(one.ok()) << one.status();
  ASSERT_THAT(one->release().released(), SizeIs(1));
  EXPECT_EQ(one->release().released(0).address(), "192.0.2.1");
  EXPECT_EQ(one->release().revision(), sm_->revision());

  MustAllocate("ext", "a");
  // By owner alone: every pool.
  CommandOutcome all = Run(ReleaseOwner("a"));
  ASSERT_TRUE(all.ok());
  EXPECT_THAT(all->release().released(), SizeIs(2));

  // By address.
  CommandOutcome by_addr = Run(ReleaseAddress("10.0.0.2"));
  ASSERT_TRUE(by_addr.ok()) << by_addr.status();
  ASSERT_THAT(by_addr->release().released(), SizeIs(1));
  EXPECT_EQ(by_addr->release().released(0).owner(), "b");

  // Idempotent: nothing held is success with nothing released, and no revision.
  const uint64_t rev = sm_->revision();
  for (const v1::Command& c : {ReleaseAddress("10.0.0.2"), ReleaseOwner("b"), ReleaseOwner("never-seen"),
                               ReleaseAddress("10.0.0.2", "", "pods")}) {
    CommandOutcome r = Run(c);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_THAT(r->release().released(), IsEmpty());
    EXPECT_EQ(r->release().revision(), rev);
  }
  EXPECT_EQ(sm_->revision(), rev);

  EXPECT_EQ(Run(ReleaseOwner("")).status().code(), absl::StatusCode::kInvalidArgument);
  v1::Command both = ReleaseOwner("a");
  both.mutable_release()->set_address("10.0.0.1");
  EXPECT_EQ(Run(both).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Run(ReleaseAddress("not-an-ip")).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Run(ReleaseOwner("a", "nope")).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(StateMachineTest, ReleaseOfAnAddressHeldInSeveralNetworksMustSayWhich) {
  MustCreate(Spec("red-pods", "10.0.0.0/24", "red"));
  MustCreate(Spec("blue-pods", "10.0.0.0/24", "blue"));
  MustAllocate("red-pods", "r");
  MustAllocate("blue-pods", "b");
  const std::string before = Snap(*sm_);

  CommandOutcome ambiguous = Run(ReleaseAddress("10.0.0.1"));
  EXPECT_EQ(ambiguous.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(ambiguous.status()), HasSubstr("\"red\""));
  EXPECT_THAT(Msg(ambiguous.status()), HasSubstr("\"blue\""));
  EXPECT_EQ(Snap(*sm_), before);

  CommandOutcome red = Run(ReleaseAddress("10.0.0.1", "red"));
  ASSERT_TRUE(red.ok());
  ASSERT_THAT(red->release().released(), SizeIs(1));
  EXPECT_EQ(red->release().released(0).owner(), "r");
  // Now only one network holds it: the plain address is enough.
  MustAllocate("red-pods", "r2");
  CommandOutcome by_pool = Run(ReleaseAddress("10.0.0.1", "", "blue-pods"));
  ASSERT_TRUE(by_pool.ok());
  ASSERT_THAT(by_pool->release().released(), SizeIs(1));
  EXPECT_EQ(by_pool->release().released(0).owner(), "b");
  CommandOutcome plain = Run(ReleaseAddress("10.0.0.1"));
  ASSERT_TRUE(plain.ok());
  ASSERT_THAT(plain->release().released(), SizeIs(1));
  EXPECT_EQ(plain->release().released(0).owner(), "r2");
}

// ---- TTL ----

TEST_F(StateMachineTest, ExpiredAllocationsAreReclaimedByALaterBatch) {
  MustCreate(Spec("pods", "10.0.0.0/30"));
  const v1::Allocation a = MustAllocate("pods", "a", "", 30);
  EXPECT_EQ(a.ttl_seconds(), 30);
  EXPECT_EQ(a.expire_time_unix_ms(), kT0 + 30000);
  MustAllocate("pods", "forever");
  auto earliest = sm_->EarliestExpiry();
  ASSERT_TRUE(earliest.ok());
  EXPECT_EQ(*earliest, kT0 + 30000);

  now_ = kT0 + 29999;
  CommandOutcome early = Run(Expire());
  ASSERT_TRUE(early.ok());
  EXPECT_EQ(early->changed(), 0u);
  EXPECT_EQ(Run(Allocate("pods", "b")).status().code(), absl::StatusCode::kResourceExhausted);

  now_ = kT0 + 30000;
  const uint64_t rev = sm_->revision();
  CommandOutcome due = Run(Expire());
  ASSERT_TRUE(due.ok());
  EXPECT_EQ(due->changed(), 1u);
  EXPECT_EQ(sm_->revision(), rev + 1);
  EXPECT_EQ(*sm_->EarliestExpiry(), std::nullopt);
  EXPECT_EQ(MustAllocate("pods", "b").address(), "10.0.0.1");
  EXPECT_EQ(Run(Expire())->changed(), 0u);
}

TEST_F(StateMachineTest, RenewExtendsTheLease) {
  MustCreate(Spec("pods", "10.0.0.0/24"));
  MustAllocate("pods", "a", "", 30);
  now_ = kT0 + 20000;
  CommandOutcome renewed = Run(Renew("a"));
  ASSERT_TRUE(renewed.ok()) << renewed.status();
  ASSERT_THAT(renewed->renew().allocations(), SizeIs(1));
  EXPECT_EQ(renewed->renew().allocations(0).expire_time_unix_ms(), kT0 + 50000);
  EXPECT_EQ(renewed->renew().allocations(0).revision(), sm_->revision());

  now_ = kT0 + 40000;
  EXPECT_EQ(Run(Expire())->changed(), 0u);
  // A new TTL replaces the old one.
  CommandOutcome longer = Run(Renew("a", 120, "pods"));
  ASSERT_TRUE(longer.ok());
  EXPECT_EQ(longer->renew().allocations(0).ttl_seconds(), 120);
  EXPECT_EQ(longer->renew().allocations(0).expire_time_unix_ms(), kT0 + 160000);
  // A retried allocate renews too.
  now_ = kT0 + 100000;
  EXPECT_EQ(MustAllocate("pods", "a").expire_time_unix_ms(), kT0 + 220000);
  now_ = kT0 + 219999;
  EXPECT_EQ(Run(Expire())->changed(), 0u);
  now_ = kT0 + 220000;
  EXPECT_EQ(Run(Expire())->changed(), 1u);

  EXPECT_EQ(Run(Renew("a")).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Run(Renew("")).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Run(Renew("a", -5)).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(StateMachineTest, RenewWithoutTtlChangesNothing) {
  MustCreate(Spec("pods", "10.0.0.0/24"));
  MustAllocate("pods", "a");
  const uint64_t rev = sm_->revision();
  CommandOutcome r = Run(Renew("a"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->renew().allocations(0).expire_time_unix_ms(), 0);
  EXPECT_EQ(sm_->revision(), rev);
}

TEST_F(StateMachineTest, ExpiryIsBoundedPerCommand) {
  StateMachineOptions opts;
  opts.db_path = dir_.File("bounded.db");
  opts.max_expire_per_command = 3;
  auto sm = StateMachine::Open(opts);
  ASSERT_TRUE(sm.ok());
  std::vector<v1::Command> cmds = {CreatePool(Spec("pods", "10.0.0.0/24"))};
  for (int i = 0; i < 5; ++i) cmds.push_back(Allocate("pods", absl::StrCat("o", i), "", 1));
  ApplyTo(**sm, cmds, kT0);
  auto first = ApplyTo(**sm, {Expire()}, kT0 + 1000);
  ASSERT_TRUE(first[0].ok());
  EXPECT_EQ(first[0]->changed(), 3u);
  auto second = ApplyTo(**sm, {Expire()}, kT0 + 1000);
  EXPECT_EQ(second[0]->changed(), 2u);
}

// ---- revisions and time ----

TEST_F(StateMachineTest, RevisionIncreasesByOnePerChange) {
  EXPECT_EQ(sm_->revision(), 0u);
  MustCreate(Spec("pods", "10.0.0.0/24"));
  EXPECT_EQ(sm_->revision(), 1u);
  const v1::Allocation a = MustAllocate("pods", "a", "", 60);
  EXPECT_EQ(sm_->revision(), 2u);
  EXPECT_EQ(a.create_revision(), 2u);
  EXPECT_EQ(a.revision(), 2u);
  const v1::Allocation b = MustAllocate("pods", "b");
  EXPECT_EQ(b.revision(), 3u);

  CommandOutcome renewed = Run(Renew("a"));
  EXPECT_EQ(sm_->revision(), 4u);
  EXPECT_EQ(renewed->renew().allocations(0).revision(), 4u);
  EXPECT_EQ(renewed->renew().allocations(0).create_revision(), 2u);

  CommandOutcome released = Run(ReleaseOwner("b"));
  EXPECT_EQ(sm_->revision(), 5u);
  EXPECT_EQ(released->release().revision(), 5u);
  EXPECT_EQ(released->release().released(0).revision(), 5u);

  // Several changes in one batch: one revision each.
  auto outcomes = ApplyAll({Allocate("pods", "c"), Allocate("pods", "d"), Allocate("pods", "e")});
  EXPECT_EQ(outcomes[0]->allocation().revision(), 6u);
  EXPECT_EQ(outcomes[2]->allocation().revision(), 8u);
  EXPECT_EQ(sm_->revision(), 8u);

  // Force-deleting a pool with four allocations: four releases and the deletion.
  CommandOutcome deleted = Run(DeletePool("pods", true));
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ(deleted->delete_pool().released(), 4u);
  EXPECT_EQ(deleted->delete_pool().revision(), 13u);
  EXPECT_EQ(sm_->revision(), 13u);

  // Refused commands and housekeeping with nothing to do leave the revision alone.
  EXPECT_EQ(Run(Allocate("pods", "x")).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Run(Expire())->changed(), 0u);
  EXPECT_TRUE(Run(Prune(kT0)).ok());
  EXPECT_EQ(sm_->revision(), 13u);
}

TEST_F(StateMachineTest, TimeNeverRunsBackwards) {
  now_ = kT0 + 10000;
  MustCreate(Spec("pods", "10.0.0.0/24"));
  EXPECT_EQ(sm_->time_ms(), kT0 + 10000);
  now_ = kT0;  // a new leader with a slower clock
  const v1::Allocation a = MustAllocate("pods", "a", "", 10);
  EXPECT_EQ(a.create_time_unix_ms(), kT0 + 10000);
  EXPECT_EQ(a.expire_time_unix_ms(), kT0 + 20000);
  EXPECT_EQ(sm_->time_ms(), kT0 + 10000);
  // Nor does expiry run on the old clock.
  now_ = kT0 + 15000;
  EXPECT_EQ(Run(Expire())->changed(), 0u);
  EXPECT_EQ(sm_->time_ms(), kT0 + 15000);
}

// ---- deleting pools ----

TEST_F(StateMachineTest, DeletePoolIsRefusedWhileAllocationsExistUnlessForced) {
  MustCreate(Spec("pods", "10.0.0.0/24"));
  MustAllocate("pods", "a");
  MustAllocate("pods", "b");
  const uint64_t rev = sm_->revision();
  CommandOutcome refused = Run(DeletePool("pods"));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Msg(refused.status()), HasSubstr("2 allocations"));
  EXPECT_EQ(sm_->revision(), rev);

  CommandOutcome forced = Run(DeletePool("pods", true));
  ASSERT_TRUE(forced.ok());
  EXPECT_EQ(forced->delete_pool().released(), 2u);
  EXPECT_EQ(Run(Allocate("pods", "a")).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Run(DeletePool("pods")).status().code(), absl::StatusCode::kNotFound);

  // The name and the addresses are free for a new pool.
  MustCreate(Spec("pods", "10.0.0.0/24"));
  EXPECT_EQ(MustAllocate("pods", "c").address(), "10.0.0.1");
  ASSERT_TRUE(Run(ReleaseOwner("c")).ok());
  CommandOutcome empty = Run(DeletePool("pods"));
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(empty->delete_pool().released(), 0u);
}

// ---- batches ----

TEST_F(StateMachineTest, ACommandOfAnUnknownOperationRefusesTheBatchAndChangesNothing) {
  MustCreate(Spec("pods", "10.0.0.0/24"));
  const std::string before = Snap(*sm_);
  // A command as a newer build writes it: an operation in a field this build does not know (field 99).
  v1::Command unknown;
  ASSERT_TRUE(unknown.ParseFromString(std::string("\x9a\x06\x00", 3)));
  ASSERT_EQ(unknown.op_case(), v1::Command::OP_NOT_SET);
  auto r = sm_->Apply(Batch({Allocate("pods", "a"), unknown}, kT0 + 5000));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Msg(r.status()), HasSubstr("command 1 carries an operation this build does not know"));
  EXPECT_EQ(Snap(*sm_), before) << "its neighbour did not apply either";
  EXPECT_EQ(sm_->revision(), 1u);
  // A command with no operation at all is refused alone, as before.
  auto empty = ApplyAll({v1::Command(), Allocate("pods", "a")});
  ASSERT_THAT(empty, SizeIs(2));
  EXPECT_EQ(empty[0].status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(empty[1].ok());
}

TEST_F(StateMachineTest, UnknownFormatVersionIsRefusedAndChangesNothing) {
  MustCreate(Spec("pods", "10.0.0.0/24"));
  const std::string before = Snap(*sm_);
  v1::CommandBatch b = Batch({Allocate("pods", "a")}, kT0 + 5000);
  b.set_format_version(kCommandFormatVersion + 1);
  auto r = sm_->Apply(b);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Msg(r.status()), HasSubstr("format version 2"));
  b.set_format_version(0);
  EXPECT_FALSE(sm_->Apply(b).ok());
  EXPECT_EQ(Snap(*sm_), before);
  EXPECT_EQ(sm_->revision(), 1u);
  EXPECT_EQ(sm_->time_ms(), kT0);

  EXPECT_EQ(sm_->ApplyEncoded("\xff\xff\xff garbage").status().code(), absl::StatusCode::kDataLoss);
  std::string encoded;
  Batch({Allocate("pods", "a")}, kT0).SerializeToString(&encoded);
  auto ok = sm_->ApplyEncoded(encoded);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ((*ok)[0]->allocation().address(), "10.0.0.1");
}

TEST_F(StateMachineTest, AFailedCommandLeavesNoTraceAndItsNeighboursApply) {
  std::unique_ptr<StateMachine> clean = OpenMachine("clean.db");
  v1::PoolSpec spec = Spec("pods", "10.0.0.0/29");
  spec.set_gateway("10.0.0.1");
  ApplyTo(*sm_, {CreatePool(spec)}, kT0);
  ApplyTo(*clean, {CreatePool(spec)}, kT0);

  auto outcomes =
      ApplyTo(*sm_,
              {Allocate("pods", "a"), Allocate("pods", "gw", "10.0.0.1"), Allocate("pods", "b"),
               Allocate("pods", "c", "10.0.0.2"), DeletePool("pods"), Allocate("pods", "d"), Renew("nobody", 5),
               Allocate("pods", "a", "10.0.0.6"), Allocate("pods", "b")},
              kT0 + 1);
  ASSERT_THAT(outcomes, SizeIs(9));
  EXPECT_TRUE(outcomes[0].ok());
  EXPECT_EQ(outcomes[1].status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(outcomes[2].ok());
  EXPECT_EQ(outcomes[3].status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(outcomes[4].status().code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(outcomes[5].ok());
  EXPECT_EQ(outcomes[5]->allocation().address(), "10.0.0.4");
  EXPECT_EQ(outcomes[5]->allocation().revision(), 4u);
  EXPECT_EQ(outcomes[6].status().code(), absl::StatusCode::kNotFound);
  // An owner asking for another address than the one it holds; a retry of an owner, answered as held.
  EXPECT_EQ(outcomes[7].status().code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(outcomes[8].ok());
  EXPECT_EQ(outcomes[8]->allocation().address(), outcomes[2]->allocation().address());

  // The same state as a machine that only ever saw the successful commands.
  ApplyTo(*clean, {Allocate("pods", "a"), Allocate("pods", "b"), Allocate("pods", "d"), Allocate("pods", "b")},
          kT0 + 1);
  EXPECT_EQ(Snap(*sm_), Snap(*clean));
  EXPECT_EQ(sm_->revision(), clean->revision());
}

TEST_F(StateMachineTest, AllocateManyIsAllOrNothingAndIdempotentPerOwner) {
  std::unique_ptr<StateMachine> clean = OpenMachine("clean.db");
  for (StateMachine* sm : {sm_.get(), clean.get()}) {
    ApplyTo(*sm, {CreatePool(Spec("v4", "10.0.0.0/29")), CreatePool(Spec("v6", "fd00::/126"))}, kT0);
  }
  // v6 has three assignable addresses; "x" and "y" take two of them, "z" the last.
  auto outcomes = ApplyTo(*sm_,
                          {AllocateMany("x", {{"v4", ""}, {"v6", ""}}), AllocateMany("y", {{"v4", ""}, {"v6", ""}}),
                           AllocateMany("z", {{"v6", ""}}), AllocateMany("full", {{"v4", ""}, {"v6", ""}}),
                           AllocateMany("held", {{"v4", ""}, {"v6", "fd00::1"}}),
                           AllocateMany("missing", {{"v4", ""}, {"nope", ""}}), AllocateMany("x", {{"v4", ""}, {"v6", ""}})},
                          kT0 + 1);
  ASSERT_THAT(outcomes, SizeIs(7));
  ASSERT_TRUE(outcomes[0].ok()) << outcomes[0].status();
  ASSERT_EQ(outcomes[0]->allocate_many().allocations_size(), 2);
  EXPECT_EQ(outcomes[0]->allocate_many().allocations(0).address(), "10.0.0.1");
  EXPECT_EQ(outcomes[0]->allocate_many().allocations(1).address(), "fd00::1");
  EXPECT_EQ(outcomes[0]->allocate_many().allocations(1).node(), "node-1");
  ASSERT_TRUE(outcomes[1].ok());
  ASSERT_TRUE(outcomes[2].ok());
  EXPECT_EQ(outcomes[3].status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(Msg(outcomes[3].status()), HasSubstr("items[1] (pool \"v6\")"));
  EXPECT_EQ(outcomes[4].status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(Msg(outcomes[4].status()), HasSubstr("items[1] (pool \"v6\")"));
  EXPECT_EQ(outcomes[5].status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Msg(outcomes[5].status()), HasSubstr("items[1] (pool \"nope\")"));
  ASSERT_TRUE(outcomes[6].ok());
  EXPECT_EQ(Bytes(outcomes[6]->allocate_many()), Bytes(outcomes[0]->allocate_many())) << "a retry answers as held";

  // The refused commands took nothing in v4, although their first item fitted: the same state as a machine
  // that only ever saw the successful commands.
  ApplyTo(*clean,
          {AllocateMany("x", {{"v4", ""}, {"v6", ""}}), AllocateMany("y", {{"v4", ""}, {"v6", ""}}),
           AllocateMany("z", {{"v6", ""}}), AllocateMany("x", {{"v4", ""}, {"v6", ""}})},
          kT0 + 1);
  EXPECT_EQ(Snap(*sm_), Snap(*clean));
  EXPECT_EQ(sm_->revision(), clean->revision());
  auto next = Run(AllocateMany("w", {{"v4", ""}}));
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->allocate_many().allocations(0).address(), "10.0.0.3");

  // The owner index knows both rows of an AllocateMany after a reopen.
  sm_.reset();
  StateMachineOptions opts;
  opts.db_path = dir_.File("state.db");
  opts.reuse_existing = true;
  auto reopened = StateMachine::Open(opts);
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  sm_ = std::move(*reopened);
  auto again = Run(AllocateMany("x", {{"v4", ""}, {"v6", ""}}));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(Bytes(again->allocate_many()), Bytes(outcomes[0]->allocate_many()));
  auto released = Run(ReleaseOwner("x"));
  ASSERT_TRUE(released.ok());
  EXPECT_EQ(released->release().released_size(), 2);
}

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
}  // namespace abode::storage

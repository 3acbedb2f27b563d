// The state machine: pools, allocation, release, leases, revisions, refusals, AllocateMany.
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

}  // namespace
}  // namespace abode::storage::state_machine_testing

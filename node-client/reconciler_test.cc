#include "reconciler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fake_address_programmer.h"
#include "fake_conntrack_flusher.h"
#include "fake_lease_guard.h"
#include "fake_rule_programmer.h"
#include "host_requirements.h"

namespace abode::node {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

v1::Assignment External(const std::string& name, const std::string& address, uint64_t revision = 1) {
  v1::Assignment a;
  a.set_id("external/" + name);
  a.set_revision(revision);
  a.mutable_external()->set_name(name);
  a.mutable_external()->set_address(address);
  a.mutable_external()->set_prefix_length(24);
  return a;
}

v1::Assignment Elastic(const std::string& name, const std::string& address, const std::string& workload) {
  v1::Assignment a;
  a.set_id("elastic/" + name);
  a.set_revision(2);
  a.mutable_elastic()->set_name(name);
  a.mutable_elastic()->set_address(address);
  a.mutable_elastic()->set_prefix_length(24);
  a.mutable_elastic()->set_workload_address(workload);
  return a;
}

v1::Assignment Magic(const std::string& name, const std::string& address, const std::string& target,
                     v1::Protocol protocol = v1::PROTOCOL_UDP) {
  v1::Assignment a;
  a.set_id("magic/" + name);
  a.set_revision(3);
  a.mutable_magic()->set_name(name);
  a.mutable_magic()->set_address(address);
  auto* port = a.mutable_magic()->add_ports();
  port->set_protocol(protocol);
  port->set_port(8125);
  a.mutable_magic()->set_target_address(target);
  return a;
}

v1::WatchAssignmentsResponse Snapshot(uint64_t revision, std::vector<v1::Assignment> assignments) {
  v1::WatchAssignmentsResponse r;
  r.set_revision(revision);
  r.set_snapshot(true);
  for (auto& a : assignments) *r.add_assignments() = std::move(a);
  return r;
}

std::map<std::string, v1::AssignmentStatus> ById(const std::vector<v1::AssignmentStatus>& statuses) {
  std::map<std::string, v1::AssignmentStatus> out;
  for (const auto& s : statuses) out[s.id()] = s;
  return out;
}

class ReconcilerTest : public ::testing::Test {
 protected:
  ReconcilerTest() {
    addresses_.AddInterface("eth0");
    addresses_.AddInterface("abode0");
  }
  Reconciler Make() { return Reconciler({"eth0", "abode0"}, &addresses_, &rules_, &announcer_, &conntrack_); }

  FakeAddressProgrammer addresses_;
  FakeRuleProgrammer rules_;
  FakeLeaseGuard guard_;
  FakeAnnouncer announcer_;
  FakeConntrackFlusher conntrack_;
};

TEST_F(ReconcilerTest, SnapshotPlacesAddressesMappingsAndAnnouncesEachPlacedAddress) {
  Reconciler reconciler = Make();
  auto changed = ById(reconciler.OnUpdate(Snapshot(
      7, {External("web", "203.0.113.10"), Elastic("db", "203.0.113.11", "10.1.1.5"),
          Magic("dd", "169.254.210.210", "10.1.1.7")})));
  ASSERT_EQ(changed.size(), 3u);
  for (const auto& [id, status] : changed) EXPECT_EQ(status.state(), v1::ASSIGNMENT_STATE_OK) << id;
  EXPECT_EQ(changed["magic/dd"].revision(), 3u);
  EXPECT_THAT(addresses_.owned(),
              ElementsAre(OwnedAddress{"abode0", "169.254.210.210", 32}, OwnedAddress{"eth0", "203.0.113.10", 24},
                          OwnedAddress{"eth0", "203.0.113.11", 24}));
  EXPECT_THAT(announcer_.announced(),
              ElementsAre(OwnedAddress{"abode0", "169.254.210.210", 32}, OwnedAddress{"eth0", "203.0.113.10", 24},
                          OwnedAddress{"eth0", "203.0.113.11", 24}));
  EXPECT_THAT(rules_.state().magic_dnat,
              ElementsAre(MagicDnat{IpFamily::kIpv4, "169.254.210.210", L4Protocol::kUdp, 8125, "10.1.1.7", 8125}));
  EXPECT_THAT(rules_.state().elastic_nat, ElementsAre(ElasticNat{"203.0.113.11", "10.1.1.5"}));
  EXPECT_EQ(reconciler.AppliedRevision(), 7u);
}

TEST_F(ReconcilerTest, RestartAndResyncOfAnUnchangedStateChangeNothing) {
  const auto snapshot = Snapshot(7, {External("web", "203.0.113.10"), Elastic("db", "203.0.113.11", "10.1.1.5"),
                                     Magic("dd", "169.254.210.210", "10.1.1.7")});
  {
    Reconciler first = Make();
    first.OnUpdate(snapshot);
  }
  const int adds = addresses_.adds();
  const int batches = rules_.batches();
  const size_t announcements = announcer_.announced().size();
  const int flushes = conntrack_.calls();

  Reconciler restarted = Make();  // a new process adopting the kernel as it is
  EXPECT_THAT(restarted.Resync(), IsEmpty());  // no snapshot yet: nothing is touched
  auto statuses = restarted.OnUpdate(snapshot);
  EXPECT_EQ(statuses.size(), 3u);  // reported once by the new process
  EXPECT_THAT(restarted.Resync(), IsEmpty());
  EXPECT_EQ(addresses_.adds(), adds);
  EXPECT_EQ(addresses_.removes(), 0);
  EXPECT_EQ(rules_.batches(), batches);
  EXPECT_EQ(rules_.mappings_removed(), 0);
  EXPECT_EQ(announcer_.announced().size(), announcements);
  EXPECT_EQ(restarted.counters().addresses_added, 0);
  EXPECT_EQ(conntrack_.calls(), flushes);  // no flow of an unchanged mapping is touched
}

TEST_F(ReconcilerTest, DeltasChangeOnlyTheDifference) {
  Reconciler reconciler = Make();
  reconciler.OnUpdate(Snapshot(7, {External("web", "203.0.113.10"), Magic("dd", "169.254.210.210", "10.1.1.7")}));
  v1::WatchAssignmentsResponse delta;
  delta.set_revision(9);
  delta.add_removed("external/web");
  *delta.add_assignments() = Magic("dd", "169.254.210.210", "10.1.1.8");  // the agent was replaced
  auto changed = reconciler.OnUpdate(delta);
  EXPECT_EQ(addresses_.removes(), 1);
  EXPECT_EQ(addresses_.adds(), 2);  // nothing re-added
  EXPECT_THAT(addresses_.owned(), ElementsAre(OwnedAddress{"abode0", "169.254.210.210", 32}));
  EXPECT_THAT(rules_.state().magic_dnat,
              ElementsAre(MagicDnat{IpFamily::kIpv4, "169.254.210.210", L4Protocol::kUdp, 8125, "10.1.1.8", 8125}));
  EXPECT_EQ(rules_.mappings_removed(), 1);
  EXPECT_EQ(reconciler.AppliedRevision(), 9u);
  EXPECT_THAT(reconciler.AllStatuses(), testing::SizeIs(1));
}

TEST_F(ReconcilerTest, PerAssignmentErrorsBecomeStatusesAndTheRestIsServed) {
  addresses_.AddForeignAddress({"eth0", "203.0.113.20", 24});
  Reconciler reconciler({"eth0", "missing0"}, &addresses_, &rules_, &announcer_, &conntrack_);
  auto changed = ById(reconciler.OnUpdate(
      Snapshot(7, {External("web", "203.0.113.10"), External("taken", "203.0.113.20"),
                   Magic("dd", "169.254.210.210", "10.1.1.7"), Magic("sctp", "169.254.1.1", "10.1.1.9",
                                                                     v1::PROTOCOL_SCTP)})));
  EXPECT_EQ(changed["external/web"].state(), v1::ASSIGNMENT_STATE_OK);
  EXPECT_EQ(changed["external/taken"].state(), v1::ASSIGNMENT_STATE_ERROR);
  EXPECT_THAT(changed["external/taken"].message(), HasSubstr("203.0.113.20"));
  EXPECT_EQ(changed["magic/dd"].state(), v1::ASSIGNMENT_STATE_ERROR);
  EXPECT_THAT(changed["magic/dd"].message(), HasSubstr("missing0"));
  EXPECT_EQ(changed["magic/sctp"].state(), v1::ASSIGNMENT_STATE_ERROR);
  EXPECT_THAT(changed["magic/sctp"].message(), HasSubstr("SCTP"));
  EXPECT_THAT(addresses_.owned(), ElementsAre(OwnedAddress{"eth0", "203.0.113.10", 24}));
  EXPECT_TRUE(rules_.state().magic_dnat.empty());  // no mapping for an assignment whose address is missing

  // Unchanged errors are not reported again; a resync retries them.
  EXPECT_THAT(reconciler.Resync(), IsEmpty());
}

TEST_F(ReconcilerTest, AKernelRefusalOfTheRulesFailsOnlyAssignmentsWithMappings) {
  Reconciler reconciler = Make();
  rules_.FailNextApply(absl::PermissionDeniedError("nf_tables: operation not permitted"));
  auto changed = ById(reconciler.OnUpdate(
      Snapshot(7, {External("web", "203.0.113.10"), Magic("dd", "169.254.210.210", "10.1.1.7")})));
  EXPECT_EQ(changed["external/web"].state(), v1::ASSIGNMENT_STATE_OK);
  EXPECT_EQ(changed["magic/dd"].state(), v1::ASSIGNMENT_STATE_ERROR);
  EXPECT_THAT(changed["magic/dd"].message(), HasSubstr("not permitted"));
  // The next resync succeeds and reports the recovery.
  auto recovered = ById(reconciler.Resync());
  ASSERT_EQ(recovered.size(), 1u);
  EXPECT_EQ(recovered["magic/dd"].state(), v1::ASSIGNMENT_STATE_OK);
  EXPECT_EQ(rules_.state().magic_dnat.size(), 1u);
}

TEST_F(ReconcilerTest, MagicWithoutTargetCarriesTheAddressAndDropsItsTraffic) {
  Reconciler reconciler = Make();
  v1::Assignment magic = Magic("dd", "169.254.210.210", "");
  auto* tcp = magic.mutable_magic()->add_ports();
  tcp->set_protocol(v1::PROTOCOL_TCP);
  tcp->set_port(8126);
  auto changed = reconciler.OnUpdate(Snapshot(4, {magic}));
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_EQ(changed[0].state(), v1::ASSIGNMENT_STATE_OK);
  EXPECT_THAT(addresses_.owned(), ElementsAre(OwnedAddress{"abode0", "169.254.210.210", 32}));
  EXPECT_TRUE(rules_.state().magic_dnat.empty());
  // Every port mapping is dropped.
  EXPECT_THAT(rules_.state().magic_drop,
              ElementsAre(MagicDrop{IpFamily::kIpv4, "169.254.210.210", L4Protocol::kTcp, 8126},
                          MagicDrop{IpFamily::kIpv4, "169.254.210.210", L4Protocol::kUdp, 8125}));
  // A target replaces the drops with mappings.
  v1::Assignment targeted = magic;
  targeted.mutable_magic()->set_target_address("10.1.1.7");
  v1::WatchAssignmentsResponse delta;
  delta.set_revision(5);
  *delta.add_assignments() = targeted;
  reconciler.OnUpdate(delta);
  EXPECT_TRUE(rules_.state().magic_drop.empty());
  EXPECT_EQ(rules_.state().magic_dnat.size(), 2u);
  // Announced on the magic interface only, never on the uplink.
  EXPECT_THAT(announcer_.announced(), ElementsAre(OwnedAddress{"abode0", "169.254.210.210", 32}));
}

TEST_F(ReconcilerTest, NothingIsRemovedBeforeTheFirstSnapshotNorWhileTheAllocatorIsAway) {
  // Left by a previous run.
  ASSERT_TRUE(addresses_.Add({"eth0", "203.0.113.10", 24}).ok());
  rules_.SetKernelState({{{IpFamily::kIpv4, "169.254.210.210", L4Protocol::kUdp, 8125, "10.1.1.7", 8125}}, {}, {}});
  Reconciler reconciler = Make();
  // A resumed delta (no snapshot) does not reveal the desired state either.
  v1::WatchAssignmentsResponse delta;
  delta.set_revision(3);
  reconciler.OnUpdate(delta);
  reconciler.Resync();
  EXPECT_EQ(addresses_.removes(), 0);
  EXPECT_EQ(rules_.applies(), 0);

  reconciler.OnUpdate(Snapshot(7, {External("web", "203.0.113.10")}));
  EXPECT_EQ(rules_.mappings_removed(), 1);  // the snapshot no longer wants the mapping
  // The allocator goes away: resyncs keep serving the last desired state.
  for (int i = 0; i < 5; ++i) reconciler.Resync();
  EXPECT_EQ(addresses_.removes(), 0);
  EXPECT_THAT(addresses_.owned(), ElementsAre(OwnedAddress{"eth0", "203.0.113.10", 24}));
}

TEST_F(ReconcilerTest, ResyncRepairsAnAddressRemovedByOthersAndAnnouncesItAgain) {
  Reconciler reconciler = Make();
  reconciler.OnUpdate(Snapshot(7, {External("web", "203.0.113.10")}));
  ASSERT_TRUE(addresses_.Remove({"eth0", "203.0.113.10", 24}).ok());
  reconciler.Resync();
  EXPECT_THAT(addresses_.owned(), ElementsAre(OwnedAddress{"eth0", "203.0.113.10", 24}));
  EXPECT_EQ(announcer_.announced().size(), 2u);
}

TEST_F(ReconcilerTest, ExternalAndElasticAddressesAreGuardedByTheLeaseAndMagicStays) {
  int64_t now_ms = 0;
  NodeLease lease([&] { return NodeLease::Clock::time_point(std::chrono::milliseconds(now_ms)); });
  // A backstop of 12 leases, without the 10-minute minimum.
  Reconciler reconciler({"eth0", "abode0", &lease, nullptr, &guard_, 12, std::chrono::seconds(0)}, &addresses_,
                        &rules_, &announcer_, &conntrack_);
  lease.Renew(NodeLease::Clock::time_point(), std::chrono::milliseconds(5000));  // valid until 5 s
  now_ms = 200;
  reconciler.OnUpdate(Snapshot(7, {External("web", "203.0.113.10"), Elastic("db", "203.0.113.11", "10.1.1.5"),
                                   Magic("dd", "169.254.210.210", "10.1.1.7")}));
  // Guarded and leased until the lease's end, in one batch; magic addresses are not guarded.
  EXPECT_EQ(guard_.guarded(), (std::set<std::string>{"203.0.113.10", "203.0.113.11"}));
  EXPECT_EQ(guard_.batches(), 1);
  EXPECT_EQ(guard_.lease_left(), std::chrono::milliseconds(4800));
  // The address lifetime is only a backstop of 12 leases; magic addresses are permanent.
  EXPECT_THAT(addresses_.lifetimes(),
              ElementsAre(testing::Pair(OwnedAddress{"eth0", "203.0.113.10", 24}, std::chrono::seconds(60)),
                          testing::Pair(OwnedAddress{"eth0", "203.0.113.11", 24}, std::chrono::seconds(60))));
  EXPECT_EQ(reconciler.counters().lease_renewals, 1);
  EXPECT_EQ(addresses_.renewals(), 0);

  // Acknowledged heartbeats renew the leases, in one batch, only once half a lease of them is used up.
  now_ms = 1500;
  lease.Renew(NodeLease::Clock::time_point(std::chrono::milliseconds(1400)), std::chrono::milliseconds(5000));
  reconciler.OnLeaseRenewed();
  EXPECT_EQ(guard_.renewals(), 0);
  now_ms = 3000;
  lease.Renew(NodeLease::Clock::time_point(std::chrono::milliseconds(2900)), std::chrono::milliseconds(5000));
  reconciler.OnLeaseRenewed();
  EXPECT_EQ(guard_.renewals(), 1);
  EXPECT_EQ(guard_.lease_left(), std::chrono::milliseconds(4900));
  EXPECT_EQ(addresses_.renewals(), 0);  // the backstop is far from due
  EXPECT_EQ(reconciler.counters().lease_renewals, 2);
  // Six leases later, half of the backstop is used: renewed once, with the leases.
  for (now_ms = 4500; now_ms <= 31500; now_ms += 1500) {
    lease.Renew(NodeLease::Clock::time_point(std::chrono::milliseconds(now_ms - 100)), std::chrono::milliseconds(5000));
    reconciler.OnLeaseRenewed();
  }
  EXPECT_EQ(addresses_.renewals(), 1);
  EXPECT_EQ(addresses_.lifetimes().at(OwnedAddress{"eth0", "203.0.113.10", 24}), std::chrono::seconds(60));
  // One batch every other heartbeat (every 1.5 s here), not one per heartbeat or per address.
  EXPECT_EQ(guard_.renewals(), 10);
  ASSERT_TRUE(reconciler.LeaseDeadline().has_value());
  EXPECT_EQ(*reconciler.LeaseDeadline(), NodeLease::Clock::time_point(std::chrono::milliseconds(36400)));

  // No acknowledgement any more (allocator unreachable): at the lease's end external and elastic addresses and
  // the elastic mapping are withdrawn and no longer guarded; the magic address and its mapping stay.
  now_ms = 36400;
  auto changed = ById(reconciler.Resync());
  EXPECT_THAT(addresses_.owned(), ElementsAre(OwnedAddress{"abode0", "169.254.210.210", 32}));
  EXPECT_EQ(guard_.guarded(), std::set<std::string>{});
  EXPECT_TRUE(rules_.state().elastic_nat.empty());
  EXPECT_EQ(rules_.state().magic_dnat.size(), 1u);
  EXPECT_EQ(changed["external/web"].state(), v1::ASSIGNMENT_STATE_ERROR);
  EXPECT_THAT(changed["external/web"].message(), HasSubstr("lease"));
  EXPECT_EQ(reconciler.counters().withdrawals, 1);
  for (int i = 0; i < 3; ++i) reconciler.Resync();  // resyncs do not bring them back
  EXPECT_EQ(addresses_.owned().size(), 1u);

  // The allocator acknowledges again: they are placed, guarded and leased again.
  now_ms = 37500;
  lease.Renew(NodeLease::Clock::time_point(std::chrono::milliseconds(37400)), std::chrono::milliseconds(5000));
  reconciler.OnLeaseRenewed();
  EXPECT_EQ(addresses_.owned().size(), 3u);
  EXPECT_EQ(rules_.state().elastic_nat.size(), 1u);
  EXPECT_EQ(guard_.guarded(), (std::set<std::string>{"203.0.113.10", "203.0.113.11"}));
  EXPECT_EQ(guard_.lease_left(), std::chrono::milliseconds(4900));
}

TEST_F(ReconcilerTest, ARestartedAgentRenewsAdoptedAddressesOnlyAfterTheSnapshot) {
  ASSERT_TRUE(addresses_.Add({"eth0", "203.0.113.10", 24}, std::chrono::seconds(2)).ok());  // left behind
  ASSERT_TRUE(addresses_.Add({"eth0", "203.0.113.20", 24}, std::chrono::seconds(2)).ok());  // moved meanwhile
  guard_.SetKernelState({"203.0.113.10", "203.0.113.20"});  // as the earlier process left the guard
  NodeLease lease([] { return NodeLease::Clock::time_point(std::chrono::seconds(1)); });
  Reconciler reconciler({"eth0", "abode0", &lease, nullptr, &guard_}, &addresses_, &rules_, &announcer_, &conntrack_);
  lease.Renew(NodeLease::Clock::time_point(), std::chrono::milliseconds(5000));
  reconciler.OnLeaseRenewed();
  reconciler.Resync();
  // Nothing is renewed or leased before the snapshot says they are still this node's.
  EXPECT_EQ(addresses_.renewals(), 0);
  EXPECT_EQ(guard_.batches(), 0);
  EXPECT_TRUE(announcer_.announced().empty());
  reconciler.OnUpdate(Snapshot(7, {External("web", "203.0.113.10")}));
  EXPECT_THAT(addresses_.lifetimes(),
              ElementsAre(testing::Pair(OwnedAddress{"eth0", "203.0.113.10", 24}, std::chrono::seconds(600))));
  EXPECT_EQ(addresses_.removes(), 1);
  // Guards what the snapshot confirmed, leased until the lease's end.
  EXPECT_EQ(guard_.guarded(), std::set<std::string>{"203.0.113.10"});
  EXPECT_EQ(guard_.lease_left(), std::chrono::milliseconds(4000));
  EXPECT_TRUE(announcer_.announced().empty());  // adopted, not placed: nothing to announce
}

TEST_F(ReconcilerTest, ARestartedAgentAdoptsTheGuardAsLeftAndRenewsItOnceConfirmed) {
  ASSERT_TRUE(addresses_.Add({"eth0", "203.0.113.10", 24}, std::chrono::seconds(60)).ok());
  guard_.SetKernelState({"203.0.113.10"});
  int64_t now_ms = 1000;
  NodeLease lease([&] { return NodeLease::Clock::time_point(std::chrono::milliseconds(now_ms)); });
  Reconciler reconciler({"eth0", "abode0", &lease, nullptr, &guard_}, &addresses_, &rules_, &announcer_, &conntrack_);
  lease.Renew(NodeLease::Clock::time_point(), std::chrono::milliseconds(5000));
  reconciler.OnUpdate(Snapshot(7, {External("web", "203.0.113.10")}));
  // The guard already guards it: no rebuild, but its lease (left by the earlier process) is renewed once.
  EXPECT_EQ(guard_.batches(), 1);
  EXPECT_EQ(guard_.renewals(), 1);
  EXPECT_EQ(guard_.lease_left(), std::chrono::milliseconds(4000));
  EXPECT_EQ(reconciler.counters().lease_renewals, 1);
  // Unchanged, a resync sends nothing; a failed renewal is retried at the next acknowledgement.
  reconciler.Resync();
  EXPECT_EQ(guard_.batches(), 1);
  guard_.FailNext(absl::UnavailableError("netlink"));
  now_ms = 3000;
  lease.Renew(NodeLease::Clock::time_point(std::chrono::milliseconds(2900)), std::chrono::milliseconds(5000));
  reconciler.OnLeaseRenewed();
  EXPECT_EQ(guard_.renewals(), 1);
  reconciler.OnLeaseRenewed();
  EXPECT_EQ(guard_.renewals(), 2);
  EXPECT_EQ(guard_.lease_left(), std::chrono::milliseconds(4900));
}

class FakeSysctls final : public SysctlAccess {
 public:
  absl::StatusOr<std::string> Read(const std::string& name) override {
    auto it = values.find(name);
    if (it == values.end()) return absl::NotFoundError(name);
    return it->second;
  }
  absl::Status Write(const std::string& name, const std::string& value) override {
    values[name] = value;
    return absl::OkStatus();
  }
  std::map<std::string, std::string> values;
};

TEST_F(ReconcilerTest, MissingHostSettingsMakeTheAssignmentsThatNeedThemErrorsNamingTheSysctl) {
  FakeSysctls sysctls;
  sysctls.values = {{"net.ipv4.ip_forward", "0"}, {"net.ipv6.conf.all.forwarding", "1"}};
  HostRequirements host(&sysctls, /*manage=*/false);
  Reconciler reconciler({"eth0", "abode0", nullptr, &host}, &addresses_, &rules_, &announcer_, &conntrack_);
  auto changed = ById(reconciler.OnUpdate(Snapshot(
      7, {External("web", "203.0.113.10"), Elastic("db", "203.0.113.11", "10.1.1.5"),
          Magic("dd", "169.254.210.210", "10.1.1.7"), Magic("v6", "fe80::a9fe:d2d2", "fd00::7")})));
  EXPECT_EQ(changed["external/web"].state(), v1::ASSIGNMENT_STATE_OK);  // nothing translated: no forwarding
  EXPECT_EQ(changed["magic/v6"].state(), v1::ASSIGNMENT_STATE_OK);
  for (const char* id : {"elastic/db", "magic/dd"}) {
    EXPECT_EQ(changed[id].state(), v1::ASSIGNMENT_STATE_ERROR) << id;
    EXPECT_THAT(changed[id].message(), HasSubstr("net.ipv4.ip_forward=1")) << id;
  }
  // Served anyway: the address and mappings are in place.
  EXPECT_EQ(rules_.state().magic_dnat.size(), 2u);
  EXPECT_EQ(host.unmet().at("net.ipv4.ip_forward"), true);

  // Set by the operator: the next reconcile reports the recovery.
  sysctls.values["net.ipv4.ip_forward"] = "1";
  auto recovered = ById(reconciler.Resync());
  EXPECT_EQ(recovered["magic/dd"].state(), v1::ASSIGNMENT_STATE_OK);
  EXPECT_EQ(host.unmet().at("net.ipv4.ip_forward"), false);
}

TEST_F(ReconcilerTest, ManagedHostSettingsAreSet) {
  FakeSysctls sysctls;
  sysctls.values = {{"net.ipv4.ip_forward", "0"}};
  HostRequirements host(&sysctls, /*manage=*/true);
  Reconciler reconciler({"eth0", "abode0", nullptr, &host}, &addresses_, &rules_, &announcer_, &conntrack_);
  auto changed = ById(reconciler.OnUpdate(Snapshot(7, {Magic("dd", "169.254.210.210", "10.1.1.7")})));
  EXPECT_EQ(changed["magic/dd"].state(), v1::ASSIGNMENT_STATE_OK);
  EXPECT_EQ(sysctls.values["net.ipv4.ip_forward"], "1");
}

ConntrackFilter MagicFlows(const std::string& address) {
  return {IpFamily::kIpv4, "", address, L4Protocol::kUdp, 8125, ""};
}
ConntrackFilter ElasticInboundFlows(const std::string& elastic) { return {IpFamily::kIpv4, "", elastic, {}, 0, ""}; }
ConntrackFilter ElasticOutboundFlows(const std::string& workload, const std::string& elastic) {
  return {IpFamily::kIpv4, workload, "", {}, 0, elastic};
}

TEST_F(ReconcilerTest, ConntrackIsFlushedExactlyForAddedChangedAndRemovedMappings) {
  Reconciler reconciler = Make();
  reconciler.OnUpdate(
      Snapshot(7, {Magic("dd", "169.254.210.210", "10.1.1.7"), Magic("md", "169.254.1.1", "10.1.1.9"),
                   Elastic("db", "203.0.113.11", "10.1.1.5"), Elastic("web", "203.0.113.12", "10.1.1.6")}));
  // Added magic mappings: flows sent before they had a target are untranslated and must start again.
  // Added elastic mappings leave the workload's flows alone.
  EXPECT_THAT(conntrack_.flushed(),
              testing::UnorderedElementsAre(MagicFlows("169.254.210.210"), MagicFlows("169.254.1.1")));
  conntrack_.Clear();
  reconciler.Resync();
  EXPECT_EQ(conntrack_.calls(), 1);

  // The agent behind "dd" is replaced and "db" moves to another workload; "md" and "web" stay as they are.
  v1::WatchAssignmentsResponse delta;
  delta.set_revision(8);
  *delta.add_assignments() = Magic("dd", "169.254.210.210", "10.1.1.8");
  *delta.add_assignments() = Elastic("db", "203.0.113.11", "10.1.1.15");
  reconciler.OnUpdate(delta);
  EXPECT_EQ(conntrack_.calls(), 2);  // one flush after the one NAT apply
  EXPECT_THAT(conntrack_.flushed(),
              testing::UnorderedElementsAre(MagicFlows("169.254.210.210"), ElasticInboundFlows("203.0.113.11"),
                                            ElasticOutboundFlows("10.1.1.5", "203.0.113.11")));

  // Removed mappings: "md" loses its target (policy drop), "web" is deleted.
  conntrack_.Clear();
  v1::WatchAssignmentsResponse removal;
  removal.set_revision(9);
  removal.add_removed("elastic/web");
  *removal.add_assignments() = Magic("md", "169.254.1.1", "");
  reconciler.OnUpdate(removal);
  EXPECT_THAT(conntrack_.flushed(),
              testing::UnorderedElementsAre(MagicFlows("169.254.1.1"), ElasticInboundFlows("203.0.113.12"),
                                            ElasticOutboundFlows("10.1.1.6", "203.0.113.12")));

  // Resyncs and a repeated snapshot of the same state flush nothing.
  const int calls = conntrack_.calls();
  reconciler.Resync();
  reconciler.OnUpdate(Snapshot(9, {Magic("dd", "169.254.210.210", "10.1.1.8"), Magic("md", "169.254.1.1", ""),
                                   Elastic("db", "203.0.113.11", "10.1.1.15")}));
  EXPECT_EQ(conntrack_.calls(), calls);
}

TEST_F(ReconcilerTest, ARestartedProcessFlushesMappingsItReplacesInTheKernel) {
  // Left by the previous process; the agent was replaced while abode-node was down.
  rules_.SetKernelState({{{IpFamily::kIpv4, "169.254.210.210", L4Protocol::kUdp, 8125, "10.1.1.7", 8125}}, {}, {}});
  Reconciler reconciler = Make();
  reconciler.OnUpdate(Snapshot(7, {Magic("dd", "169.254.210.210", "10.1.1.8")}));
  EXPECT_THAT(conntrack_.flushed(), ElementsAre(MagicFlows("169.254.210.210")));
}

TEST_F(ReconcilerTest, AMagicMappingThatGainsATargetFlushesTheFlowsSentBeforeIt) {
  Reconciler reconciler = Make();
  reconciler.OnUpdate(Snapshot(7, {Magic("dd", "169.254.210.210", "")}));  // no agent yet: policy drop
  EXPECT_EQ(conntrack_.calls(), 0);
  v1::WatchAssignmentsResponse delta;
  delta.set_revision(8);
  *delta.add_assignments() = Magic("dd", "169.254.210.210", "10.1.1.8");
  reconciler.OnUpdate(delta);
  EXPECT_THAT(conntrack_.flushed(), ElementsAre(MagicFlows("169.254.210.210")));
}

TEST_F(ReconcilerTest, AFailedFlushIsRetriedAtTheNextReconcile) {
  Reconciler reconciler = Make();
  reconciler.OnUpdate(Snapshot(7, {Magic("dd", "169.254.210.210", "10.1.1.7")}));
  conntrack_.Clear();
  const int calls = conntrack_.calls();
  conntrack_.FailNextFlush(absl::PermissionDeniedError("ctnetlink: operation not permitted"));
  v1::WatchAssignmentsResponse delta;
  delta.set_revision(8);
  *delta.add_assignments() = Magic("dd", "169.254.210.210", "10.1.1.8");
  reconciler.OnUpdate(delta);
  EXPECT_EQ(conntrack_.calls(), calls);
  reconciler.Resync();
  EXPECT_THAT(conntrack_.flushed(), ElementsAre(MagicFlows("169.254.210.210")));
  reconciler.Resync();
  EXPECT_EQ(conntrack_.calls(), calls + 1);
}

}  // namespace
}  // namespace abode::node

#include "cli/whereabouts_import.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace abode::cli {
namespace {

std::string Fixture(const std::string& name) {
  std::ifstream in(std::string(ABODE_CLI_TESTDATA) + "/" + name);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

const ImportedPool& PoolNamed(const WhereaboutsImport& import, const std::string& name) {
  for (const ImportedPool& p : import.pools) {
    if (p.spec.name() == name) return p;
  }
  ADD_FAILURE() << "no pool " << name;
  return import.pools.front();
}

TEST(WhereaboutsImportTest, PoolsAndAllocationsFromAnIpPoolExport) {
  WhereaboutsImport import;
  ASSERT_TRUE(ReadWhereaboutsExport(Fixture("whereabouts_ippools.json"), "pools.json", import).ok());
  ASSERT_EQ(import.pools.size(), 3u);
  const ImportedPool& unnamed = PoolNamed(import, "10.210.0.0-24");
  EXPECT_EQ(unnamed.spec.cidr(), "10.210.0.0/24");
  EXPECT_EQ(unnamed.spec.network(), "");
  ASSERT_EQ(unnamed.allocations.size(), 3u);
  std::map<std::string, const ImportedAllocation*> by_address;
  for (const ImportedAllocation& a : unnamed.allocations) by_address[a.address] = &a;
  ASSERT_TRUE(by_address.count("10.210.0.2"));
  EXPECT_EQ(by_address["10.210.0.2"]->owner,
            "cni/5d0c6f2a9b8e4c1d7f3a2b6c9e8d1f4a7b3c6e9d2f5a8b1c4e7d0a3f6b9c2e5d/net1");
  EXPECT_EQ(by_address["10.210.0.2"]->labels.at("k8s-pod-name"), "web-0");
  EXPECT_EQ(by_address["10.210.0.2"]->labels.at("k8s-pod-namespace"), "default");
  // An entry without ifname (older whereabouts) is eth0.
  ASSERT_TRUE(by_address.count("10.210.0.17"));
  EXPECT_EQ(by_address["10.210.0.17"]->owner.substr(by_address["10.210.0.17"]->owner.size() - 5), "/eth0");
  const ImportedPool& blue = PoolNamed(import, "blue-10.211.0.0-16");
  EXPECT_EQ(blue.spec.network(), "blue");
  EXPECT_EQ(blue.allocations.at(0).address, "10.211.1.0");
  const ImportedPool& v6 = PoolNamed(import, "fd00-210---64");
  EXPECT_EQ(v6.allocations.at(0).address, "fd00:210:0:0:8000::");
}

TEST(WhereaboutsImportTest, ReservationsFillGapsAndDisagreementsAreConflicts) {
  WhereaboutsImport import;
  ASSERT_TRUE(ReadWhereaboutsExport(Fixture("whereabouts_ippools.json"), "pools.json", import).ok());
  ASSERT_TRUE(ReadWhereaboutsExport(Fixture("whereabouts_reservations.json"), "res.json", import).ok());
  ASSERT_EQ(import.reservations.size(), 4u);
  ResolveReservations(import);
  const ImportedPool& unnamed = PoolNamed(import, "10.210.0.0-24");
  std::set<std::string> addresses;
  for (const ImportedAllocation& a : unnamed.allocations) addresses.insert(a.address);
  // 10.210.0.9 only had a reservation: imported; 10.210.0.3 has two owners: left out and listed.
  EXPECT_EQ(addresses, (std::set<std::string>{"10.210.0.2", "10.210.0.9", "10.210.0.17"}));
  ASSERT_EQ(import.conflicts.size(), 1u);
  EXPECT_NE(import.conflicts[0].find("10.210.0.3"), std::string::npos) << import.conflicts[0];
  EXPECT_EQ(PoolNamed(import, "blue-10.211.0.0-16").allocations.size(), 1u);
}

TEST(WhereaboutsImportTest, NetworkConfigNarrowsThePools) {
  WhereaboutsImport import;
  ASSERT_TRUE(ReadWhereaboutsExport(Fixture("whereabouts_ippools.json"), "pools.json", import).ok());
  const std::string nad = R"({"apiVersion":"k8s.cni.cncf.io/v1","kind":"NetworkAttachmentDefinition",
    "metadata":{"name":"blue"},"spec":{"config":"{\"cniVersion\":\"0.3.1\",\"name\":\"blue\",\"type\":\"macvlan\",\"ipam\":{\"type\":\"whereabouts\",\"network_name\":\"blue\",\"range\":\"10.211.0.0/16\",\"range_start\":\"10.211.1.0\",\"exclude\":[\"10.211.255.0/24\"],\"gateway\":\"10.211.0.1\"}}"}})";
  ASSERT_TRUE(ApplyNetworkConfig(nad, "nad.json", import).ok());
  const ImportedPool& blue = PoolNamed(import, "blue-10.211.0.0-16");
  EXPECT_EQ(blue.spec.range_start(), "10.211.1.0");
  EXPECT_EQ(blue.spec.gateway(), "10.211.0.1");
  ASSERT_EQ(blue.spec.exclude_size(), 1);
}

TEST(WhereaboutsImportTest, UnreadableExportsNameTheFileAndObject) {
  WhereaboutsImport import;
  EXPECT_EQ(ReadWhereaboutsExport("nope", "a.json", import).code(), absl::StatusCode::kInvalidArgument);
  const absl::Status bad_range = ReadWhereaboutsExport(
      R"({"kind":"IPPool","metadata":{"name":"x"},"spec":{"range":"10.0.0.0/40"}})", "b.json", import);
  EXPECT_EQ(bad_range.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad_range.message().find("b.json: IPPool x: spec.range"), std::string::npos) << bad_range;
  ASSERT_TRUE(ReadWhereaboutsExport(
                  R"({"kind":"IPPool","metadata":{"name":"10.9.0.0-24"},"spec":{"range":"10.9.0.0/24",
                      "allocations":{"300":{"id":"c"},"x":{"id":"d"},"4":{"podref":"a/b"}}}})",
                  "c.json", import)
                  .ok());
  EXPECT_EQ(import.conflicts.size(), 3u);
}

}  // namespace
}  // namespace abode::cli

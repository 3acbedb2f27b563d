#include "cni/ipam_config.h"

#include <gtest/gtest.h>

namespace abode::cni {
namespace {

Result<IpamConfig> Parse(const std::string& ipam, const std::string& version = "1.0.0") {
  return ParseNetworkConfig(R"({"cniVersion":")" + version + R"(","name":"net1","type":"bridge","ipam":)" + ipam + "}");
}

TEST(IpamConfigTest, WhereaboutsRangeBecomesANamedPool) {
  auto c = Parse(R"({"type":"whereabouts","range":"10.10.0.0/16","gateway":"10.10.0.1","exclude":["10.10.0.0/28"]})");
  ASSERT_TRUE(c.ok()) << c.error().msg;
  ASSERT_EQ(c->pools.size(), 1u);
  const PoolRequest& p = c->pools[0];
  EXPECT_EQ(p.name, "10.10.0.0-16");
  EXPECT_EQ(p.cidr.ToString(), "10.10.0.0/16");
  EXPECT_EQ(p.gateway, "10.10.0.1");
  EXPECT_EQ(p.exclude, std::vector<std::string>{"10.10.0.0/28"});
  EXPECT_EQ(p.network, "");
  EXPECT_EQ(c->type, "whereabouts");
}

TEST(IpamConfigTest, FirstLastPrefixFormSetsTheRange) {
  auto c = Parse(R"({"type":"abode","range":"192.168.2.225-192.168.2.230/28"})");
  ASSERT_TRUE(c.ok()) << c.error().msg;
  EXPECT_EQ(c->pools[0].cidr.ToString(), "192.168.2.224/28");
  EXPECT_EQ(c->pools[0].range_start, "192.168.2.225");
  EXPECT_EQ(c->pools[0].range_end, "192.168.2.230");
  EXPECT_EQ(c->pools[0].name, "192.168.2.224-28");
}

TEST(IpamConfigTest, IpRangesGiveOnePoolEachAndTheGatewayGoesToItsFamily) {
  auto c = Parse(R"({"type":"abode","network_name":"Blue_Net","gateway":"fd00:5::1",
    "ipRanges":[{"range":"10.5.0.0/24","range_start":"10.5.0.10"},{"range":"fd00:5::/64"}]})");
  ASSERT_TRUE(c.ok()) << c.error().msg;
  ASSERT_EQ(c->pools.size(), 2u);
  EXPECT_EQ(c->pools[0].name, "blue-net-10.5.0.0-24");
  EXPECT_EQ(c->pools[0].range_start, "10.5.0.10");
  EXPECT_EQ(c->pools[0].gateway, "");
  EXPECT_EQ(c->pools[1].name, "blue-net-fd00-5---64");
  EXPECT_EQ(c->pools[1].gateway, "fd00:5::1");
  EXPECT_EQ(c->pools[0].network, "blue-net");
  EXPECT_EQ(c->pools[1].network, "blue-net");
}

TEST(IpamConfigTest, OverlappingRangesOffGivesEachRangeItsOwnNetwork) {
  auto c = Parse(R"({"type":"abode","range":"10.6.0.0/24","enable_overlapping_ranges":false})");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->pools[0].network, c->pools[0].name);
}

TEST(IpamConfigTest, NamedPoolAndAbodeKeys) {
  auto c = Parse(R"({"type":"abode","pool":"pods","socket_path":"/tmp/x.sock","timeout_ms":1500})");
  ASSERT_TRUE(c.ok()) << c.error().msg;
  ASSERT_EQ(c->pools.size(), 1u);
  EXPECT_EQ(c->pools[0].name, "pods");
  EXPECT_FALSE(c->pools[0].has_spec);
  EXPECT_EQ(c->socket_path, "/tmp/x.sock");
  EXPECT_EQ(c->timeout_ms, 1500);
}

TEST(IpamConfigTest, WhereaboutsOnlyKeysAreIgnoredAndUnknownKeysNoted) {
  auto c = Parse(R"({"type":"whereabouts","range":"10.7.0.0/24","kubernetes":{"kubeconfig":"/etc/k"},
    "etcd_host":"x","node_slice_size":"/28","leader_lease_duration":1500,"configuration_path":"/x","frobnicate":1,
    "log_file":"/tmp/wa.log","log_level":"debug"})");
  ASSERT_TRUE(c.ok()) << c.error().msg;
  EXPECT_EQ(c->ignored_keys.size(), 5u);
  EXPECT_EQ(c->unknown_keys, std::vector<std::string>{"frobnicate"});
  EXPECT_EQ(c->log_file, "/tmp/wa.log");
  EXPECT_EQ(c->log_level, "debug");
}

TEST(IpamConfigTest, StaticAddressesRoutesAndDns) {
  auto c = Parse(R"({"type":"abode","range":"10.8.0.0/24","addresses":[{"address":"10.8.0.5/24","gateway":"10.8.0.1"}],
    "routes":[{"dst":"0.0.0.0/0"}],"dns":{"nameservers":["10.8.0.53"]}})");
  ASSERT_TRUE(c.ok()) << c.error().msg;
  ASSERT_EQ(c->addresses.size(), 1u);
  EXPECT_EQ(c->addresses[0].address.ToString(), "10.8.0.5/24");
  EXPECT_EQ(c->routes.size(), 1u);
  EXPECT_EQ(c->dns["nameservers"][0], "10.8.0.53");
}

TEST(IpamConfigTest, GcAttachmentListsInBothSpellings) {
  for (const char* key : {"cni.dev/valid-attachments", "cni.dev/attachments"}) {
    auto c = ParseNetworkConfig(std::string(R"({"cniVersion":"1.1.0","name":"n","ipam":{"range":"10.9.0.0/24"},")") +
                                key + R"(":[{"containerID":"c1","ifname":"eth0"}]})");
    ASSERT_TRUE(c.ok()) << c.error().msg;
    ASSERT_TRUE(c->valid_attachments.has_value()) << key;
    EXPECT_EQ(c->valid_attachments->at(0), (std::pair<std::string, std::string>{"c1", "eth0"}));
  }
  auto none = ParseNetworkConfig(R"({"cniVersion":"1.1.0","name":"n","ipam":{"range":"10.9.0.0/24"}})");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->valid_attachments.has_value());
}

TEST(IpamConfigTest, ErrorsNameTheFieldAndCarryTheSpecCode) {
  struct Case {
    std::string text;
    int code;
    std::string field;
  };
  const std::vector<Case> cases = {
      {"not json", kDecodeFailure, "JSON"},
      {"[1,2]", kDecodeFailure, "object"},
      {R"({"name":"n","ipam":{"range":"10.0.0.0/24"}})", kInvalidConfig, "cniVersion"},
      {R"({"cniVersion":"0.2.0","ipam":{"range":"10.0.0.0/24"}})", kIncompatibleVersion, "cniVersion"},
      {R"({"cniVersion":"1.0.0"})", kInvalidConfig, "ipam"},
      {R"({"cniVersion":"1.0.0","ipam":{}})", kInvalidConfig, "ipam.range"},
      {R"({"cniVersion":"1.0.0","ipam":{"range":"10.0.0.0/33"}})", kInvalidConfig, "ipam.range"},
      {R"({"cniVersion":"1.0.0","ipam":{"range":5}})", kInvalidConfig, "ipam.range"},
      {R"({"cniVersion":"1.0.0","ipam":{"range":"10.0.0.0/24","range_start":"10.1.0.1"}})", kInvalidConfig,
       "ipam.range_start"},
      {R"({"cniVersion":"1.0.0","ipam":{"range":"10.0.0.0/24","exclude":["fd00::/64"]}})", kInvalidConfig,
       "ipam.exclude[0]"},
      {R"({"cniVersion":"1.0.0","ipam":{"ipRanges":[{"range":"10.0.0.0/24"},{"range":"bad"}]}})", kInvalidConfig,
       "ipam.ipRanges[1].range"},
      {R"({"cniVersion":"1.0.0","ipam":{"ipRanges":[{"range":"10.0.0.0/24"},{"range":"10.0.0.0/24"}]}})",
       kInvalidConfig, "ipam.ipRanges"},
      {R"({"cniVersion":"1.0.0","ipam":{"range":"10.0.0.0/24","gateway":"x"}})", kInvalidConfig, "ipam.gateway"},
      {R"({"cniVersion":"1.0.0","ipam":{"range":"10.0.0.0/24","routes":[{"gw":"1.1.1.1"}]}})", kInvalidConfig,
       "ipam.routes[0].dst"},
      {R"({"cniVersion":"1.0.0","ipam":{"range":"10.0.0.0/24","timeout_ms":5}})", kInvalidConfig, "ipam.timeout_ms"},
      {R"({"cniVersion":"1.0.0","ipam":{"range":"10.0.0.0/24","enable_overlapping_ranges":"yes"}})", kInvalidConfig,
       "ipam.enable_overlapping_ranges"},
      {R"({"cniVersion":"1.0.0","ipam":{"addresses":[{"address":"10.0.0.1"}]}})", kInvalidConfig,
       "ipam.addresses[0].address"},
      {R"({"cniVersion":"1.1.0","cni.dev/valid-attachments":{},"ipam":{"range":"10.0.0.0/24"}})", kInvalidConfig,
       "cni.dev/valid-attachments"},
  };
  for (const Case& c : cases) {
    auto r = ParseNetworkConfig(c.text);
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_EQ(r.error().code, c.code) << c.text;
    EXPECT_NE(r.error().msg.find(c.field), std::string::npos) << c.text << " -> " << r.error().msg;
  }
}

TEST(IpamConfigTest, PoolNamesFollowWhereaboutsAndStayValid) {
  EXPECT_EQ(PoolNameFor("", *Prefix::Parse("10.0.0.0/8")), "10.0.0.0-8");
  EXPECT_EQ(PoolNameFor("", *Prefix::Parse("fd00::/64")), "fd00---64");
  EXPECT_EQ(PoolNameFor("net", *Prefix::Parse("2001:db8::/48")), "net-2001-db8---48");
  const std::string long_name = PoolNameFor(std::string(70, 'x'), *Prefix::Parse("10.0.0.0/8"));
  EXPECT_EQ(long_name.size(), 63u);
  EXPECT_NE(long_name, PoolNameFor(std::string(71, 'x'), *Prefix::Parse("10.0.0.0/8")));
}

TEST(IpamConfigTest, VersionsCompareNumerically) {
  EXPECT_LT(CompareVersions("0.4.0", "1.0.0"), 0);
  EXPECT_LT(CompareVersions("0.3.1", "0.10.0"), 0);
  EXPECT_EQ(CompareVersions("1.1.0", "1.1.0"), 0);
  EXPECT_GT(CompareVersions("1.1.0", "1.0.0"), 0);
}

}  // namespace
}  // namespace abode::cni

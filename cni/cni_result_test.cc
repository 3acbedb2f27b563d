#include "cni/cni_result.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace abode::cni {
namespace {

using nlohmann::json;

IpamConfig ConfigOf(const std::string& version) {
  auto c = ParseNetworkConfig(R"({"cniVersion":")" + version +
                              R"(","name":"n","ipam":{"range":"10.1.0.0/24","routes":[{"dst":"0.0.0.0/0"}],"dns":{"nameservers":["10.1.0.53"]}}})");
  EXPECT_TRUE(c.ok());
  return *c;
}

TEST(CniResultTest, OldVersionsCarryIpVersionNewOnesDoNot) {
  const std::vector<AllocatedIp> ips = {{"10.1.0.2", 24, "10.1.0.1", "p4"}, {"fd00::2", 64, "", "p6"}};
  for (const std::string version : {"0.3.0", "0.3.1", "0.4.0"}) {
    const json r = json::parse(AddResultJson(ConfigOf(version), ips));
    EXPECT_EQ(r["cniVersion"], version);
    EXPECT_EQ(r["ips"][0]["version"], "4");
    EXPECT_EQ(r["ips"][1]["version"], "6");
    EXPECT_EQ(r["ips"][0]["address"], "10.1.0.2/24");
    EXPECT_EQ(r["ips"][0]["gateway"], "10.1.0.1");
    EXPECT_FALSE(r["ips"][1].contains("gateway"));
  }
  for (const std::string version : {"1.0.0", "1.1.0"}) {
    const json r = json::parse(AddResultJson(ConfigOf(version), ips));
    EXPECT_EQ(r["cniVersion"], version);
    EXPECT_FALSE(r["ips"][0].contains("version"));
    EXPECT_EQ(r["routes"][0]["dst"], "0.0.0.0/0");
    EXPECT_EQ(r["dns"]["nameservers"][0], "10.1.0.53");
  }
}

TEST(CniResultTest, VersionAndErrorJson) {
  const json v = json::parse(VersionJson("0.4.0"));
  EXPECT_EQ(v["cniVersion"], "0.4.0");
  EXPECT_EQ(v["supportedVersions"].size(), 5u);
  EXPECT_EQ(json::parse(VersionJson(""))["cniVersion"], "1.1.0");
  const json e = json::parse(ErrorJson(CniError{kTryAgainLater, "later", "why"}, "1.0.0"));
  EXPECT_EQ(e["code"], 11);
  EXPECT_EQ(e["msg"], "later");
  EXPECT_EQ(e["details"], "why");
  EXPECT_EQ(e["cniVersion"], "1.0.0");
}

TEST(CniResultTest, PrevResultAddresses) {
  auto ok = PrevResultAddresses(json::parse(R"({"ips":[{"address":"10.1.0.2/24"},{"address":"FD00::2/64"}]})"));
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, (std::vector<std::string>{"10.1.0.2/24", "fd00::2/64"}));
  EXPECT_EQ(PrevResultAddresses(json()).error().code, kInvalidConfig);
  auto bad = PrevResultAddresses(json::parse(R"({"ips":[{"address":"x"}]})"));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().msg.find("prevResult.ips[0].address"), std::string::npos);
}

}  // namespace
}  // namespace abode::cni

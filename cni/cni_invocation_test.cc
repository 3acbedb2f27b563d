#include "cni/cni_invocation.h"

#include <gtest/gtest.h>

namespace abode::cni {
namespace {

std::map<std::string, std::string> Env(std::map<std::string, std::string> extra) {
  std::map<std::string, std::string> env = {{"CNI_COMMAND", "ADD"},
                                            {"CNI_CONTAINERID", "abc123"},
                                            {"CNI_NETNS", "/var/run/netns/x"},
                                            {"CNI_IFNAME", "eth0"},
                                            {"CNI_PATH", "/opt/cni/bin"}};
  for (auto& [k, v] : extra) {
    if (v == "<unset>") {
      env.erase(k);
    } else {
      env[k] = v;
    }
  }
  return env;
}

TEST(CniInvocationTest, ReadsTheEnvironmentAndArgs) {
  auto inv = ParseInvocation(Env({{"CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=web-0;K8S_POD_UID=u-1"}}));
  ASSERT_TRUE(inv.ok()) << inv.error().msg;
  EXPECT_EQ(inv->command, "ADD");
  EXPECT_EQ(inv->container_id, "abc123");
  EXPECT_EQ(inv->args.at("K8S_POD_NAME"), "web-0");
  auto labels = AttachmentLabels(*inv, "net1");
  EXPECT_EQ(labels.at(kLabelPodNamespace), "ns");
  EXPECT_EQ(labels.at(kLabelPodName), "web-0");
  EXPECT_EQ(labels.at(kLabelPodUid), "u-1");
  EXPECT_EQ(labels.at(kLabelNetwork), "net1");
}

TEST(CniInvocationTest, BadEnvironmentIsCodeFourNamingTheVariable) {
  const std::vector<std::pair<std::map<std::string, std::string>, std::string>> cases = {
      {{{"CNI_COMMAND", "<unset>"}}, "CNI_COMMAND"},
      {{{"CNI_COMMAND", "FROB"}}, "CNI_COMMAND"},
      {{{"CNI_CONTAINERID", "<unset>"}}, "CNI_CONTAINERID"},
      {{{"CNI_CONTAINERID", "a/b"}}, "CNI_CONTAINERID"},
      {{{"CNI_IFNAME", "<unset>"}}, "CNI_IFNAME"},
      {{{"CNI_IFNAME", "a-name-longer-than-15"}}, "CNI_IFNAME"},
      {{{"CNI_IFNAME", "eth/0"}}, "CNI_IFNAME"},
      {{{"CNI_NETNS", "<unset>"}}, "CNI_NETNS"},
      {{{"CNI_ARGS", "novalue"}}, "CNI_ARGS"},
  };
  for (const auto& [extra, variable] : cases) {
    auto inv = ParseInvocation(Env(extra));
    ASSERT_FALSE(inv.ok()) << variable;
    EXPECT_EQ(inv.error().code, kInvalidEnvironment);
    EXPECT_EQ(inv.error().msg.rfind(variable, 0), 0u) << inv.error().msg;
  }
}

TEST(CniInvocationTest, DelNeedsNoNetnsAndVersionNeedsNothing) {
  EXPECT_TRUE(ParseInvocation(Env({{"CNI_COMMAND", "DEL"}, {"CNI_NETNS", "<unset>"}})).ok());
  EXPECT_TRUE(ParseInvocation({{"CNI_COMMAND", "VERSION"}}).ok());
  EXPECT_TRUE(ParseInvocation({{"CNI_COMMAND", "GC"}}).ok());
  EXPECT_TRUE(ParseInvocation({{"CNI_COMMAND", "STATUS"}}).ok());
}

TEST(CniInvocationTest, OwnerKeysRoundTrip) {
  const std::string owner = OwnerKey("abc", "net1");
  EXPECT_EQ(owner, "cni/abc/net1");
  std::string id, ifname;
  ASSERT_TRUE(ParseOwnerKey(owner, &id, &ifname));
  EXPECT_EQ(id, "abc");
  EXPECT_EQ(ifname, "net1");
  EXPECT_FALSE(ParseOwnerKey("k8s/uid/eth0", &id, &ifname));
  EXPECT_FALSE(ParseOwnerKey("cni/abc", &id, &ifname));
}

TEST(CniInvocationTest, LabelValuesAreMadeValid) {
  EXPECT_EQ(LabelValue("web-0"), "web-0");
  EXPECT_EQ(LabelValue("a b/c"), "a_b_c");
  const std::string long_value = LabelValue(std::string(100, 'p'));
  EXPECT_EQ(long_value.size(), 63u);
  EXPECT_NE(long_value, LabelValue(std::string(101, 'p')));
  EXPECT_EQ(LabelValue("-x-"), "x");
}

}  // namespace
}  // namespace abode::cni

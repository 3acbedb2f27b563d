#include "kube/yaml_json.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace abode::kube {
namespace {

TEST(YamlJsonTest, MappingsSequencesAndScalarTypes) {
  auto j = ParseYaml(R"(
apiVersion: v1
clusters:
- name: local
  cluster:
    server: https://127.0.0.1:6443
    insecure-skip-tls-verify: true
port: 6443
quoted: "true"
empty:
)");
  ASSERT_TRUE(j.ok()) << j.status();
  EXPECT_EQ((*j)["apiVersion"], "v1");
  EXPECT_EQ((*j)["clusters"][0]["cluster"]["server"], "https://127.0.0.1:6443");
  EXPECT_EQ((*j)["clusters"][0]["cluster"]["insecure-skip-tls-verify"], true);
  EXPECT_EQ((*j)["port"], 6443);
  EXPECT_EQ((*j)["quoted"], "true");  // quoted: a string
  EXPECT_TRUE((*j)["empty"].is_null());
}

TEST(YamlJsonTest, JsonIsYamlToo) {
  auto j = ParseYaml(R"({"a": [1, "b", {"c": null}]})");
  ASSERT_TRUE(j.ok()) << j.status();
  EXPECT_EQ((*j)["a"][1], "b");
  EXPECT_TRUE((*j)["a"][2]["c"].is_null());
}

TEST(YamlJsonTest, SyntaxErrorsNameTheLine) {
  auto j = ParseYaml("a: b\n  c: [d\n");
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(j.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(j.status().message(), ::testing::HasSubstr("line"));
}

}  // namespace
}  // namespace abode::kube

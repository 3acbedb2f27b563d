#include "domain/validation.h"

#include <map>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace abode::domain {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;
using ::testing::StartsWith;

using Labels = google::protobuf::Map<std::string, std::string>;

void ExpectInvalid(const absl::Status& s, const std::string& field) {
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), StartsWith(field)) << s;
}

TEST(ValidateOwnerTest, LengthLimits) {
  EXPECT_TRUE(ValidateOwner("k8s/0f3a2c/eth0", "owner").ok());
  EXPECT_TRUE(ValidateOwner("x", "owner").ok());
  EXPECT_TRUE(ValidateOwner(std::string(253, 'a'), "owner").ok());
  const absl::Status too_long = ValidateOwner(std::string(254, 'a'), "owner");
  ExpectInvalid(too_long, "owner");
  EXPECT_THAT(std::string(too_long.message()), HasSubstr("254 bytes"));
  EXPECT_THAT(std::string(too_long.message()), HasSubstr("253"));
  ExpectInvalid(ValidateOwner("", "owner"), "owner");
}

TEST(ValidateOwnerTest, OpaqueButNoControlCharacters) {
  EXPECT_TRUE(ValidateOwner("Any Thing/with spaces=and:punctuation!~", "owner").ok());
  EXPECT_TRUE(ValidateOwner("\xc3\xa9t\xc3\xa9", "owner").ok());  // UTF-8 is fine
  for (const std::string& bad : {std::string("a\nb"), std::string("a\tb"), std::string("a\x7f"), std::string("\x1b[0m"),
                                 std::string("a\0b", 3)}) {
    const absl::Status s = ValidateOwner(bad, "release.owner");
    ExpectInvalid(s, "release.owner");
    EXPECT_THAT(std::string(s.message()), HasSubstr("control characters"));
  }
}

TEST(ValidateNameTest, DnsLabelStyle) {
  EXPECT_TRUE(ValidateName("pods-a", "pool.name", false).ok());
  EXPECT_TRUE(ValidateName("a", "pool.name", false).ok());
  EXPECT_TRUE(ValidateName("v4.pods", "pool.name", false).ok());
  EXPECT_TRUE(ValidateName(std::string(63, 'a'), "pool.name", false).ok());
  EXPECT_TRUE(ValidateName("", "pool.network", true).ok());
  ExpectInvalid(ValidateName("", "pool.name", false), "pool.name");
  for (const std::string& bad : {std::string(64, 'a'), std::string("Pods"), std::string("-a"), std::string("a-"),
                                 std::string("a_b"), std::string("a b"), std::string(".a")}) {
    ExpectInvalid(ValidateName(bad, "pool.name", false), "pool.name");
  }
}

TEST(ValidateNodeNameTest, DnsSubdomains) {
  EXPECT_TRUE(ValidateNodeName("", "node").ok());
  EXPECT_TRUE(ValidateNodeName("worker-1.eu-west.example.com", "node").ok());
  EXPECT_TRUE(ValidateNodeName(std::string(253, 'n'), "node").ok());
  ExpectInvalid(ValidateNodeName(std::string(254, 'n'), "node"), "node");
  ExpectInvalid(ValidateNodeName("Worker-1", "node"), "node");
  ExpectInvalid(ValidateNodeName("worker_1", "node"), "node");
  ExpectInvalid(ValidateNodeName("worker-", "node"), "node");
  ExpectInvalid(ValidateNodeName("-worker", "node"), "node");
}

TEST(ValidateLabelsTest, AcceptsKubernetesStyleLabels) {
  Labels l;
  l["app"] = "web";
  l["app.kubernetes.io/name"] = "Web_Server-2.0";
  l["example.com/empty"] = "";
  l["A_b.C-d"] = std::string(63, 'v');
  l[std::string(63, 'k')] = "x";
  l[std::string(253, 'p') + "/name"] = "x";
  EXPECT_TRUE(ValidateLabels(l, "labels").ok()) << ValidateLabels(l, "labels");
  EXPECT_TRUE(ValidateLabels(Labels(), "labels").ok());
}

TEST(ValidateLabelsTest, RefusesBadKeysAndValues) {
  auto check = [](const std::string& key, const std::string& value, const std::string& detail) {
    Labels l;
    l["ok"] = "fine";
    l[key] = value;
    const absl::Status s = ValidateLabels(l, "labels");
    ExpectInvalid(s, "labels");
    EXPECT_THAT(std::string(s.message()), HasSubstr(detail)) << key << "=" << value;
  };
  check("", "v", "must be [prefix/]name");
  check("-app", "v", "must be [prefix/]name");
  check("app-", "v", "must be [prefix/]name");
  check("a b", "v", "must be [prefix/]name");
  check(std::string(64, 'k'), "v", "must be [prefix/]name");
  check("Example.com/app", "v", "invalid prefix");
  check("/app", "v", "invalid prefix");
  check(std::string(254, 'p') + "/app", "v", "invalid prefix");
  check("example.com/", "v", "must be [prefix/]name");
  check("a/b/c", "v", "must be [prefix/]name");
  check("app", std::string(64, 'v'), "value");
  check("app", "-v", "value");
  check("app", "a=b", "value");
  check("app", "a\nb", "value");
  check("app", "has space", "value");
}

TEST(ValidateLabelsTest, LimitsTheNumberOfLabels) {
  Labels l;
  for (size_t i = 0; i < kMaxLabels; ++i) l["k" + std::to_string(i)] = "v";
  EXPECT_TRUE(ValidateLabels(l, "labels").ok());
  l["one-more"] = "v";
  const absl::Status s = ValidateLabels(l, "labels");
  ExpectInvalid(s, "labels");
  EXPECT_THAT(std::string(s.message()), HasSubstr("65 labels, at most 64"));
}

TEST(LabelSelectorTest, Parses) {
  auto empty = ParseLabelSelector("", "label_selector");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
  auto blank = ParseLabelSelector("   ", "label_selector");
  ASSERT_TRUE(blank.ok());
  EXPECT_TRUE(blank->empty());

  auto sel = ParseLabelSelector(" app = web , tier==front,example.com/x=", "label_selector");
  ASSERT_TRUE(sel.ok()) << sel.status();
  EXPECT_THAT(*sel, ElementsAre(Pair("app", "web"), Pair("tier", "front"), Pair("example.com/x", "")));
}

TEST(LabelSelectorTest, RefusesMalformedTerms) {
  for (const char* bad : {"app", "app=web,", "=web", "app!=web", "app=web,tier", "a b=c", "app=we b", "app=-web"}) {
    auto sel = ParseLabelSelector(bad, "label_selector");
    ASSERT_FALSE(sel.ok()) << bad;
    ExpectInvalid(sel.status(), "label_selector");
  }
}

TEST(LabelSelectorTest, Matches) {
  const std::map<std::string, std::string> labels = {{"app", "web"}, {"tier", "front"}, {"empty", ""}};
  auto match = [&](const char* text) {
    auto sel = ParseLabelSelector(text, "label_selector");
    EXPECT_TRUE(sel.ok()) << text;
    return sel.ok() && SelectorMatches(*sel, labels);
  };
  EXPECT_TRUE(match(""));
  EXPECT_TRUE(match("app=web"));
  EXPECT_TRUE(match("app=web,tier=front"));
  EXPECT_TRUE(match("empty="));
  EXPECT_FALSE(match("app=db"));
  EXPECT_FALSE(match("app=web,tier=back"));
  EXPECT_FALSE(match("missing="));  // an absent key does not match an empty value
  EXPECT_FALSE(match("App=web"));   // keys are case-sensitive
  EXPECT_FALSE(match("app=web,app=db"));
  EXPECT_FALSE(SelectorMatches({{"app", "web"}}, {}));
}

TEST(LabelCodecTest, EncodeIsSortedAndRoundTrips) {
  Labels l;
  l["zone"] = "b";
  l["app"] = "web";
  l["example.com/tier"] = "";
  l["B"] = "upper";
  const std::string text = EncodeLabels(l);
  EXPECT_EQ(text, "B=upper\napp=web\nexample.com/tier=\nzone=b");
  const std::map<std::string, std::string> back = DecodeLabels(text);
  EXPECT_EQ(back, (std::map<std::string, std::string>(l.begin(), l.end())));

  // Insertion order never changes the encoding.
  Labels other;
  other["B"] = "upper";
  other["example.com/tier"] = "";
  other["app"] = "web";
  other["zone"] = "b";
  EXPECT_EQ(EncodeLabels(other), text);

  EXPECT_EQ(EncodeLabels(Labels()), "");
  EXPECT_TRUE(DecodeLabels("").empty());
  Labels one;
  one["k"] = "v";
  EXPECT_EQ(EncodeLabels(one), "k=v");
  EXPECT_THAT(DecodeLabels("k=v"), ElementsAre(Pair("k", "v")));
}

}  // namespace
}  // namespace abode::domain

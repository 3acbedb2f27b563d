#include "kube/informer.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kube/fake_transport.h"

namespace abode::kube {
namespace {

json Pod(const std::string& name, const std::string& uid, const std::string& rv) {
  return {{"metadata", {{"namespace", "d"}, {"name", name}, {"uid", uid}, {"resourceVersion", rv}}}};
}

std::string List(const std::string& rv, const std::vector<json>& items) {
  return json{{"metadata", {{"resourceVersion", rv}}}, {"items", items}}.dump();
}

std::string Event(const std::string& type, const json& object) { return json{{"type", type}, {"object", object}}.dump(); }

class InformerTest : public ::testing::Test {
 protected:
  InformerTest()
      : tokens_(ClusterConfig{}, clock_),
        client_(transport_, tokens_),
        informer_(client_, "/api/v1/pods", "", [this](const ObjectPtr& before, const ObjectPtr& after) {
          std::string e = before == nullptr ? "add " : after == nullptr ? "delete " : "update ";
          e += (after ? after : before)->key;
          if (after) e += "@" + after->resource_version;
          events_.push_back(e);
          if (stop_after_ == events_.size()) stop_.Stop();
        }) {}
  void Lists(const std::string& body) {
    transport_.SetHandler([body](const HttpRequest&) { return HttpResponse{200, body}; });
  }

  replication::FakeClock clock_{0};
  FakeTransport transport_;
  TokenSource tokens_;
  KubeClient client_;
  StopSignal stop_;
  size_t stop_after_ = 0;
  std::vector<std::string> events_;
  Informer informer_;
};

TEST_F(InformerTest, ARelistReportsOnlyDifferences) {
  Lists(List("10", {Pod("a", "ua", "5"), Pod("b", "ub", "6")}));
  ASSERT_TRUE(informer_.Relist().ok());
  EXPECT_TRUE(informer_.synced());
  EXPECT_EQ(informer_.list_resource_version(), "10");
  Lists(List("12", {Pod("a", "ua", "5"), Pod("b", "ub", "11"), Pod("c", "uc", "12")}));
  ASSERT_TRUE(informer_.Relist().ok());
  Lists(List("13", {Pod("b", "ub", "11"), Pod("c", "uc", "12")}));
  ASSERT_TRUE(informer_.Relist().ok());
  EXPECT_EQ(events_, (std::vector<std::string>{"add d/a@5", "add d/b@6", "update d/b@11", "add d/c@12",
                                               "delete d/a"}));
  ASSERT_NE(informer_.Get("d/c"), nullptr);
  EXPECT_EQ(informer_.Get("d/c")->uid, "uc");
  EXPECT_EQ(informer_.size(), 2u);
}

TEST_F(InformerTest, TheCacheKeepsObjectsWithoutManagedFields) {
  json pod = Pod("a", "ua", "5");
  pod["metadata"]["managedFields"] = json::array({{{"manager", "kubectl"}, {"operation", "Update"}}});
  pod["metadata"]["labels"] = {{"app", "web"}};
  Lists(List("10", {pod}));
  ASSERT_TRUE(informer_.Relist().ok());
  ASSERT_NE(informer_.Get("d/a"), nullptr);
  const json& meta = informer_.Get("d/a")->body["metadata"];
  EXPECT_FALSE(meta.contains("managedFields"));
  EXPECT_EQ(meta["labels"]["app"], "web");
}

TEST_F(InformerTest, WatchResumesAndA410RelistsWithoutDuplicates) {
  Lists(List("10", {Pod("a", "ua", "5")}));
  transport_.QueueWatch({200,
                         {Event("MODIFIED", Pod("a", "ua", "11")), Event("ADDED", Pod("b", "ub", "12")),
                          Event("BOOKMARK", json{{"metadata", {{"resourceVersion", "14"}}}})},
                         ""});
  // The server restarted and compacted: the resume from 14 is too old.
  transport_.QueueWatch({410, {}, R"j({"message":"too old resource version: 14 (20)"})j"});
  transport_.QueueWatch({200, {Event("DELETED", Pod("c", "uc", "22"))}, ""});
  stop_after_ = 5;
  // What the relist finds: a and b unchanged (no event), c new.
  transport_.SetHandler([n = 0](const HttpRequest&) mutable {
    return HttpResponse{200, ++n == 1 ? List("10", {Pod("a", "ua", "5")})
                                      : List("21", {Pod("a", "ua", "11"), Pod("b", "ub", "12"), Pod("c", "uc", "21")})};
  });
  informer_.Run(stop_);
  EXPECT_EQ(events_, (std::vector<std::string>{"add d/a@5", "update d/a@11", "add d/b@12", "add d/c@21",
                                               "delete d/c"}));
  auto reqs = transport_.requests();
  std::vector<std::string> paths;
  for (const auto& r : reqs) paths.push_back(r.path);
  EXPECT_THAT(paths[1], ::testing::HasSubstr("resourceVersion=10"));
  EXPECT_THAT(paths[2], ::testing::HasSubstr("resourceVersion=14"));  // resumed from the bookmark
  EXPECT_THAT(paths[3], ::testing::StartsWith("/api/v1/pods?limit="));  // relisted after 410
  EXPECT_THAT(paths[4], ::testing::HasSubstr("resourceVersion=21"));
  EXPECT_EQ(informer_.stats().gone, 1u);
  EXPECT_EQ(informer_.stats().lists, 2u);
}

TEST(ResourceVersionTest, NumericOrder) {
  EXPECT_TRUE(ResourceVersionLess("9", "10"));
  EXPECT_TRUE(ResourceVersionLess("10", "11"));
  EXPECT_FALSE(ResourceVersionLess("11", "11"));
}

}  // namespace
}  // namespace abode::kube

#include "kube/client.h"

#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kube/backoff.h"
#include "kube/fake_transport.h"
#include "test-support/temp_dir.h"

namespace abode::kube {
namespace {

using ::testing::HasSubstr;

class ClientTest : public ::testing::Test {
 protected:
  ClientTest() : tokens_(Config(), clock_), client_(transport_, tokens_) {}
  static ClusterConfig Config() {
    ClusterConfig c;
    c.token = "tok";
    return c;
  }
  replication::FakeClock clock_{1'700'000'000'000};
  FakeTransport transport_;
  TokenSource tokens_;
  KubeClient client_;
};

TEST(ResourcePathTest, CoreAndGroupedNamespacedAndClusterScoped) {
  EXPECT_EQ(ResourcePath("v1", "pods", "ns", "p", "status"), "/api/v1/namespaces/ns/pods/p/status");
  EXPECT_EQ(ResourcePath("v1", "nodes"), "/api/v1/nodes");
  EXPECT_EQ(ResourcePath("coordination.k8s.io/v1", "leases", "kube-system", "abode-kube"),
            "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/abode-kube");
  EXPECT_EQ(QueryEscape("app=dd agent,x/y"), "app%3Ddd%20agent%2Cx%2Fy");
}

TEST_F(ClientTest, AnswersMapToPreciseStatusCodesWithTheServerMessage) {
  const std::map<int, absl::StatusCode> codes = {
      {404, absl::StatusCode::kNotFound},         {409, absl::StatusCode::kAborted},
      {410, absl::StatusCode::kOutOfRange},       {403, absl::StatusCode::kPermissionDenied},
      {422, absl::StatusCode::kInvalidArgument},  {503, absl::StatusCode::kUnavailable},
      {429, absl::StatusCode::kUnavailable},      {418, absl::StatusCode::kInternal}};
  for (const auto& [http, code] : codes) {
    transport_.SetHandler([http = http](const HttpRequest&) {
      return HttpResponse{http, R"({"kind":"Status","message":"pods \"x\" said no","reason":"Conflict"})"};
    });
    auto got = client_.Get("/api/v1/namespaces/d/pods/x");
    EXPECT_EQ(got.status().code(), code) << http;
    EXPECT_THAT(got.status().message(), HasSubstr("said no")) << http;
  }
  transport_.SetHandler([](const HttpRequest&) { return HttpResponse{409, R"({"reason":"AlreadyExists"})"}; });
  EXPECT_EQ(client_.Create("/api/v1/namespaces/d/pods", json::object()).status().code(),
            absl::StatusCode::kAlreadyExists);
  transport_.SetHandler([](const HttpRequest&) { return HttpResponse{200, "not json"}; });
  EXPECT_EQ(client_.Get("/api/v1/nodes/a").status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(ClientTest, ListFollowsContinueTokensAndKeepsTheFirstResourceVersion) {
  transport_.SetHandler([](const HttpRequest& r) {
    if (r.path.find("continue=") == std::string::npos) {
      return HttpResponse{200, R"({"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"100",
                                   "continue":"p2"},"items":[{"a":1}]})"};
    }
    return HttpResponse{200, R"({"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"101"},
                                 "items":[{"a":2},{"a":3}]})"};
  });
  auto list = client_.List("/api/v1/pods", "app=x", 1);
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_EQ(list->resource_version, "100");
  EXPECT_EQ(list->items.size(), 3u);
  // Items carry their kind and apiVersion, as a watch event's object does (the server leaves them out).
  EXPECT_EQ(list->items[2], (json{{"a", 3}, {"kind", "Pod"}, {"apiVersion", "v1"}}));
  auto reqs = transport_.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].path, "/api/v1/pods?limit=1&labelSelector=app%3Dx");
  EXPECT_EQ(reqs[1].path, "/api/v1/pods?limit=1&labelSelector=app%3Dx&continue=p2");
  EXPECT_EQ(reqs[0].bearer_token, "tok");
}

TEST_F(ClientTest, WatchDeliversEventsAndReturnsTheLastVersionOrGone) {
  transport_.QueueWatch({200,
                         {R"({"type":"ADDED","object":{"metadata":{"name":"a","resourceVersion":"5"}}})",
                          R"({"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"9"}}})"},
                         ""});
  std::vector<std::string> seen;
  auto rv = client_.Watch("/api/v1/pods", "", "4", [&](const WatchEvent& e) {
    seen.push_back(e.type);
    return true;
  }, [] { return false; });
  ASSERT_TRUE(rv.ok()) << rv.status();
  EXPECT_EQ(*rv, "9");
  EXPECT_EQ(seen, (std::vector<std::string>{"ADDED", "BOOKMARK"}));
  EXPECT_THAT(transport_.requests().back().path,
              HasSubstr("watch=1&allowWatchBookmarks=true&timeoutSeconds=300&resourceVersion=4"));

  // 410 as an ERROR event in the stream, or as the answer itself.
  transport_.QueueWatch({200, {R"({"type":"ERROR","object":{"kind":"Status","code":410,"message":"too old"}})"}, ""});
  EXPECT_TRUE(IsGone(client_.Watch("/api/v1/pods", "", "4", [](const WatchEvent&) { return true; },
                                   [] { return false; }).status()));
  transport_.QueueWatch({410, {}, R"({"message":"too old resource version"})"});
  EXPECT_TRUE(IsGone(client_.Watch("/api/v1/pods", "", "4", [](const WatchEvent&) { return true; },
                                   [] { return false; }).status()));
  transport_.QueueWatch({200, {"garbage"}, ""});
  EXPECT_EQ(client_.Watch("/api/v1/pods", "", "4", [](const WatchEvent&) { return true; }, [] { return false; })
                .status()
                .code(),
            absl::StatusCode::kDataLoss);
}

TEST_F(ClientTest, PatchesAndEventsUseTheRightMethodAndContentType) {
  transport_.SetHandler([](const HttpRequest&) { return HttpResponse{201, "{}"}; });
  ASSERT_TRUE(client_.MergePatch("/api/v1/namespaces/d/pods/p", {{"metadata", {{"annotations", {{"a", "b"}}}}}}).ok());
  ASSERT_TRUE(client_.Apply("/api/v1/namespaces/d/services/s/status", json::object(), "abode-kube").ok());
  json pod = {{"apiVersion", "v1"}, {"kind", "Pod"}, {"metadata", {{"name", "p"}, {"namespace", "d"}, {"uid", "u"}}}};
  ASSERT_TRUE(client_.RecordEvent(pod, "Warning", "AddressRefused", "taken", "abode-kube", 0).ok());
  auto reqs = transport_.requests();
  ASSERT_EQ(reqs.size(), 3u);
  EXPECT_EQ(reqs[0].method, "PATCH");
  EXPECT_EQ(reqs[0].content_type, "application/merge-patch+json");
  EXPECT_EQ(reqs[1].content_type, "application/apply-patch+yaml");
  EXPECT_EQ(reqs[1].path, "/api/v1/namespaces/d/services/s/status?fieldManager=abode-kube&force=true");
  EXPECT_EQ(reqs[2].method, "POST");
  EXPECT_EQ(reqs[2].path, "/api/v1/namespaces/d/events");
  json ev = json::parse(reqs[2].body);
  EXPECT_EQ(ev["involvedObject"]["uid"], "u");
  EXPECT_EQ(ev["reason"], "AddressRefused");
  EXPECT_EQ(ev["firstTimestamp"], "1970-01-01T00:00:00Z");
}

TEST(TokenRetryTest, A401ReReadsTheTokenFileOnce) {
  test_support::TempDir dir;
  { std::ofstream(dir.File("token")) << "old"; }
  ClusterConfig c;
  c.token_file = dir.File("token");
  replication::FakeClock clock(0);
  TokenSource tokens(c, clock);
  FakeTransport transport;
  KubeClient client(transport, tokens);
  ASSERT_TRUE(tokens.Token().ok());
  { std::ofstream(dir.File("token")) << "new"; }
  transport.SetHandler([](const HttpRequest& r) {
    return r.bearer_token == "new" ? HttpResponse{200, "{}"} : HttpResponse{401, R"({"message":"expired"})"};
  });
  EXPECT_TRUE(client.Get("/api/v1/nodes").ok());
  EXPECT_EQ(transport.requests().size(), 2u);
  transport.SetHandler([](const HttpRequest&) { return HttpResponse{401, R"({"message":"no"})"}; });
  EXPECT_EQ(client.Get("/api/v1/nodes").status().code(), absl::StatusCode::kUnauthenticated);
}

TEST(BackoffTest, DoublesWithJitterUpToTheCapAndResets) {
  Backoff b(100, 1'000, 42);
  const int64_t ceilings[] = {100, 200, 400, 800, 1'000, 1'000};
  for (int64_t ceiling : ceilings) {
    const int64_t wait = b.NextMs();
    EXPECT_GE(wait, ceiling / 2);
    EXPECT_LE(wait, ceiling);
  }
  b.Reset();
  EXPECT_LE(b.NextMs(), 100);
  // Jitter: two seeds disagree somewhere in a few draws.
  Backoff x(100, 100'000, 1), y(100, 100'000, 2);
  bool differ = false;
  for (int i = 0; i < 8; ++i) differ = differ || x.NextMs() != y.NextMs();
  EXPECT_TRUE(differ);
}

}  // namespace
}  // namespace abode::kube

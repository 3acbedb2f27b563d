#include "kube/event_recorder.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kube/fake_transport.h"

namespace abode::kube {
namespace {

// A scripted events collection: POST names the Event, merge PATCH of a known name merges, anything else 404.
class EventRecorderTest : public ::testing::Test {
 protected:
  EventRecorderTest() : tokens_(Config(), clock_), client_(transport_, tokens_) {
    transport_.SetHandler([this](const HttpRequest& r) -> HttpResponse {
      if (r.method == "POST") {
        json ev = json::parse(r.body);
        const std::string name = "ev" + std::to_string(++created_);
        ev["metadata"]["name"] = name;
        events_[name] = ev;
        return {201, ev.dump()};
      }
      const std::string name = r.path.substr(r.path.rfind('/') + 1);
      if (r.method != "PATCH" || !events_.count(name)) return {404, R"({"message":"not found"})"};
      events_[name].merge_patch(json::parse(r.body));
      return {200, events_[name].dump()};
    });
  }
  static ClusterConfig Config() {
    ClusterConfig c;
    c.token = "tok";
    return c;
  }
  static json Service(const std::string& uid) {
    return {{"apiVersion", "v1"},
            {"kind", "Service"},
            {"metadata", {{"name", "web"}, {"namespace", "default"}, {"uid", uid}}}};
  }

  replication::FakeClock clock_{1'700'000'000'000};
  FakeTransport transport_;
  TokenSource tokens_;
  KubeClient client_;
  int created_ = 0;
  std::map<std::string, json> events_;
};

TEST_F(EventRecorderTest, ARepeatCountsOnTheSameEventAndMovesItsLastTimestamp) {
  EventRecorder recorder(client_, clock_, "abode-kube");
  for (int i = 1; i <= 5; ++i) {
    auto count = recorder.Record(Service("u1"), "Warning", "ExternalIPRefused", "198.51.100.7 is outside");
    ASSERT_TRUE(count.ok()) << count.status();
    EXPECT_EQ(*count, i);
    clock_.Advance(60'000);
  }
  ASSERT_EQ(events_.size(), 1u);
  const json& ev = events_.begin()->second;
  EXPECT_EQ(ev["count"], 5);
  EXPECT_EQ(ev["firstTimestamp"], "2023-11-14T22:13:20Z");
  EXPECT_EQ(ev["lastTimestamp"], "2023-11-14T22:17:20Z");
  EXPECT_EQ(ev["involvedObject"]["uid"], "u1");
  const auto requests = transport_.requests();
  ASSERT_EQ(requests.size(), 5u);
  EXPECT_EQ(requests[1].method, "PATCH");
  EXPECT_EQ(requests[1].path, "/api/v1/namespaces/default/events/ev1");
  EXPECT_EQ(requests[1].content_type, "application/merge-patch+json");
}

TEST_F(EventRecorderTest, AnotherMessageReasonOrObjectIsAnotherEvent) {
  EventRecorder recorder(client_, clock_, "abode-kube");
  ASSERT_TRUE(recorder.Record(Service("u1"), "Warning", "ExternalIPRefused", "a").ok());
  ASSERT_TRUE(recorder.Record(Service("u1"), "Warning", "ExternalIPRefused", "b").ok());
  ASSERT_TRUE(recorder.Record(Service("u1"), "Warning", "LoadBalancerRefused", "a").ok());
  ASSERT_TRUE(recorder.Record(Service("u2"), "Warning", "ExternalIPRefused", "a").ok());  // re-created
  EXPECT_EQ(events_.size(), 4u);
  for (const auto& [name, ev] : events_) EXPECT_EQ(ev["count"], 1) << name;
}

TEST_F(EventRecorderTest, AnEventGoneMeanwhileIsCreatedAgainWithCountOne) {
  EventRecorder recorder(client_, clock_, "abode-kube");
  ASSERT_TRUE(recorder.Record(Service("u1"), "Warning", "Refused", "m").ok());
  ASSERT_TRUE(recorder.Record(Service("u1"), "Warning", "Refused", "m").ok());
  events_.clear();  // the API server's TTL
  auto count = recorder.Record(Service("u1"), "Warning", "Refused", "m");
  ASSERT_TRUE(count.ok()) << count.status();
  EXPECT_EQ(*count, 1);
  ASSERT_EQ(events_.count("ev2"), 1u);
  EXPECT_EQ(events_["ev2"]["count"], 1);
  // And counts on from there.
  EXPECT_EQ(recorder.Record(Service("u1"), "Warning", "Refused", "m").value(), 2);
}

TEST_F(EventRecorderTest, TheOldestKeysAreForgottenPastTheBound) {
  EventRecorder recorder(client_, clock_, "abode-kube", 2);
  ASSERT_TRUE(recorder.Record(Service("u1"), "Warning", "Refused", "a").ok());
  ASSERT_TRUE(recorder.Record(Service("u1"), "Warning", "Refused", "b").ok());
  ASSERT_TRUE(recorder.Record(Service("u1"), "Warning", "Refused", "a").ok());  // a is the newest again
  ASSERT_TRUE(recorder.Record(Service("u1"), "Warning", "Refused", "c").ok());  // b goes
  EXPECT_EQ(recorder.Record(Service("u1"), "Warning", "Refused", "a").value(), 3);
  EXPECT_EQ(recorder.Record(Service("u1"), "Warning", "Refused", "b").value(), 1) << "forgotten: a new Event";
  EXPECT_EQ(events_.size(), 4u);
}

}  // namespace
}  // namespace abode::kube

#include "assignment_stream.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <string>
#include <thread>

#include <grpc/grpc.h>
#include <grpc/support/alloc.h>
#include <nlohmann/json.hpp>

#include "fake_address_programmer.h"
#include "fake_conntrack_flusher.h"
#include "fake_rule_programmer.h"
#include "integration/allocator_process.h"
#include "node_metrics.h"
#include "reconciler.h"
#include "test-support/eventually.h"
#include "test-support/temp_dir.h"

namespace abode::node {
namespace {

using ::testing::ElementsAre;

// A scripted stream: the test pushes server messages and ends it; everything written is recorded.
class FakeStream {
 public:
  bool Write(const v1::WatchAssignmentsRequest& request) {
    std::lock_guard<std::mutex> lock(mu_);
    if (cancelled_ || ended_) return false;
    written_.push_back(request);
    cv_.notify_all();
    return true;
  }
  bool Read(v1::WatchAssignmentsResponse* response) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return cancelled_ || !to_read_.empty() || ended_; });
    if (cancelled_ || to_read_.empty()) return false;
    *response = to_read_.front();
    to_read_.pop_front();
    return true;
  }
  void Cancel() {
    std::lock_guard<std::mutex> lock(mu_);
    cancelled_ = true;
    cv_.notify_all();
  }
  void Push(v1::WatchAssignmentsResponse response) {
    std::lock_guard<std::mutex> lock(mu_);
    to_read_.push_back(std::move(response));
    cv_.notify_all();
  }
  void End() {  // the server goes away
    std::lock_guard<std::mutex> lock(mu_);
    ended_ = true;
    cv_.notify_all();
  }
  // Waits (bounded) until `predicate(written)` holds.
  bool WaitWritten(const std::function<bool(const std::vector<v1::WatchAssignmentsRequest>&)>& predicate) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(30), [&] { return predicate(written_); });
  }
  std::vector<v1::WatchAssignmentsRequest> written() {
    std::lock_guard<std::mutex> lock(mu_);
    return written_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<v1::WatchAssignmentsResponse> to_read_;
  std::vector<v1::WatchAssignmentsRequest> written_;
  bool cancelled_ = false;
  bool ended_ = false;
};

class FakeConnection final : public WatchConnection {
 public:
  explicit FakeConnection(std::shared_ptr<FakeStream> stream) : stream_(std::move(stream)) {}
  bool Write(const v1::WatchAssignmentsRequest& request) override { return stream_->Write(request); }
  bool Read(v1::WatchAssignmentsResponse* response) override { return stream_->Read(response); }
  void Cancel() override { stream_->Cancel(); }
  absl::Status Finish() override { return absl::UnavailableError("stream ended"); }

 private:
  std::shared_ptr<FakeStream> stream_;
};

class FakeTransport final : public WatchTransport {
 public:
  absl::StatusOr<std::unique_ptr<WatchConnection>> Open(const std::string& endpoint) override {
    std::lock_guard<std::mutex> lock(mu_);
    opened_.push_back(endpoint);
    cv_.notify_all();
    if (endpoint.starts_with("down")) return absl::UnavailableError("connection refused");
    streams_.push_back(std::make_shared<FakeStream>());
    return std::unique_ptr<WatchConnection>(new FakeConnection(streams_.back()));
  }
  // Waits (bounded) for the n-th stream (0-based) to be opened.
  std::shared_ptr<FakeStream> WaitStream(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait_for(lock, std::chrono::seconds(30), [&] { return streams_.size() > n; })) return nullptr;
    return streams_[n];
  }
  std::vector<std::string> opened() {
    std::lock_guard<std::mutex> lock(mu_);
    return opened_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> opened_;
  std::vector<std::shared_ptr<FakeStream>> streams_;
};

class RecordingSink final : public AssignmentSink {
 public:
  std::vector<v1::AssignmentStatus> OnUpdate(const v1::WatchAssignmentsResponse& update) override {
    std::lock_guard<std::mutex> lock(mu_);
    updates_.push_back(update);
    revision_ = update.revision();
    v1::AssignmentStatus status;
    status.set_id("update/" + std::to_string(update.revision()));
    status.set_state(v1::ASSIGNMENT_STATE_OK);
    return {status};
  }
  std::vector<v1::AssignmentStatus> AllStatuses() override {
    v1::AssignmentStatus status;
    status.set_id("all");
    return {status};
  }
  uint64_t AppliedRevision() override {
    std::lock_guard<std::mutex> lock(mu_);
    return revision_;
  }
  std::vector<v1::AssignmentStatus> OnLeaseRenewed() override {
    std::lock_guard<std::mutex> lock(mu_);
    ++renewals_;
    cv_.notify_all();
    return {};
  }
  // Waits (bounded) until OnLeaseRenewed() was called `n` times.
  bool WaitRenewals(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(30), [&] { return renewals_ >= n; });
  }
  size_t updates() {
    std::lock_guard<std::mutex> lock(mu_);
    return updates_.size();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<v1::WatchAssignmentsResponse> updates_;
  uint64_t revision_ = 0;
  int renewals_ = 0;
};

v1::WatchAssignmentsResponse Message(uint64_t revision, bool snapshot, int64_t lease_ms = 0) {
  v1::WatchAssignmentsResponse r;
  r.set_revision(revision);
  r.set_snapshot(snapshot);
  r.set_lease_ms(lease_ms);
  return r;
}

AssignmentStreamOptions Options(std::vector<std::string> endpoints) {
  AssignmentStreamOptions options;
  options.registration.set_name("node-a");
  (*options.registration.mutable_labels())["zone"] = "z1";
  options.endpoints = std::move(endpoints);
  options.initial_backoff = std::chrono::milliseconds(10);
  options.max_backoff = std::chrono::milliseconds(40);
  return options;
}

TEST(ParseEndpointsTest, AcceptsListsAndRefusesMalformedEntries) {
  EXPECT_THAT(*ParseEndpoints("a:1, b:2"), ElementsAre("a:1", "b:2"));
  EXPECT_THAT(*ParseEndpoints("[::1]:7000"), ElementsAre("[::1]:7000"));
  EXPECT_FALSE(ParseEndpoints("").ok());
  EXPECT_FALSE(ParseEndpoints("host").ok());
  EXPECT_FALSE(ParseEndpoints("host:").ok());
}

TEST(AssignmentStreamClientTest, RegistersHeartbeatsReportsAndResumesOnTheNextEndpoint) {
  FakeTransport transport;
  RecordingSink sink;
  AssignmentStreamClient client(Options({"down:1", "a:1", "b:1"}), &transport, &sink);
  std::thread runner([&] { client.Run(); });

  // The first endpoint refuses; the second gets the start with the registration.
  std::shared_ptr<FakeStream> first = transport.WaitStream(0);
  ASSERT_NE(first, nullptr);
  ASSERT_TRUE(first->WaitWritten([](const auto& w) { return !w.empty(); }));
  const v1::WatchStart start = first->written()[0].start();
  EXPECT_EQ(start.node(), "node-a");
  EXPECT_EQ(start.resume_revision(), 0u);
  EXPECT_EQ(start.registration().labels().at("zone"), "z1");

  // Snapshot with a 30 ms lease: statuses (the full set), then heartbeats at a fraction of the lease.
  first->Push(Message(7, true, 30));
  ASSERT_TRUE(first->WaitWritten([](const auto& w) {
    int heartbeats = 0;
    for (const auto& r : w) heartbeats += r.has_heartbeat();
    return heartbeats >= 2;
  }));
  first->Push(Message(8, false));
  ASSERT_TRUE(first->WaitWritten([](const auto& w) {
    for (const auto& r : w) {
      if (r.has_status() && r.status().statuses(0).id() == "update/8") return true;
    }
    return false;
  }));
  bool reported_all = false;
  for (const auto& r : first->written()) reported_all |= r.has_status() && r.status().statuses(0).id() == "all";
  EXPECT_TRUE(reported_all);

  // The allocator goes away: the client moves on and resumes from revision 8.
  first->End();
  std::shared_ptr<FakeStream> second = transport.WaitStream(1);
  ASSERT_NE(second, nullptr);
  ASSERT_TRUE(second->WaitWritten([](const auto& w) { return !w.empty(); }));
  EXPECT_EQ(second->written()[0].start().resume_revision(), 8u);
  second->Push(Message(8, false, 5000));
  ASSERT_TRUE(second->WaitWritten([](const auto& w) { return w.size() >= 2; }));
  EXPECT_EQ(client.established_streams(), 2);

  client.Stop();
  runner.join();
  const auto opened = transport.opened();
  ASSERT_GE(opened.size(), 3u);
  EXPECT_THAT(std::vector<std::string>(opened.begin(), opened.begin() + 3), ElementsAre("down:1", "a:1", "b:1"));
}

TEST(AssignmentStreamClientTest, TheLeaseRunsFromWhenTheAcknowledgedHeartbeatWasSent) {
  FakeTransport transport;
  RecordingSink sink;
  // A clock the test moves: heartbeats and start are stamped with it when they leave.
  std::atomic<int64_t> now_ms{1000};
  NodeLease lease([&] { return NodeLease::Clock::time_point(std::chrono::milliseconds(now_ms.load())); });
  AssignmentStreamOptions options = Options({"a:1"});
  options.lease = &lease;
  AssignmentStreamClient client(options, &transport, &sink);
  std::thread runner([&] { client.Run(); });
  std::shared_ptr<FakeStream> stream = transport.WaitStream(0);
  ASSERT_NE(stream, nullptr);
  ASSERT_TRUE(stream->WaitWritten([](const auto& w) { return !w.empty(); }));
  const uint64_t start_sequence = stream->written()[0].start().heartbeat_sequence();
  EXPECT_GT(start_sequence, 0u);
  EXPECT_FALSE(lease.Until().has_value());

  // The first message acknowledges `start`: the lease runs 60 ms from when it was sent, not from now.
  now_ms = 1500;
  v1::WatchAssignmentsResponse first = Message(7, true, 60);
  first.set_acknowledges_heartbeats(true);
  first.set_heartbeat_acknowledged(start_sequence);
  stream->Push(first);
  ASSERT_TRUE(stream->WaitWritten([](const auto& w) {
    for (const auto& r : w) {
      if (r.has_heartbeat()) return true;
    }
    return false;
  }));
  ASSERT_TRUE(lease.Until().has_value());
  EXPECT_EQ(*lease.Until(), NodeLease::Clock::time_point(std::chrono::milliseconds(1060)));
  EXPECT_FALSE(lease.Valid());  // 1500 is past it

  // A heartbeat acknowledged alone renews the lease from its own sending time and is no update.
  uint64_t heartbeat_sequence = 0;
  for (const auto& r : stream->written()) {
    if (r.has_heartbeat()) heartbeat_sequence = r.heartbeat().sequence();
  }
  ASSERT_GT(heartbeat_sequence, start_sequence);
  const size_t updates = sink.updates();
  v1::WatchAssignmentsResponse ack;
  ack.set_heartbeat_acknowledged(heartbeat_sequence);
  stream->Push(ack);
  ASSERT_TRUE(sink.WaitRenewals(1));
  EXPECT_EQ(*lease.Until(), NodeLease::Clock::time_point(std::chrono::milliseconds(1560)));
  EXPECT_TRUE(lease.Valid());
  EXPECT_EQ(sink.updates(), updates);
  client.Stop();
  runner.join();
}

// The value of the sample of `family` with label state=`state` (or the only sample, for ""); -1 if none.
double Sampled(const std::vector<prometheus::MetricFamily>& families, const std::string& family,
               const std::string& state = "") {
  for (const auto& f : families) {
    if (f.name != family) continue;
    for (const auto& m : f.metric) {
      if (state.empty() ? m.label.empty() : (m.label.size() == 1 && m.label[0].value == state)) {
        return f.type == prometheus::MetricType::Counter ? m.counter.value : m.gauge.value;
      }
    }
  }
  return -1;
}

TEST(NodeMetricsTest, FollowTheStreamAndTheReconciler) {
  FakeAddressProgrammer addresses;
  addresses.AddInterface("eth0");
  addresses.AddForeignAddress({"eth0", "203.0.113.20", 24});
  FakeRuleProgrammer rules;
  FakeAnnouncer announcer;
  FakeConntrackFlusher conntrack;
  Reconciler reconciler({"eth0", "abode0"}, &addresses, &rules, &announcer, &conntrack);
  FakeTransport transport;
  AssignmentStreamClient client(Options({"a:1"}), &transport, &reconciler);
  const NodeMetrics metrics(reconciler, client);

  auto m = metrics.Collect();
  EXPECT_EQ(Sampled(m, "abode_node_stream_up"), 0);
  EXPECT_EQ(Sampled(m, "abode_node_streams_established_total"), 0);
  EXPECT_EQ(Sampled(m, "abode_node_applied_revision"), 0);
  EXPECT_EQ(Sampled(m, "abode_node_assignments", "ok"), 0);
  EXPECT_EQ(Sampled(m, "abode_node_assignments", "error"), 0);

  std::thread runner([&] { client.Run(); });
  std::shared_ptr<FakeStream> stream = transport.WaitStream(0);
  ASSERT_NE(stream, nullptr);
  v1::WatchAssignmentsResponse snapshot = Message(7, true, 5000);
  for (const auto& [name, address] : {std::pair{"web", "203.0.113.10"}, std::pair{"taken", "203.0.113.20"}}) {
    v1::Assignment* a = snapshot.add_assignments();
    a->set_id(std::string("external/") + name);
    a->set_revision(7);
    a->mutable_external()->set_name(name);
    a->mutable_external()->set_address(address);
    a->mutable_external()->set_prefix_length(24);
  }
  stream->Push(snapshot);
  // The statuses go out once the snapshot is applied.
  ASSERT_TRUE(stream->WaitWritten([](const auto& w) {
    for (const auto& r : w) {
      if (r.has_status()) return true;
    }
    return false;
  }));
  m = metrics.Collect();
  EXPECT_EQ(Sampled(m, "abode_node_stream_up"), 1);
  EXPECT_EQ(Sampled(m, "abode_node_streams_established_total"), 1);
  EXPECT_EQ(Sampled(m, "abode_node_applied_revision"), 7);
  EXPECT_EQ(Sampled(m, "abode_node_assignments", "ok"), 1);
  EXPECT_EQ(Sampled(m, "abode_node_assignments", "error"), 1);  // 203.0.113.20 is someone else's
  EXPECT_EQ(Sampled(m, "abode_node_assignments", "pending"), 0);
  EXPECT_EQ(Sampled(m, "abode_node_addresses_added_total"), 1);
  EXPECT_EQ(Sampled(m, "abode_node_addresses_removed_total"), 0);
  EXPECT_GE(Sampled(m, "abode_node_reconciles_total"), 1);
  EXPECT_GE(Sampled(m, "abode_node_announcements_total"), 1);

  // The allocator goes away: the node no longer follows one, and keeps what it applied.
  stream->End();
  test_support::Eventually([&] { return !client.streaming(); }, std::chrono::seconds(5), std::chrono::milliseconds(10));
  m = metrics.Collect();
  EXPECT_EQ(Sampled(m, "abode_node_stream_up"), 0);
  EXPECT_EQ(Sampled(m, "abode_node_applied_revision"), 7);
  EXPECT_EQ(Sampled(m, "abode_node_assignments", "ok"), 1);

  client.Stop();
  runner.join();
}

TEST(AssignmentStreamClientTest, StopEndsAnOpenStreamAndRunReturns) {
  FakeTransport transport;
  RecordingSink sink;
  AssignmentStreamClient client(Options({"a:1"}), &transport, &sink);
  std::thread runner([&] { client.Run(); });
  std::shared_ptr<FakeStream> stream = transport.WaitStream(0);
  ASSERT_NE(stream, nullptr);
  stream->Push(Message(3, true, 5000));
  ASSERT_TRUE(stream->WaitWritten([](const auto& w) { return w.size() >= 2; }));
  client.Stop();
  runner.join();  // returns: the blocked Read was cancelled
  EXPECT_EQ(transport.opened().size(), 1u);
}

TEST(AssignmentStreamClientTest, KeepsRetryingWhileNoAllocatorAnswers) {
  FakeTransport transport;
  RecordingSink sink;
  AssignmentStreamClient client(Options({"down:1", "down:2"}), &transport, &sink);
  std::thread runner([&] { client.Run(); });
  test_support::Eventually([&] { return transport.opened().size() >= 6; }, std::chrono::seconds(30),
                           std::chrono::milliseconds(10));
  client.Stop();
  runner.join();
  const auto opened = transport.opened();
  ASSERT_GE(opened.size(), 6u);
  EXPECT_THAT(std::vector<std::string>(opened.begin(), opened.begin() + 4),
              ElementsAre("down:1", "down:2", "down:1", "down:2"));
  EXPECT_EQ(client.established_streams(), 0);
}

// Keepalive pings sent so far on this process's client connections, as gRPC's channelz counts them
// (channels, their subchannels, their sockets).
int64_t KeepalivePingsSent() {
  auto take = [](char* text) {
    nlohmann::json j = text == nullptr ? nlohmann::json() : nlohmann::json::parse(text, nullptr, false);
    gpr_free(text);
    return j;
  };
  auto id = [](const nlohmann::json& ref, const char* key) {
    return ref.contains(key) ? std::stoll(ref[key].get<std::string>()) : int64_t{0};
  };
  int64_t sent = 0;
  const nlohmann::json top = take(grpc_channelz_get_top_channels(0));
  if (!top.is_object() || !top.contains("channel")) return 0;
  for (const auto& channel : top["channel"]) {
    if (!channel.contains("subchannelRef")) continue;
    for (const auto& sub_ref : channel["subchannelRef"]) {
      const nlohmann::json sub = take(grpc_channelz_get_subchannel(id(sub_ref, "subchannelId")));
      if (!sub.is_object() || !sub.contains("subchannel") || !sub["subchannel"].contains("socketRef")) continue;
      for (const auto& socket_ref : sub["subchannel"]["socketRef"]) {
        const nlohmann::json socket = take(grpc_channelz_get_socket(id(socket_ref, "socketId")));
        if (!socket.is_object() || !socket.contains("socket")) continue;
        const nlohmann::json& data = socket["socket"].value("data", nlohmann::json::object());
        if (data.contains("keepAlivesSent")) sent += std::stoll(data["keepAlivesSent"].get<std::string>());
      }
    }
  }
  return sent;
}

// A frozen allocator (SIGSTOP: its TCP connections stay up and the kernel still acknowledges what the client
// sends, but nothing answers) is found out by HTTP/2 keepalive, and the client moves to the next endpoint.
TEST(GrpcWatchTransportTest, KeepaliveMovesOnFromAnAllocatorThatStoppedAnswering) {
  test_support::TempDir dir;
  integration::AllocatorProcess frozen(ABODE_ALLOCATOR_BIN, dir.path() + "/frozen");
  integration::AllocatorProcess alive(ABODE_ALLOCATOR_BIN, dir.path() + "/alive");
  ASSERT_TRUE(frozen.Start().ok());
  ASSERT_TRUE(alive.Start().ok());
  GrpcWatchTransportOptions transport_options;
  transport_options.keepalive_time_ms = 300;
  transport_options.keepalive_timeout_ms = 600;
  std::unique_ptr<WatchTransport> transport = NewGrpcWatchTransport(transport_options);
  RecordingSink sink;
  AssignmentStreamClient client(Options({frozen.address(), alive.address()}), transport.get(), &sink);
  std::thread runner([&] { client.Run(); });
  auto wait_for_streams = [&](int64_t n) {
    test_support::Eventually([&] { return client.established_streams() >= n; }, std::chrono::seconds(30));
    return client.established_streams();
  };
  // Streaming from the first allocator, with keepalive pings going both ways; the allocator accepts them.
  // A server that refuses pings closes the connection after its third (gRPC's ping strikes); the client's
  // connection has sent five, 300 ms apart, so a refusal would have ended the first stream by then.
  ASSERT_EQ(wait_for_streams(1), 1);
  const int64_t pings_before = KeepalivePingsSent();
  EXPECT_TRUE(test_support::Eventually([&] { return KeepalivePingsSent() >= pings_before + 5; },
                                       std::chrono::seconds(30)))
      << "the client sent " << KeepalivePingsSent() - pings_before << " keepalive pings";
  EXPECT_EQ(client.established_streams(), 1) << "the allocator refused the client's keepalive pings";

  ASSERT_EQ(::kill(frozen.pid(), SIGSTOP), 0);
  EXPECT_EQ(wait_for_streams(2), 2) << "the client did not give up the frozen allocator";
  ASSERT_EQ(::kill(frozen.pid(), SIGCONT), 0);
  client.Stop();
  runner.join();
}

}  // namespace
}  // namespace abode::node

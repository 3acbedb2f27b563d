// The spans one allocator records for its calls and log entries, over real gRPC (port 0), its raft log and
// SQLite store in a temp dir, exported into a list: each call's server span, one raft.commit span per entry
// linking to the calls it carries, and that entry's raft.apply span beneath it.
#include <functional>
#include <map>
#include <set>
#include <thread>

#include <grpcpp/create_channel.h>
#include <gtest/gtest.h>

#include "abode/v1/allocator.grpc.pb.h"
#include "abode/v1/pools.grpc.pb.h"
#include "absl/algorithm/container.h"
#include "absl/strings/str_cat.h"
#include "allocator-service/server.h"
#include "allocator-service/test_server.h"
#include "allocator-service/timers.h"
#include "replication/clock.h"
#include "test-support/eventually.h"
#include "test-support/temp_dir.h"
#include "tracing/collecting_exporter.h"

namespace abode::allocator {
namespace {

using tracing::SpanData;

std::optional<int64_t> IntAttr(const SpanData& s, const std::string& key) {
  std::optional<int64_t> found;
  tracing::ForEachAttribute(s, [&](std::string_view k, const tracing::AttributeRef& v) {
    if (k == key && std::holds_alternative<int64_t>(v)) found = std::get<int64_t>(v);
  });
  return found;
}

class TracedServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tracer_ = tracing::CollectingTracer(&collected_);
    ServerOptions o = LocalTestServerOptions(dir_.path() + "/data", &clock_);
    o.timers = &timers_;
    o.tracer = tracer_.get();
    absl::Status started = StartLocalTestServer(o, &server_);
    ASSERT_TRUE(started.ok()) << started;
    auto channel = LocalChannelTo(*server_);
    pools_ = v1::Pools::NewStub(channel);
    alloc_ = v1::Allocator::NewStub(channel);
    ASSERT_TRUE(CreateTestPool(*pools_, "pods", "10.0.0.0/16").ok());
  }

  // An Allocate made for the caller span `caller` (16 hex digits) of trace `trace`.
  grpc::Status Allocate(const std::string& owner, const std::string& trace, const std::string& caller) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("traceparent", absl::StrCat("00-", trace, "-", caller, "-01"));
    v1::AllocateRequest req;
    req.set_pool("pods");
    req.set_owner(owner);
    v1::Allocation out;
    return alloc_->Allocate(&ctx, req, &out);
  }

  std::vector<SpanData> Spans() {
    EXPECT_TRUE(tracer_->Flush(absl::Seconds(10)));
    return collected_.Take();
  }
  // The spans recorded until `done` holds for all of them: an entry's spans may end after its lone caller
  // heard (it is answered from inside the apply).
  std::vector<SpanData> SpansUntil(const std::function<bool(const std::vector<SpanData>&)>& done) {
    std::vector<SpanData> spans;
    const bool reached = test_support::Eventually(
        [&] {
          std::vector<SpanData> more = Spans();
          spans.insert(spans.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
          return done(spans);
        },
        std::chrono::seconds(10));
    EXPECT_TRUE(reached) << "the spans expected were not all recorded";
    return spans;
  }

  tracing::CollectedSpans collected_;
  std::unique_ptr<tracing::Tracer> tracer_;  // outlives the server
  test_support::TempDir dir_;
  replication::FakeClock clock_{1'700'000'000'000};
  ManualTimers timers_;
  std::unique_ptr<AllocatorServer> server_;
  std::unique_ptr<v1::Pools::Stub> pools_;
  std::unique_ptr<v1::Allocator::Stub> alloc_;
};

TEST_F(TracedServerTest, ACallItsEntrysCommitAndTheApplyBeneathIt) {
  const std::string trace = "5eed0000000000000000000000000001";
  ASSERT_TRUE(Allocate("c1", trace, "aaaaaaaaaaaaaaaa").ok());
  const SpanData* call = nullptr;
  const SpanData* commit = nullptr;
  const SpanData* apply = nullptr;
  auto find = [&](const std::vector<SpanData>& spans) {
    call = commit = apply = nullptr;
    for (const SpanData& s : spans) {
      if (s.name == "abode.v1.Allocator/Allocate") call = &s;
    }
    if (call == nullptr) return false;
    for (const SpanData& s : spans) {
      if (s.name == "raft.commit" && absl::c_linear_search(s.links, call->context)) commit = &s;
    }
    if (commit == nullptr) return false;
    for (const SpanData& s : spans) {
      if (s.name == "raft.apply" && s.context.trace_id == commit->context.trace_id) apply = &s;
    }
    return apply != nullptr;
  };
  const std::vector<SpanData> spans = SpansUntil(find);
  ASSERT_TRUE(find(spans));

  // The call: a server span, child of its caller, with the rpc.* attributes.
  EXPECT_EQ(tracing::ToHex(call->context.trace_id), trace);
  EXPECT_EQ(tracing::ToHex(call->parent_span_id), "aaaaaaaaaaaaaaaa");
  EXPECT_EQ(call->kind, tracing::SpanKind::kServer);
  EXPECT_EQ(IntAttr(*call, "rpc.grpc.status_code"), 0);
  EXPECT_EQ(call->status, tracing::StatusCode::kOk);

  // The entry: a trace of its own whose root links to the call, and whose apply is its child.
  EXPECT_NE(commit->context.trace_id, call->context.trace_id);
  EXPECT_EQ(commit->parent_span_id, tracing::SpanId{});
  ASSERT_EQ(commit->links.size(), 1u);
  EXPECT_EQ(commit->links[0], call->context);
  EXPECT_GT(IntAttr(*commit, "raft.index").value_or(0), 0);
  EXPECT_EQ(IntAttr(*commit, "raft.batch_size"), 1);
  EXPECT_EQ(apply->parent_span_id, commit->context.span_id);
  EXPECT_TRUE(apply->links.empty());
  EXPECT_EQ(IntAttr(*apply, "raft.index"), IntAttr(*commit, "raft.index"));
  EXPECT_EQ(IntAttr(*apply, "raft.batch_size"), 1);
  EXPECT_EQ(IntAttr(*apply, "abode.commands_refused"), 0);
  // In time: the call comes first; the commit waits for the apply; the call is answered once the apply has
  // decided its outcome (a lone caller: from inside the apply, before the store commits).
  EXPECT_LE(call->start_unix_ns, commit->start_unix_ns);
  EXPECT_LE(commit->start_unix_ns, apply->start_unix_ns);
  EXPECT_LE(apply->end_unix_ns, commit->end_unix_ns);
  EXPECT_LE(apply->start_unix_ns, call->end_unix_ns);
}

TEST_F(TracedServerTest, EveryCallIsLinkedFromExactlyOneEntryWithOneApply) {
  constexpr int kThreads = 8, kEach = 25;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        const std::string trace = absl::StrCat("5eed0000000000000000", absl::Hex(t * 1000 + i, absl::kZeroPad12));
        EXPECT_TRUE(Allocate(absl::StrCat("c", t, "-", i), trace, "bbbbbbbbbbbbbbbb").ok());
      }
    });
  }
  for (auto& t : threads) t.join();
  std::set<std::string> calls;  // the Allocates, and the pool's creation
  std::map<std::string, int> linked;  // call span -> entries linking to it
  std::map<std::string, const SpanData*> commits;  // by span id
  auto index = [&](const std::vector<SpanData>& spans) {
    calls.clear();
    linked.clear();
    commits.clear();
    for (const SpanData& s : spans) {
      if (s.kind == tracing::SpanKind::kServer) calls.insert(tracing::FormatTraceparent(s.context));
      if (s.name == "raft.commit") {
        commits[tracing::ToHex(s.context.span_id)] = &s;
        for (const tracing::SpanContext& l : s.links) ++linked[tracing::FormatTraceparent(l)];
      }
    }
    // Every call's entry, and each entry's apply, recorded (an apply ends before its commit).
    return calls.size() == static_cast<size_t>(kThreads * kEach + 1) && linked.size() >= calls.size();
  };
  const std::vector<SpanData> spans = SpansUntil(index);
  index(spans);
  std::map<std::string, int> applies;  // commit span id -> apply spans beneath it
  for (const SpanData& s : spans) {
    if (s.name != "raft.apply") continue;
    auto commit = commits.find(tracing::ToHex(s.parent_span_id));
    ASSERT_NE(commit, commits.end()) << "every apply is beneath a commit";
    EXPECT_EQ(s.context.trace_id, commit->second->context.trace_id);
    EXPECT_EQ(IntAttr(s, "raft.batch_size"), static_cast<int64_t>(commit->second->links.size()));
    ++applies[commit->first];
  }
  EXPECT_EQ(calls.size(), static_cast<size_t>(kThreads * kEach + 1));
  for (const std::string& c : calls) EXPECT_EQ(linked[c], 1) << c;
  EXPECT_EQ(linked.size(), calls.size());
  for (const auto& [id, commit] : commits) {
    if (commit->links.empty()) continue;
    EXPECT_EQ(applies[id], 1) << id;
  }
}

}  // namespace
}  // namespace abode::allocator

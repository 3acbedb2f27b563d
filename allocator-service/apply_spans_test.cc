#include "allocator-service/apply_spans.h"

#include <gtest/gtest.h>

#include "tracing/collecting_exporter.h"

namespace abode::allocator {
namespace {

constexpr char kCaller[] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

const tracing::AttributeValue* Attr(const tracing::SpanData& s, const std::string& key) {
  for (const auto& [k, v] : s.attributes) {
    if (k == key) return &v;
  }
  return nullptr;
}

TEST(ApplySpans, AChildOfTheCommitSpanTheEntryCarries) {
  tracing::CollectedSpans collected;
  auto tracer = tracing::CollectingTracer(&collected);
  constexpr char kCommit[] = "00-5eed0000000000000000000000000019-1111111111111111-01";
  v1::CommandBatch batch;
  batch.set_traceparent(kCommit);
  for (int i = 0; i < 2; ++i) {
    v1::Command* c = batch.add_commands();
    c->set_traceparent(kCaller);
    c->mutable_allocate()->set_pool("pods");
  }
  const int64_t start = tracer->Now();
  RecordApplySpans(*tracer, batch, 9, start,
                   std::vector<replication::CommandOutcome>{v1::CommandResult(), v1::CommandResult()});
  // Not sampled by the leader: not recorded here either.
  batch.set_traceparent("00-5eed0000000000000000000000000019-1111111111111111-00");
  RecordApplySpans(*tracer, batch, 10, start,
                   std::vector<replication::CommandOutcome>{v1::CommandResult(), v1::CommandResult()});
  ASSERT_TRUE(tracer->Flush(absl::Seconds(10)));
  auto spans = collected.Take();
  ASSERT_EQ(spans.size(), 1u);
  const tracing::SpanData& a = spans[0];
  EXPECT_EQ(a.name, "raft.apply");
  EXPECT_EQ(tracing::ToHex(a.context.trace_id), "5eed0000000000000000000000000019");
  EXPECT_EQ(tracing::ToHex(a.parent_span_id), "1111111111111111");
  EXPECT_TRUE(a.parent_remote) << "its parent's context came through the log";
  EXPECT_TRUE(a.links.empty()) << "the commit span links to the callers";
  EXPECT_EQ(a.start_unix_ns, start);
  EXPECT_EQ(std::get<int64_t>(*Attr(a, "raft.index")), 9);
  EXPECT_EQ(std::get<int64_t>(*Attr(a, "raft.batch_size")), 2);
  EXPECT_EQ(a.status, tracing::StatusCode::kOk);
}

TEST(ApplySpans, WithoutACommitSpanOneSpanLinksToEveryCallerWithTheRefusedCommandsAsEvents) {
  tracing::CollectedSpans collected;
  auto tracer = tracing::CollectingTracer(&collected);
  v1::CommandBatch batch;
  v1::Command* ok = batch.add_commands();
  ok->set_traceparent(kCaller);
  ok->mutable_allocate()->set_pool("pods");
  ok->mutable_allocate()->set_owner("cni/c1/eth0");
  ok->mutable_allocate()->set_node("node-a");
  v1::Command* full = batch.add_commands();
  full->set_traceparent(kCaller);
  full->mutable_allocate()->set_pool("tiny");
  batch.add_commands()->mutable_expire_allocations();  // housekeeping: no caller, no span
  v1::Command* magic = batch.add_commands();
  magic->set_traceparent(kCaller);
  magic->mutable_create_magic_address()->mutable_address()->set_name("metrics");

  std::vector<replication::CommandOutcome> outcomes;
  v1::CommandResult allocated;
  allocated.mutable_allocation()->set_address("10.0.0.9");
  allocated.mutable_allocation()->set_pool("pods");
  allocated.mutable_allocation()->set_revision(7);
  outcomes.emplace_back(allocated);
  outcomes.emplace_back(absl::ResourceExhaustedError("pool \"tiny\" is full"));
  outcomes.emplace_back(v1::CommandResult());
  v1::CommandResult created;
  created.mutable_magic_address()->mutable_spec()->set_name("metrics");
  created.mutable_magic_address()->mutable_spec()->set_address("169.254.20.10");
  outcomes.emplace_back(created);

  RecordApplySpans(*tracer, batch, 42, tracer->Now(), outcomes);
  ASSERT_TRUE(tracer->Flush(absl::Seconds(10)));
  auto spans = collected.Take();
  ASSERT_EQ(spans.size(), 1u);
  const tracing::SpanData& a = spans[0];
  EXPECT_EQ(a.name, "raft.apply");
  EXPECT_EQ(a.parent_span_id, tracing::SpanId{}) << "the root of its own trace";
  // One link per traced command, to its caller; the housekeeping command has none.
  ASSERT_EQ(a.links.size(), 3u);
  for (const tracing::SpanContext& link : a.links) EXPECT_EQ(tracing::FormatTraceparent(link), kCaller);
  EXPECT_EQ(std::get<int64_t>(*Attr(a, "raft.index")), 42);
  EXPECT_EQ(std::get<int64_t>(*Attr(a, "raft.batch_size")), 4);
  EXPECT_EQ(std::get<int64_t>(*Attr(a, "abode.commands_refused")), 1);
  EXPECT_EQ(a.status, tracing::StatusCode::kError);
  EXPECT_EQ(a.status_message, "1 of 4 commands refused; the first: pool \"tiny\" is full");
  EXPECT_LE(a.start_unix_ns, a.end_unix_ns);

  // The refused command is an event with its caller and facts.
  ASSERT_EQ(a.events.size(), 1u);
  const tracing::SpanEvent& e = a.events[0];
  EXPECT_EQ(e.name, "command refused");
  auto field = [&e](const std::string& key) -> std::string {
    for (const auto& [k, v] : e.attributes) {
      if (k == key) return std::get<std::string>(v);
    }
    return "";
  };
  EXPECT_EQ(field("abode.command"), "allocate");
  EXPECT_EQ(field("abode.error_code"), "RESOURCE_EXHAUSTED");
  EXPECT_EQ(field("abode.error"), "pool \"tiny\" is full");
  EXPECT_EQ(field("abode.pool"), "tiny");
  EXPECT_EQ(field("abode.caller"), kCaller);
}

TEST(ApplySpans, AllAcceptedIsOkAndHousekeepingAloneHasNoSpan) {
  tracing::CollectedSpans collected;
  auto tracer = tracing::CollectingTracer(&collected);
  v1::CommandBatch housekeeping;
  housekeeping.add_commands()->mutable_expire_allocations();
  RecordApplySpans(*tracer, housekeeping, 7, tracer->Now(), std::vector<replication::CommandOutcome>{v1::CommandResult()});

  v1::CommandBatch batch;
  v1::Command* ok = batch.add_commands();
  ok->set_traceparent(kCaller);
  ok->mutable_allocate()->set_pool("pods");
  RecordApplySpans(*tracer, batch, 8, tracer->Now(), std::vector<replication::CommandOutcome>{v1::CommandResult()});
  ASSERT_TRUE(tracer->Flush(absl::Seconds(10)));
  auto spans = collected.Take();
  ASSERT_EQ(spans.size(), 1u);
  EXPECT_EQ(std::get<int64_t>(*Attr(spans[0], "raft.index")), 8);
  EXPECT_EQ(std::get<int64_t>(*Attr(spans[0], "abode.commands_refused")), 0);
  EXPECT_EQ(spans[0].status, tracing::StatusCode::kOk);
  EXPECT_TRUE(spans[0].events.empty());
}

}  // namespace
}  // namespace abode::allocator

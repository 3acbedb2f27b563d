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

TEST(ApplySpans, OneSpanPerTracedCommandUnderItsCallerWithTheOutcome) {
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
  ASSERT_EQ(spans.size(), 3u);
  const tracing::SpanData& a = spans[0];
  EXPECT_EQ(a.name, "raft.apply allocate");
  EXPECT_EQ(tracing::ToHex(a.parent_span_id), "b7ad6b7169203331");
  EXPECT_EQ(std::get<int64_t>(*Attr(a, "raft.index")), 42);
  EXPECT_EQ(std::get<int64_t>(*Attr(a, "raft.batch_size")), 4);
  EXPECT_EQ(std::get<std::string>(*Attr(a, "abode.owner")), "cni/c1/eth0");
  EXPECT_EQ(std::get<std::string>(*Attr(a, "abode.address")), "10.0.0.9");
  EXPECT_EQ(std::get<int64_t>(*Attr(a, "abode.revision")), 7);
  EXPECT_EQ(a.status, tracing::StatusCode::kOk);
  EXPECT_LE(a.start_unix_ns, a.end_unix_ns);

  const tracing::SpanData& f = spans[1];
  EXPECT_EQ(f.status, tracing::StatusCode::kError);
  EXPECT_EQ(f.status_message, "pool \"tiny\" is full");
  EXPECT_EQ(std::get<std::string>(*Attr(f, "abode.error_code")), "RESOURCE_EXHAUSTED");

  const tracing::SpanData& m = spans[2];
  EXPECT_EQ(m.name, "raft.apply create_magic_address");
  EXPECT_EQ(std::get<std::string>(*Attr(m, "abode.name")), "metrics");
  EXPECT_EQ(std::get<std::string>(*Attr(m, "abode.address")), "169.254.20.10");
}

}  // namespace
}  // namespace abode::allocator

#include "tracing/trace_context.h"

#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "tracing/current_span.h"

namespace abode::tracing {
namespace {

constexpr char kSample[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

TEST(Traceparent, ParsesAndFormatsTheSpecExample) {
  auto c = ParseTraceparent(kSample);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(ToHex(c->trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(ToHex(c->span_id), "00f067aa0ba902b7");
  EXPECT_TRUE(c->sampled);
  EXPECT_EQ(FormatTraceparent(*c), kSample);
  auto unsampled = ParseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
  ASSERT_TRUE(unsampled.has_value());
  EXPECT_FALSE(unsampled->sampled);
}

TEST(Traceparent, RefusesMalformedText) {
  for (const char* bad : {
           "",
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",            // no flags
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",   // version 00 has four fields
           "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",         // upper case
           "00-00000000000000000000000000000000-00f067aa0ba902b7-01",         // zero trace id
           "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",         // zero span id
           "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",         // version ff
           "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
           "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
       }) {
    EXPECT_FALSE(ParseTraceparent(bad).has_value()) << bad;
  }
  // A later version may append fields after a '-'.
  EXPECT_TRUE(ParseTraceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more").has_value());
  EXPECT_FALSE(ParseTraceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01more").has_value());
}

TEST(Traceparent, ChildKeepsTheTraceAndFlagsWithANewSpanId) {
  const SpanContext child = ChildOf(kSample);
  EXPECT_EQ(ToHex(child.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_NE(ToHex(child.span_id), "00f067aa0ba902b7");
  EXPECT_TRUE(child.valid());
  EXPECT_FALSE(ChildOf("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").sampled);

  const SpanContext root = ChildOf("garbage");
  EXPECT_TRUE(root.valid());
  EXPECT_TRUE(root.sampled);
  std::set<std::string> ids;
  for (int i = 0; i < 1000; ++i) ids.insert(ToHex(RandomTraceId()));
  EXPECT_EQ(ids.size(), 1000u);
}

TEST(CurrentSpan, ScopesNestPerThread) {
  EXPECT_EQ(CurrentSpanContext(), nullptr);
  EXPECT_TRUE(CurrentLogIds().trace_id.empty());
  const SpanContext outer = ChildOf(kSample);
  const SpanContext inner = ChildOf(kSample);
  {
    ScopedSpanContext a(outer);
    EXPECT_EQ(CurrentLogIds().span_id, ToHex(outer.span_id));
    {
      ScopedSpanContext b(inner);
      EXPECT_EQ(CurrentLogIds().trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
      EXPECT_EQ(CurrentLogIds().span_id, ToHex(inner.span_id));
      std::thread([] { EXPECT_EQ(CurrentSpanContext(), nullptr); }).join();
      {
        ScopedSpanContext none(SpanContext{});
        EXPECT_EQ(CurrentSpanContext(), nullptr);
      }
    }
    EXPECT_EQ(CurrentLogIds().span_id, ToHex(outer.span_id));
  }
  EXPECT_EQ(CurrentSpanContext(), nullptr);
}

}  // namespace
}  // namespace abode::tracing

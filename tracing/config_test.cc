#include "tracing/config.h"

#include <map>
#include <string>

#include <gtest/gtest.h>

namespace abode::tracing {
namespace {

absl::StatusOr<TracingConfig> From(std::map<std::string, std::string> env) {
  return ConfigFromEnvironment(
      [&env](const char* name) -> const char* {
        auto it = env.find(name);
        return it == env.end() ? nullptr : it->second.c_str();
      },
      "abode-test");
}

TEST(TracingConfig, OffWithoutAnEndpoint) {
  auto c = From({});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->enabled);
  EXPECT_EQ(c->service_name, "abode-test");
  EXPECT_EQ(c->sampler, Sampler::kRatio);
  EXPECT_TRUE(c->parent_based);
  EXPECT_EQ(c->ratio, 1.0);
}

TEST(TracingConfig, ReadsTheStandardVariables) {
  auto c = From({{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317/"},
                 {"OTEL_SERVICE_NAME", "alloc-a"},
                 {"OTEL_TRACES_SAMPLER", "parentbased_traceidratio"},
                 {"OTEL_TRACES_SAMPLER_ARG", "0.25"},
                 {"OTEL_RESOURCE_ATTRIBUTES", "service.instance.id=m1, deployment.environment=a%2Cb"}});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->enabled);
  EXPECT_EQ(c->endpoint, "collector:4317");
  EXPECT_FALSE(c->use_tls);
  EXPECT_EQ(c->service_name, "alloc-a");
  EXPECT_EQ(c->ratio, 0.25);
  ASSERT_EQ(c->resource.size(), 2u);
  EXPECT_EQ(c->resource[0], std::make_pair(std::string("service.instance.id"), std::string("m1")));
  EXPECT_EQ(c->resource[1], std::make_pair(std::string("deployment.environment"), std::string("a,b")));
}

TEST(TracingConfig, TracesEndpointWinsAndDisabledTurnsOff) {
  auto c = From({{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:1"}, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://b:2"}});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->endpoint, "b:2");
  EXPECT_TRUE(c->use_tls);
  auto off = From({{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:1"}, {"OTEL_SDK_DISABLED", "TRUE"}});
  ASSERT_TRUE(off.ok());
  EXPECT_FALSE(off->enabled);
  auto name = From({{"OTEL_RESOURCE_ATTRIBUTES", "service.name=from-resource"}});
  ASSERT_TRUE(name.ok());
  EXPECT_EQ(name->service_name, "from-resource");
  auto always = From({{"OTEL_TRACES_SAMPLER", "always_off"}});
  ASSERT_TRUE(always.ok());
  EXPECT_EQ(always->sampler, Sampler::kAlwaysOff);
  EXPECT_FALSE(always->parent_based);
}

TEST(TracingConfig, ReadsTheBatchQueueVariables) {
  auto defaults = From({});
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults->max_queue_spans, 4096u);
  EXPECT_EQ(defaults->max_batch_spans, 512u);
  EXPECT_EQ(defaults->schedule_delay, absl::Milliseconds(500));
  EXPECT_EQ(defaults->export_timeout, absl::Seconds(5));
  auto c = From({{"OTEL_BSP_MAX_QUEUE_SIZE", "16384"},
                 {"OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "2048"},
                 {"OTEL_BSP_SCHEDULE_DELAY", "200"},
                 {"OTEL_BSP_EXPORT_TIMEOUT", "30000"}});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->max_queue_spans, 16384u);
  EXPECT_EQ(c->max_batch_spans, 2048u);
  EXPECT_EQ(c->schedule_delay, absl::Milliseconds(200));
  EXPECT_EQ(c->export_timeout, absl::Seconds(30));
}

TEST(TracingConfig, BadValuesNameTheVariable) {
  const std::map<std::string, std::string> bad[] = {
      {{"OTEL_SDK_DISABLED", "yes"}},
      {{"OTEL_TRACES_SAMPLER", "sometimes"}},
      {{"OTEL_TRACES_SAMPLER_ARG", "1.5"}},
      {{"OTEL_TRACES_SAMPLER_ARG", "half"}},
      {{"OTEL_RESOURCE_ATTRIBUTES", "novalue"}},
      {{"OTEL_RESOURCE_ATTRIBUTES", "k=%zz"}},
      {{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://host"}},
      {{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://host:4317/v1/traces"}},
      {{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "grpc://host:4317"}},
      {{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "host:99999"}},
      {{"OTEL_BSP_MAX_QUEUE_SIZE", "0"}},
      {{"OTEL_BSP_MAX_QUEUE_SIZE", "many"}},
      {{"OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "-1"}},
      {{"OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "5000"}},  // more than the default queue of 4096
      {{"OTEL_BSP_SCHEDULE_DELAY", "0.5"}},
      {{"OTEL_BSP_EXPORT_TIMEOUT", "0"}},
  };
  for (const auto& env : bad) {
    auto c = From(env);
    ASSERT_FALSE(c.ok()) << env.begin()->first << "=" << env.begin()->second;
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(c.status().message().find(env.begin()->first), std::string::npos) << c.status();
  }
}

}  // namespace
}  // namespace abode::tracing

#include "tracing/config.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace abode::tracing {
namespace {

std::string Get(const std::function<const char*(const char*)>& getenv, const char* name) {
  const char* v = getenv(name);
  return v == nullptr ? std::string() : std::string(absl::StripAsciiWhitespace(v));
}

absl::Status Bad(absl::string_view variable, absl::string_view value, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(variable, "=\"", value, "\": ", why));
}

// "%2C" and the like, as the OpenTelemetry specification encodes resource attribute values.
absl::StatusOr<std::string> PercentDecode(absl::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out.push_back(text[i]);
      continue;
    }
    int value = 0;
    if (i + 2 >= text.size()) return absl::InvalidArgumentError("a '%' without two hex digits");
    for (int k = 1; k <= 2; ++k) {
      const char c = absl::ascii_tolower(text[i + k]);
      if (!absl::ascii_isxdigit(c)) return absl::InvalidArgumentError("a '%' without two hex digits");
      value = value * 16 + (absl::ascii_isdigit(c) ? c - '0' : c - 'a' + 10);
    }
    out.push_back(static_cast<char>(value));
    i += 2;
  }
  return out;
}

absl::Status ParseEndpoint(absl::string_view variable, const std::string& value, TracingConfig& config) {
  absl::string_view rest = value;
  config.use_tls = false;
  if (absl::ConsumePrefix(&rest, "https://")) {
    config.use_tls = true;
  } else {
    absl::ConsumePrefix(&rest, "http://");
  }
  absl::ConsumeSuffix(&rest, "/");
  if (rest.empty()) return Bad(variable, value, "no host");
  if (absl::StrContains(rest, "/")) return Bad(variable, value, "OTLP over gRPC takes no path: give scheme://HOST:PORT");
  if (absl::StrContains(rest, "://")) return Bad(variable, value, "the scheme must be http or https");
  const size_t colon = rest.rfind(':');
  uint32_t port = 0;
  if (colon == absl::string_view::npos || !absl::SimpleAtoi(rest.substr(colon + 1), &port) || port == 0 ||
      port > 65535) {
    return Bad(variable, value, "expected HOST:PORT, e.g. http://127.0.0.1:4317");
  }
  config.endpoint = std::string(rest);
  return absl::OkStatus();
}

// A whole number from `lowest` to `highest` in variable `name`; `out` unchanged when unset.
absl::Status ReadCount(const std::function<const char*(const char*)>& getenv, const char* name, uint64_t lowest,
                       uint64_t highest, uint64_t& out) {
  const std::string text = Get(getenv, name);
  if (text.empty()) return absl::OkStatus();
  uint64_t v = 0;
  if (!absl::SimpleAtoi(text, &v) || v < lowest || v > highest) {
    return Bad(name, text, absl::StrCat("expected a whole number from ", lowest, " to ", highest));
  }
  out = v;
  return absl::OkStatus();
}

// The batch queue: OTEL_BSP_MAX_QUEUE_SIZE, OTEL_BSP_MAX_EXPORT_BATCH_SIZE (at most the queue),
// OTEL_BSP_SCHEDULE_DELAY and OTEL_BSP_EXPORT_TIMEOUT (milliseconds).
absl::Status ReadBatchQueue(const std::function<const char*(const char*)>& getenv, TracingConfig& config) {
  constexpr uint64_t kMostSpans = 1 << 20, kMostMs = 3'600'000;
  uint64_t queue = config.max_queue_spans, batch = config.max_batch_spans;
  uint64_t delay_ms = absl::ToInt64Milliseconds(config.schedule_delay);
  uint64_t timeout_ms = absl::ToInt64Milliseconds(config.export_timeout);
  if (absl::Status s = ReadCount(getenv, "OTEL_BSP_MAX_QUEUE_SIZE", 1, kMostSpans, queue); !s.ok()) return s;
  if (absl::Status s = ReadCount(getenv, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 1, kMostSpans, batch); !s.ok()) return s;
  if (absl::Status s = ReadCount(getenv, "OTEL_BSP_SCHEDULE_DELAY", 1, kMostMs, delay_ms); !s.ok()) return s;
  if (absl::Status s = ReadCount(getenv, "OTEL_BSP_EXPORT_TIMEOUT", 1, kMostMs, timeout_ms); !s.ok()) return s;
  if (batch > queue) {
    return Bad("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", std::to_string(batch),
               absl::StrCat("larger than the queue (OTEL_BSP_MAX_QUEUE_SIZE=", queue, ")"));
  }
  config.max_queue_spans = queue;
  config.max_batch_spans = batch;
  config.schedule_delay = absl::Milliseconds(delay_ms);
  config.export_timeout = absl::Milliseconds(timeout_ms);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<TracingConfig> ConfigFromEnvironment(const std::function<const char*(const char*)>& getenv,
                                                    const std::string& default_service_name) {
  TracingConfig config;
  config.service_name = default_service_name;

  const std::string disabled = absl::AsciiStrToLower(Get(getenv, "OTEL_SDK_DISABLED"));
  if (!disabled.empty() && disabled != "true" && disabled != "false") {
    return Bad("OTEL_SDK_DISABLED", disabled, "expected true or false");
  }

  if (std::string name = Get(getenv, "OTEL_SERVICE_NAME"); !name.empty()) config.service_name = name;

  const std::string sampler = absl::AsciiStrToLower(Get(getenv, "OTEL_TRACES_SAMPLER"));
  if (sampler.empty() || sampler == "parentbased_traceidratio") {
    config.sampler = Sampler::kRatio;
  } else if (sampler == "parentbased_always_on") {
    config.sampler = Sampler::kAlwaysOn;
  } else if (sampler == "parentbased_always_off") {
    config.sampler = Sampler::kAlwaysOff;
  } else if (sampler == "always_on") {
    config.sampler = Sampler::kAlwaysOn;
    config.parent_based = false;
  } else if (sampler == "always_off") {
    config.sampler = Sampler::kAlwaysOff;
    config.parent_based = false;
  } else if (sampler == "traceidratio") {
    config.sampler = Sampler::kRatio;
    config.parent_based = false;
  } else {
    return Bad("OTEL_TRACES_SAMPLER", sampler,
               "expected always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or "
               "parentbased_traceidratio");
  }
  if (std::string arg = Get(getenv, "OTEL_TRACES_SAMPLER_ARG"); !arg.empty()) {
    if (!absl::SimpleAtod(arg, &config.ratio) || !(config.ratio >= 0 && config.ratio <= 1)) {
      return Bad("OTEL_TRACES_SAMPLER_ARG", arg, "expected a ratio from 0 to 1");
    }
  }

  if (std::string attrs = Get(getenv, "OTEL_RESOURCE_ATTRIBUTES"); !attrs.empty()) {
    for (absl::string_view entry : absl::StrSplit(attrs, ',', absl::SkipWhitespace())) {
      const size_t eq = entry.find('=');
      const absl::string_view key = absl::StripAsciiWhitespace(entry.substr(0, eq));
      if (eq == absl::string_view::npos || key.empty()) {
        return Bad("OTEL_RESOURCE_ATTRIBUTES", attrs, absl::StrCat("\"", entry, "\" is not key=value"));
      }
      auto value = PercentDecode(absl::StripAsciiWhitespace(entry.substr(eq + 1)));
      if (!value.ok()) return Bad("OTEL_RESOURCE_ATTRIBUTES", attrs, value.status().message());
      if (key == "service.name") {
        // OTEL_SERVICE_NAME wins over this one.
        if (Get(getenv, "OTEL_SERVICE_NAME").empty()) config.service_name = *value;
        continue;
      }
      config.resource.emplace_back(std::string(key), *value);
    }
  }

  if (absl::Status s = ReadBatchQueue(getenv, config); !s.ok()) return s;

  std::string endpoint = Get(getenv, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
  const char* variable = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
  if (endpoint.empty()) {
    endpoint = Get(getenv, "OTEL_EXPORTER_OTLP_ENDPOINT");
    variable = "OTEL_EXPORTER_OTLP_ENDPOINT";
  }
  if (!endpoint.empty()) {
    if (absl::Status s = ParseEndpoint(variable, endpoint, config); !s.ok()) return s;
  }
  config.enabled = disabled != "true" && !config.endpoint.empty();
  return config;
}

}  // namespace abode::tracing

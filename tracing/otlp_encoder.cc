#include "tracing/otlp_encoder.h"

#include <cstring>
#include <string_view>
#include <utility>
#include <vector>

namespace abode::tracing {
namespace {

// Field numbers of opentelemetry-proto v1.5.0 (proto/opentelemetry/).
namespace field {
constexpr uint32_t kRequestResourceSpans = 1;
constexpr uint32_t kResourceSpansResource = 1, kResourceSpansScopeSpans = 2;
constexpr uint32_t kResourceAttributes = 1;
constexpr uint32_t kScopeSpansScope = 1, kScopeSpansSpans = 2;
constexpr uint32_t kScopeName = 1;
constexpr uint32_t kSpanTraceId = 1, kSpanSpanId = 2, kSpanParentSpanId = 4, kSpanName = 5, kSpanKind = 6,
                   kSpanStart = 7, kSpanEnd = 8, kSpanAttributes = 9, kSpanEvents = 11, kSpanLinks = 13,
                   kSpanStatus = 15, kSpanFlags = 16;
constexpr uint32_t kEventTime = 1, kEventName = 2, kEventAttributes = 3;
constexpr uint32_t kLinkTraceId = 1, kLinkSpanId = 2, kLinkFlags = 6;
constexpr uint32_t kStatusMessage = 2, kStatusCode = 3;
constexpr uint32_t kKeyValueKey = 1, kKeyValueValue = 2;
constexpr uint32_t kAnyString = 1, kAnyBool = 2, kAnyInt = 3, kAnyDouble = 4;
}  // namespace field

constexpr char kScopeName[] = "abode";

enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLength = 2, kFixed32 = 5 };

size_t VarintSize(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

// Appends protobuf wire-format fields to a string.
class Writer {
 public:
  explicit Writer(std::string& out) : out_(out) {}

  void Varint(uint64_t v) {
    char buf[10];
    size_t n = 0;
    while (v >= 0x80) {
      buf[n++] = static_cast<char>(v | 0x80);
      v >>= 7;
    }
    buf[n++] = static_cast<char>(v);
    out_.append(buf, n);
  }
  void Tag(uint32_t number, WireType type) { Varint(uint64_t{number} << 3 | type); }
  // The tag and length of a length-delimited field whose contents follow.
  void LengthOf(uint32_t number, size_t length) {
    Tag(number, kLength);
    Varint(length);
  }
  void Bytes(uint32_t number, const void* data, size_t n) {
    LengthOf(number, n);
    out_.append(static_cast<const char*>(data), n);
  }
  void String(uint32_t number, std::string_view s) { Bytes(number, s.data(), s.size()); }
  void VarintField(uint32_t number, uint64_t v) {
    Tag(number, kVarint);
    Varint(v);
  }
  void Fixed64(uint32_t number, uint64_t v) {
    Tag(number, kFixed64);
    char buf[8];
    for (int i = 0; i < 8; ++i) buf[i] = static_cast<char>(v >> (8 * i));
    out_.append(buf, 8);
  }
  void Fixed32(uint32_t number, uint32_t v) {
    Tag(number, kFixed32);
    char buf[4];
    for (int i = 0; i < 4; ++i) buf[i] = static_cast<char>(v >> (8 * i));
    out_.append(buf, 4);
  }

  // A KeyValue as field `number`; its AnyValue holds the one value set (proto3 writes a oneof member even
  // when it is zero).
  void KeyValue(uint32_t number, std::string_view key, const AttributeRef& value) {
    size_t value_size = 0;
    if (const auto* s = std::get_if<std::string_view>(&value)) {
      value_size = 1 + VarintSize(s->size()) + s->size();
    } else if (const auto* i = std::get_if<int64_t>(&value)) {
      value_size = 1 + VarintSize(static_cast<uint64_t>(*i));
    } else if (std::holds_alternative<double>(value)) {
      value_size = 1 + 8;
    } else {
      value_size = 1 + 1;
    }
    LengthOf(number, 1 + VarintSize(key.size()) + key.size() + 1 + VarintSize(value_size) + value_size);
    String(field::kKeyValueKey, key);
    LengthOf(field::kKeyValueValue, value_size);
    if (const auto* s = std::get_if<std::string_view>(&value)) {
      String(field::kAnyString, *s);
    } else if (const auto* i = std::get_if<int64_t>(&value)) {
      VarintField(field::kAnyInt, static_cast<uint64_t>(*i));
    } else if (const auto* d = std::get_if<double>(&value)) {
      uint64_t bits = 0;
      std::memcpy(&bits, d, sizeof(bits));
      Fixed64(field::kAnyDouble, bits);
    } else {
      VarintField(field::kAnyBool, std::get<bool>(value) ? 1 : 0);
    }
  }
  void KeyValues(uint32_t number, const Attributes& attributes) {
    for (const auto& [key, value] : attributes) KeyValue(number, key, RefTo(value));
  }

 private:
  std::string& out_;
};

// A Link's contents: trace id, span id and flags (W3C flags; the parent is known to be remote).
constexpr size_t kLinkSize = (1 + 1 + 16) + (1 + 1 + 8) + (1 + 4);

void WriteSpan(const SpanData& span, Writer& w) {
  w.Bytes(field::kSpanTraceId, span.context.trace_id.data(), span.context.trace_id.size());
  w.Bytes(field::kSpanSpanId, span.context.span_id.data(), span.context.span_id.size());
  if (span.parent_span_id != SpanId{}) {
    w.Bytes(field::kSpanParentSpanId, span.parent_span_id.data(), span.parent_span_id.size());
  }
  // W3C flags, and "the parent's remoteness is known" (bit 8) with its value (bit 9).
  uint32_t flags = (span.context.sampled ? 0x01 : 0x00) | 0x100;
  if (span.parent_remote) flags |= 0x200;
  w.Fixed32(field::kSpanFlags, flags);
  w.String(field::kSpanName, span.name);
  w.VarintField(field::kSpanKind, static_cast<uint64_t>(span.kind));
  w.Fixed64(field::kSpanStart, static_cast<uint64_t>(span.start_unix_ns));
  w.Fixed64(field::kSpanEnd, static_cast<uint64_t>(span.end_unix_ns));
  ForEachAttribute(span, [&](std::string_view key, const AttributeRef& value) {
    w.KeyValue(field::kSpanAttributes, key, value);
  });
  for (const SpanEvent& e : span.events) {
    std::string event;
    Writer ew(event);
    ew.Fixed64(field::kEventTime, static_cast<uint64_t>(e.time_unix_ns));
    ew.String(field::kEventName, e.name);
    ew.KeyValues(field::kEventAttributes, e.attributes);
    w.String(field::kSpanEvents, event);
  }
  for (const SpanContext& l : span.links) {
    w.LengthOf(field::kSpanLinks, kLinkSize);
    w.Bytes(field::kLinkTraceId, l.trace_id.data(), l.trace_id.size());
    w.Bytes(field::kLinkSpanId, l.span_id.data(), l.span_id.size());
    w.Fixed32(field::kLinkFlags, (l.sampled ? 0x01 : 0x00) | 0x100 | 0x200);
  }
  if (span.status != StatusCode::kUnset) {
    const bool message = span.status == StatusCode::kError && !span.status_message.empty();
    const size_t message_size = message ? 1 + VarintSize(span.status_message.size()) + span.status_message.size() : 0;
    w.LengthOf(field::kSpanStatus, message_size + 2);
    if (message) w.String(field::kStatusMessage, span.status_message);
    w.VarintField(field::kStatusCode, static_cast<uint64_t>(span.status));
  }
}

// The spans of one service: each as a ScopeSpans.spans field.
struct ServiceSpans {
  std::string_view service;
  std::string spans;
};

}  // namespace

void EncodeOtlp(const TracingConfig& config, const SpanBatch& spans, std::string* out) {
  std::vector<ServiceSpans> services;
  std::string body;
  for (const auto& span : spans) {
    const std::string_view service = span->service_name.empty() ? config.service_name : span->service_name;
    ServiceSpans* group = nullptr;
    for (ServiceSpans& s : services) {
      if (s.service == service) group = &s;
    }
    if (group == nullptr) {
      services.push_back(ServiceSpans{service, {}});
      group = &services.back();
      group->spans.reserve(256 * spans.size());
    }
    body.clear();
    Writer span_writer(body);
    WriteSpan(*span, span_writer);
    Writer(group->spans).String(field::kScopeSpansSpans, body);
  }

  out->clear();
  Writer w(*out);
  std::string resource;
  const size_t scope_size = 1 + VarintSize(sizeof(kScopeName) - 1) + sizeof(kScopeName) - 1;
  for (const ServiceSpans& s : services) {
    resource.clear();
    Writer rw(resource);
    rw.KeyValue(field::kResourceAttributes, "service.name", AttributeRef(s.service));
    rw.KeyValue(field::kResourceAttributes, "telemetry.sdk.name", AttributeRef(std::string_view(kScopeName)));
    rw.KeyValue(field::kResourceAttributes, "telemetry.sdk.language", AttributeRef(std::string_view("cpp")));
    for (const auto& [key, value] : config.resource) {
      rw.KeyValue(field::kResourceAttributes, key, AttributeRef(std::string_view(value)));
    }
    const size_t scope_spans_size = 1 + VarintSize(scope_size) + scope_size + s.spans.size();
    const size_t resource_spans_size =
        1 + VarintSize(resource.size()) + resource.size() + 1 + VarintSize(scope_spans_size) + scope_spans_size;
    w.LengthOf(field::kRequestResourceSpans, resource_spans_size);
    w.String(field::kResourceSpansResource, resource);
    w.LengthOf(field::kResourceSpansScopeSpans, scope_spans_size);
    w.LengthOf(field::kScopeSpansScope, scope_size);
    w.String(field::kScopeName, kScopeName);
    out->append(s.spans);
  }
}

}  // namespace abode::tracing

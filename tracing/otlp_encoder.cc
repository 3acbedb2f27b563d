#include "tracing/otlp_encoder.h"

#include <algorithm>
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

// Writes protobuf wire-format fields into a string, straight through a pointer: the string is grown ahead of
// the writes (by half) and cut to what was written by Finish(). A length-delimited field whose size is not
// known up front (a span, an event, a whole ResourceSpans) is written by Begin(), its contents, End(): Begin
// leaves room for a two-byte length, which covers every span but the very largest; End writes the length
// and, when it takes one byte or more than two, moves the contents once to fit.
class Writer {
 public:
  // Writes from the start of `out`, over whatever it held: its size so far is room, used without filling it
  // again, and it keeps its capacity.
  explicit Writer(std::string& out) : out_(out), base_(out.data()), end_(out.size()) {}
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  // Cuts `out` to what was written. Nothing may be written after.
  void Finish() { out_.resize(pos_); }

  [[gnu::always_inline]] void Varint(uint64_t v) {
    if (v < 0x80) {  // every tag, and most lengths and numbers here
      *Room(1) = static_cast<char>(v);
      ++pos_;
      return;
    }
    LongVarint(v);
  }
  [[gnu::noinline]] void LongVarint(uint64_t v) {
    char* p = Room(10);
    while (v >= 0x80) {
      *p++ = static_cast<char>(v | 0x80);
      v >>= 7;
    }
    *p++ = static_cast<char>(v);
    pos_ = static_cast<size_t>(p - base_);
  }
  [[gnu::always_inline]] void Tag(uint32_t number, WireType type) { Varint(uint64_t{number} << 3 | type); }
  // The tag and length of a length-delimited field whose contents follow.
  void LengthOf(uint32_t number, size_t length) {
    Tag(number, kLength);
    Varint(length);
  }
  [[gnu::always_inline]] void Raw(const void* data, size_t n) {
    std::memcpy(Room(n), data, n);
    pos_ += n;
  }
  void Bytes(uint32_t number, const void* data, size_t n) {
    LengthOf(number, n);
    Raw(data, n);
  }
  void String(uint32_t number, std::string_view s) { Bytes(number, s.data(), s.size()); }
  void VarintField(uint32_t number, uint64_t v) {
    Tag(number, kVarint);
    Varint(v);
  }
  void Fixed64(uint32_t number, uint64_t v) {
    Tag(number, kFixed64);
    char* p = Room(8);
    for (int i = 0; i < 8; ++i) p[i] = static_cast<char>(v >> (8 * i));
    pos_ += 8;
  }
  void Fixed32(uint32_t number, uint32_t v) {
    Tag(number, kFixed32);
    char* p = Room(4);
    for (int i = 0; i < 4; ++i) p[i] = static_cast<char>(v >> (8 * i));
    pos_ += 4;
  }

  // Opens a length-delimited field; returns where its contents start, for End().
  size_t Begin(uint32_t number) {
    Tag(number, kLength);
    Room(kLengthRoom);
    pos_ += kLengthRoom;
    return pos_;
  }
  void End(size_t contents) {
    const size_t length = pos_ - contents;
    const size_t n = VarintSize(length);
    if (n != kLengthRoom) {
      if (n > kLengthRoom) Room(n - kLengthRoom);
      std::memmove(base_ + contents - kLengthRoom + n, base_ + contents, length);
      pos_ = pos_ - kLengthRoom + n;
    }
    char* p = base_ + contents - kLengthRoom;
    uint64_t v = length;
    while (v >= 0x80) {
      *p++ = static_cast<char>(v | 0x80);
      v >>= 7;
    }
    *p = static_cast<char>(v);
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
  static constexpr size_t kLengthRoom = 2;  // lengths below 16 KiB

  // Room for `n` more bytes at the write position, which it returns.
  [[gnu::always_inline]] char* Room(size_t n) {
    if (pos_ + n > end_) [[unlikely]] Grow(n);
    return base_ + pos_;
  }
  [[gnu::noinline]] void Grow(size_t n) {
    out_.resize(std::max({end_ + end_ / 2, pos_ + n, size_t{4096}}));
    base_ = out_.data();
    end_ = out_.size();
  }

  std::string& out_;
  char* base_;  // out_.data() and out_.size(), kept here: every write checks them
  size_t end_;
  size_t pos_ = 0;
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
    const size_t event = w.Begin(field::kSpanEvents);
    w.Fixed64(field::kEventTime, static_cast<uint64_t>(e.time_unix_ns));
    w.String(field::kEventName, e.name);
    w.KeyValues(field::kEventAttributes, e.attributes);
    w.End(event);
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

}  // namespace

void EncodeOtlp(const TracingConfig& config, const SpanBatch& spans, std::string* out) {
  // The services in the order each first appears; each gets one ResourceSpans with all of its spans.
  std::vector<std::string_view> services;
  auto service_of = [&config](const SpanData& span) -> std::string_view {
    return span.service_name.empty() ? std::string_view(config.service_name) : std::string_view(span.service_name);
  };
  for (const auto& span : spans) {
    const std::string_view service = service_of(*span);
    bool known = false;
    for (std::string_view s : services) known = known || s == service;
    if (!known) services.push_back(service);
  }
  Writer w(*out);
  for (std::string_view service : services) {
    const size_t resource_spans = w.Begin(field::kRequestResourceSpans);
    const size_t resource = w.Begin(field::kResourceSpansResource);
    w.KeyValue(field::kResourceAttributes, "service.name", AttributeRef(service));
    w.KeyValue(field::kResourceAttributes, "telemetry.sdk.name", AttributeRef(std::string_view(kScopeName)));
    w.KeyValue(field::kResourceAttributes, "telemetry.sdk.language", AttributeRef(std::string_view("cpp")));
    for (const auto& [key, value] : config.resource) {
      w.KeyValue(field::kResourceAttributes, key, AttributeRef(std::string_view(value)));
    }
    w.End(resource);
    const size_t scope_spans = w.Begin(field::kResourceSpansScopeSpans);
    w.LengthOf(field::kScopeSpansScope, 1 + VarintSize(sizeof(kScopeName) - 1) + sizeof(kScopeName) - 1);
    w.String(field::kScopeName, kScopeName);
    for (const auto& span : spans) {
      if (service_of(*span) != service) continue;
      const size_t one = w.Begin(field::kScopeSpansSpans);
      WriteSpan(*span, w);
      w.End(one);
    }
    w.End(scope_spans);
    w.End(resource_spans);
  }
  w.Finish();
}

}  // namespace abode::tracing

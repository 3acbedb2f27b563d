#include "tracing/trace_context.h"

#include <sys/random.h>
#include <time.h>

#include <cstring>

namespace abode::tracing {
namespace {

// The value of each lower-case hex digit, 0xff for every other byte: every caller's traceparent is parsed
// on the raft thread as its entry commits and applies, so this is one load a digit.
struct HexTable {
  uint8_t value[256];
  constexpr HexTable() : value() {
    for (int c = 0; c < 256; ++c) {
      value[c] = c >= '0' && c <= '9' ? static_cast<uint8_t>(c - '0')
                 : c >= 'a' && c <= 'f' ? static_cast<uint8_t>(c - 'a' + 10)
                                        : uint8_t{0xff};
    }
  }
};
constexpr HexTable kHex;

template <size_t N>
bool ParseHex(std::string_view text, std::array<uint8_t, N>& out) {
  if (text.size() != 2 * N) return false;
  uint8_t bad = 0;
  for (size_t i = 0; i < N; ++i) {
    const uint8_t hi = kHex.value[static_cast<unsigned char>(text[2 * i])];
    const uint8_t lo = kHex.value[static_cast<unsigned char>(text[2 * i + 1])];
    bad |= static_cast<uint8_t>(hi | lo);
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return (bad & 0xf0) == 0;
}

template <size_t N>
bool AllZero(const std::array<uint8_t, N>& id) {
  static_assert(N % 8 == 0);
  uint64_t any = 0;
  for (size_t i = 0; i < N; i += 8) {
    uint64_t word;
    std::memcpy(&word, id.data() + i, 8);
    any |= word;
  }
  return any == 0;
}

// Fills `out` from getrandom; should the kernel refuse, from the clock and the address of `out`, which is
// still unique enough for ids (they are not secrets).
void FillRandom(uint8_t* out, size_t n) {
  size_t got = 0;
  while (got < n) {
    const ssize_t r = ::getrandom(out + got, n - got, 0);
    if (r <= 0) break;
    got += static_cast<size_t>(r);
  }
  if (got == n) return;
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  uint64_t seed = static_cast<uint64_t>(ts.tv_nsec) ^ (static_cast<uint64_t>(ts.tv_sec) << 30) ^
                  reinterpret_cast<uintptr_t>(out);
  for (size_t i = got; i < n; ++i) {
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    out[i] = static_cast<uint8_t>(seed >> 56);
  }
}

}  // namespace

bool SpanContext::valid() const { return !AllZero(trace_id) && !AllZero(span_id); }

std::optional<SpanContext> ParseTraceparent(std::string_view text) {
  if (text.size() < 55 || text[2] != '-' || text[35] != '-' || text[52] != '-') return std::nullopt;
  std::array<uint8_t, 1> version{}, flags{};
  if (!ParseHex(text.substr(0, 2), version) || version[0] == 0xff) return std::nullopt;
  if (version[0] == 0 && text.size() != 55) return std::nullopt;
  if (version[0] != 0 && text.size() > 55 && text[55] != '-') return std::nullopt;
  SpanContext c;
  if (!ParseHex(text.substr(3, 32), c.trace_id) || !ParseHex(text.substr(36, 16), c.span_id) ||
      !ParseHex(text.substr(53, 2), flags)) {
    return std::nullopt;
  }
  if (!c.valid()) return std::nullopt;
  c.sampled = (flags[0] & 0x01) != 0;
  return c;
}

namespace {

constexpr char kHexDigits[] = "0123456789abcdef";

void PutHex(const uint8_t* bytes, size_t n, char* out) {
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kHexDigits[bytes[i] >> 4];
    out[2 * i + 1] = kHexDigits[bytes[i] & 0xf];
  }
}

}  // namespace

std::string ToHex(const uint8_t* bytes, size_t n) {
  std::string out(2 * n, '0');
  PutHex(bytes, n, out.data());
  return out;
}

void FormatTraceparent(const SpanContext& context, char (&out)[kTraceparentSize]) {
  std::memcpy(out, "00-", 3);
  PutHex(context.trace_id.data(), context.trace_id.size(), out + 3);
  out[35] = '-';
  PutHex(context.span_id.data(), context.span_id.size(), out + 36);
  std::memcpy(out + 52, context.sampled ? "-01" : "-00", 3);
}

std::string FormatTraceparent(const SpanContext& context) {
  char text[kTraceparentSize];
  FormatTraceparent(context, text);
  return std::string(text, sizeof(text));
}

TraceId RandomTraceId() {
  TraceId id;
  do {
    FillRandom(id.data(), id.size());
  } while (AllZero(id));
  return id;
}

SpanId RandomSpanId() {
  SpanId id;
  do {
    FillRandom(id.data(), id.size());
  } while (AllZero(id));
  return id;
}

SpanContext ChildOf(std::string_view parent) {
  SpanContext c;
  if (auto p = ParseTraceparent(parent)) {
    c.trace_id = p->trace_id;
    c.sampled = p->sampled;
  } else {
    c.trace_id = RandomTraceId();
    c.sampled = true;
  }
  c.span_id = RandomSpanId();
  return c;
}

}  // namespace abode::tracing

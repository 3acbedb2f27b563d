// The relay entry (relay_entry.h). It runs before the C library is initialised: no libc or libstdc++ call,
// no errno, no thread-local storage, no static constructors, nothing the compiler would lower to memcpy or
// memset (this file is built freestanding, and abode_cni_relay_entry_test checks that its object file
// references no symbol but `_start`). System calls are made directly; buffers are static.
#include "cni/relay_entry.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>

#include "cni/relay_format.h"

abode::cni::RelayState abode_cni_relay = {};

#if defined(__x86_64__)

namespace abode::cni {
namespace {

constexpr char kDefaultSocket[] = "/run/abode/cni.sock";  // = kDefaultSocketPath (ipam_config.h)
constexpr long kDefaultTimeout = 10'000;                 // = kDefaultTimeoutMs
constexpr unsigned long kFrameCapacity = 4 + kMaxFrameBytes;

// 4-byte length, then the invocation; the response frame; the closing frame.
char request[kFrameCapacity];
char response[kFrameCapacity];
char log_path[4096];

long Sys(long n, long a = 0, long b = 0, long c = 0, long d = 0, long e = 0, long f = 0) {
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  register long r9 __asm__("r9") = f;
  long ret;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                   : "rcx", "r11", "memory");
  return ret;
}

[[noreturn]] void Exit(int code) {
  for (;;) Sys(SYS_exit_group, code);
}

int64_t Clock(long id) {
  timespec ts{};
  Sys(SYS_clock_gettime, id, reinterpret_cast<long>(&ts));
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

int64_t NowMs() { return Clock(CLOCK_MONOTONIC) / 1'000'000; }

bool StartsWith(const char* s, const char* prefix) {
  while (*prefix != 0) {
    if (*s++ != *prefix++) return false;
  }
  return true;
}

bool Equal(const char* a, unsigned long a_size, const char* b) {
  unsigned long i = 0;
  for (; i < a_size; ++i) {
    if (b[i] != a[i] || b[i] == 0) return false;
  }
  return b[i] == 0;
}

bool Same(const char* a, const char* b, unsigned long n) {
  for (unsigned long i = 0; i < n; ++i) {
    if (a[i] != b[i]) return false;
  }
  return true;
}

void Copy(char* to, const char* from, unsigned long n) {
  for (unsigned long i = 0; i < n; ++i) to[i] = from[i];
}

void PutU32(char* at, uint32_t v) {
  for (int i = 0; i < 4; ++i) at[i] = static_cast<char>(v >> (24 - 8 * i));
}

uint32_t GetU32(const char* at) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(at[i]);
  return v;
}

// The two keys of the configuration the relay needs itself: where abode-node listens and how long to wait.
// A small scanner, enough to find them in the JSON abode-node will parse in full: strings are decoded,
// other values skipped by balancing brackets. It refuses (and the plugin falls through to main) whatever it
// cannot read with certainty; abode-node and main check everything else.
class ConfigScan {
 public:
  ConfigScan(const char* text, unsigned long size) : p_(text), end_(text + size) {}

  bool Run() {
    Space();
    if (!Eat('{')) return false;
    return Members([this](const char* key, unsigned long size) {
      if (Equal(key, size, "ipam") && Peek() == '{') {
        ++p_;
        return Members([this](const char* k, unsigned long n) {
          if (Equal(k, n, "socket_path")) return SocketPath();
          if (Equal(k, n, "timeout_ms")) return Timeout();
          return SkipValue();
        });
      }
      return SkipValue();
    });
  }

  char socket[sizeof(sockaddr_un::sun_path)];  // NUL-terminated when socket_size > 0
  unsigned long socket_size = 0;  // 0: the default
  long timeout_ms = kDefaultTimeout;

 private:
  char Peek() const { return p_ < end_ ? *p_ : 0; }
  bool Eat(char c) {
    if (Peek() != c) return false;
    ++p_;
    return true;
  }
  void Space() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
  }
  bool Literal(const char* word) {
    for (; *word != 0; ++word) {
      if (!Eat(*word)) return false;
    }
    return true;
  }

  // `member(key, size)` for each member of the object whose '{' was read; the key is decoded (and cut short
  // when longer than the keys looked for, which then match none).
  template <typename Member>
  bool Members(Member member) {
    Space();
    if (Eat('}')) return true;
    for (;;) {
      Space();
      char key[16];
      unsigned long size = 0;
      if (!String(key, sizeof key, &size)) return false;
      if (size > sizeof key) size = 0;  // longer than any key looked for: matches none
      Space();
      if (!Eat(':')) return false;
      Space();
      if (!member(key, size)) return false;
      Space();
      if (Eat('}')) return true;
      if (!Eat(',')) return false;
    }
  }

  int Hex() {
    int v = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = Peek();
      ++p_;
      if (c >= '0' && c <= '9') {
        v = v * 16 + (c - '0');
      } else if (c >= 'a' && c <= 'f') {
        v = v * 16 + (c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        v = v * 16 + (c - 'A' + 10);
      } else {
        return -1;
      }
    }
    return v;
  }

  // A string at p_, decoded into out[0..cap) (bytes beyond cap are dropped; *size counts them all).
  bool String(char* out, unsigned long cap, unsigned long* size) {
    if (!Eat('"')) return false;
    unsigned long n = 0;
    auto put = [&](unsigned char c) {
      if (n < cap) out[n] = static_cast<char>(c);
      ++n;
    };
    for (;;) {
      if (p_ >= end_) return false;
      const unsigned char c = static_cast<unsigned char>(*p_++);
      if (c == '"') break;
      if (c < 0x20) return false;
      if (c != '\\') {
        put(c);
        continue;
      }
      const char e = Peek();
      ++p_;
      switch (e) {
        case '"': case '\\': case '/': put(static_cast<unsigned char>(e)); break;
        case 'b': put('\b'); break;
        case 'f': put('\f'); break;
        case 'n': put('\n'); break;
        case 'r': put('\r'); break;
        case 't': put('\t'); break;
        case 'u': {
          long code = Hex();
          if (code < 0) return false;
          if (code >= 0xd800 && code <= 0xdbff) {
            if (!Eat('\\') || !Eat('u')) return false;
            const int low = Hex();
            if (low < 0xdc00 || low > 0xdfff) return false;
            code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
          } else if (code >= 0xdc00 && code <= 0xdfff) {
            return false;
          }
          if (code < 0x80) {
            put(static_cast<unsigned char>(code));
          } else if (code < 0x800) {
            put(0xc0 | (code >> 6));
            put(0x80 | (code & 0x3f));
          } else if (code < 0x10000) {
            put(0xe0 | (code >> 12));
            put(0x80 | ((code >> 6) & 0x3f));
            put(0x80 | (code & 0x3f));
          } else {
            put(0xf0 | (code >> 18));
            put(0x80 | ((code >> 12) & 0x3f));
            put(0x80 | ((code >> 6) & 0x3f));
            put(0x80 | (code & 0x3f));
          }
          break;
        }
        default: return false;
      }
    }
    *size = n;
    return true;
  }

  // Any value: strings decoded and dropped, containers by their brackets (not checked further: abode-node
  // parses the configuration in full), scalars up to the next delimiter.
  bool SkipValue() {
    char sink[1];
    unsigned long size = 0;
    if (Peek() == '"') return String(sink, 0, &size);
    if (Peek() != '{' && Peek() != '[') {
      const char* start = p_;
      while (p_ < end_ && *p_ != ',' && *p_ != '}' && *p_ != ']' && *p_ != ' ' && *p_ != '\t' && *p_ != '\n' &&
             *p_ != '\r') {
        ++p_;
      }
      return p_ > start;
    }
    long depth = 0;
    while (p_ < end_) {
      const char c = *p_;
      if (c == '"') {
        if (!String(sink, 0, &size)) return false;
        continue;
      }
      ++p_;
      if (c == '{' || c == '[') ++depth;
      if ((c == '}' || c == ']') && --depth == 0) return true;
    }
    return false;
  }

  bool SocketPath() {
    if (Peek() == 'n') return Literal("null") && (socket_size = 0, true);
    unsigned long size = 0;
    if (!String(socket, sizeof socket, &size) || size >= sizeof socket) return false;
    for (unsigned long i = 0; i < size; ++i) {
      if (socket[i] == 0) return false;
    }
    socket[size] = 0;
    socket_size = size;
    return true;
  }

  bool Timeout() {
    if (Peek() == 'n') return Literal("null") && (timeout_ms = kDefaultTimeout, true);
    long v = 0;
    const char* start = p_;
    while (p_ < end_ && *p_ >= '0' && *p_ <= '9' && v <= 600'000) v = v * 10 + (*p_++ - '0');
    const char next = Peek();
    if (p_ == start || (*start == '0' && p_ - start > 1) || next == '.' || next == 'e' || next == 'E' ||
        (next >= '0' && next <= '9') || v < 100 || v > 600'000) {
      return false;  // main says what is wrong with it
    }
    timeout_ms = v;
    return true;
  }

  const char* p_;
  const char* const end_;
};

// Waits until `fd` is ready for `events` or `deadline_ms` passes.
bool Wait(int fd, short events, int64_t deadline_ms) {
  for (;;) {
    const int64_t left = deadline_ms - NowMs();
    if (left <= 0) return false;
    pollfd p{fd, events, 0};
    const long n = Sys(SYS_poll, reinterpret_cast<long>(&p), 1, left);
    if (n > 0) return true;
    if (n < 0 && n != -4 /* EINTR */) return false;
  }
}

enum class Io { kOk, kTimedOut, kClosed };

// Sends (SYS_sendto) or receives (SYS_recvfrom) all `size` bytes before `deadline_ms`.
Io Transfer(long call, int fd, char* data, unsigned long size, int64_t deadline_ms) {
  const bool send = call == SYS_sendto;
  while (size > 0) {
    const long n = Sys(call, fd, reinterpret_cast<long>(data), static_cast<long>(size),
                       send ? MSG_NOSIGNAL | MSG_DONTWAIT : MSG_DONTWAIT);
    if (n > 0) {
      data += n;
      size -= static_cast<unsigned long>(n);
    } else if (n == -11 /* EAGAIN */) {
      if (!Wait(fd, send ? POLLOUT : POLLIN, deadline_ms)) return Io::kTimedOut;
    } else if (n != -4 /* EINTR */) {
      return Io::kClosed;  // for a receive, n == 0: closed before the whole answer
    }
  }
  return Io::kOk;
}

void WriteAll(int fd, const char* data, unsigned long size) {
  while (size > 0) {
    const long w = Sys(SYS_write, fd, reinterpret_cast<long>(data), static_cast<long>(size));
    if (w <= 0 && w != -4) return;
    if (w > 0) {
      data += w;
      size -= static_cast<unsigned long>(w);
    }
  }
}

// Appends the decimal digits of `v` (>= 0) at `at`; returns the end.
char* Decimal(char* at, int64_t v) {
  char digits[24];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v > 0);
  while (n > 0) *at++ = digits[--n];
  return at;
}

// The relay; returns to fall through to main().
void Relay(long* stack) {
  RelayState& state = abode_cni_relay;
  state.start_unix_ns = Clock(CLOCK_REALTIME);
  const int64_t started_ms = NowMs();
  const long argc = stack[0];
  char** env = reinterpret_cast<char**>(stack + argc + 2);

  const char* command = nullptr;
  for (char** e = env; *e != nullptr; ++e) {
    if (StartsWith(*e, "CNI_COMMAND=")) command = *e + 12;
  }
  if (command == nullptr) return;
  static const char* const kRelayed[] = {"ADD", "DEL", "CHECK", "GC", "STATUS"};
  unsigned long command_size = 0;
  while (command[command_size] != 0) ++command_size;
  bool relayed = false;
  for (const char* verb : kRelayed) relayed = relayed || Equal(command, command_size, verb);
  if (!relayed) return;

  // The invocation: magic, start time, environment; stdin goes last, read straight into the frame.
  char* p = request + 4;
  char* const limit = request + kFrameCapacity;
  Copy(p, kInvocationMagic, kInvocationMagicSize);
  p += kInvocationMagicSize;
  PutU32(p, static_cast<uint32_t>(static_cast<uint64_t>(state.start_unix_ns) >> 32));
  PutU32(p + 4, static_cast<uint32_t>(state.start_unix_ns));
  char* const count_at = p + 8;
  p += 12;
  uint32_t count = 0;
  for (char** e = env; *e != nullptr; ++e) {
    if (!StartsWith(*e, "CNI_") && !StartsWith(*e, "TRACEPARENT=")) continue;
    unsigned long n = 0;
    bool assignment = false;  // KEY=VALUE; main() skips anything else too
    for (; (*e)[n] != 0; ++n) assignment = assignment || (*e)[n] == '=';
    if (!assignment) continue;
    if (static_cast<unsigned long>(limit - p) < 4 + n) return;
    PutU32(p, static_cast<uint32_t>(n));
    Copy(p + 4, *e, n);
    p += 4 + n;
    ++count;
  }
  PutU32(count_at, count);
  char* const stdin_at = p;
  state.stdin_prefix = stdin_at;
  for (;;) {
    if (p == limit) return;  // larger than a frame: main reads on
    const long r = Sys(SYS_read, 0, reinterpret_cast<long>(p), limit - p);
    if (r == -4) continue;
    if (r < 0) return;  // main meets the same error
    p += r;
    state.stdin_prefix_size = static_cast<uint64_t>(p - stdin_at);
    if (r == 0) break;
  }
  state.stdin_complete = 1;
  PutU32(request, static_cast<uint32_t>(p - request - 4));

  ConfigScan config(stdin_at, static_cast<unsigned long>(p - stdin_at));
  if (!config.Run()) return;
  const int64_t deadline_ms = started_ms + config.timeout_ms;
  static sockaddr_un address;
  address.sun_family = AF_UNIX;
  if (config.socket_size > 0) {
    Copy(address.sun_path, config.socket, config.socket_size + 1);
  } else {
    Copy(address.sun_path, kDefaultSocket, sizeof kDefaultSocket);
  }
  const long fd = Sys(SYS_socket, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return;
  // Not there, or its backlog full: main answers (it waits for a busy abode-node until the deadline).
  if (Sys(SYS_connect, fd, reinterpret_cast<long>(&address), sizeof address) != 0) {
    Sys(SYS_close, fd);
    return;
  }
  auto fail = [&](Io io) {
    state.failure = io == Io::kTimedOut ? kRelayTimedOut : kRelayClosed;
    Sys(SYS_close, fd);
  };
  if (Io io = Transfer(SYS_sendto, fd, request, static_cast<unsigned long>(p - request), deadline_ms); io != Io::kOk) {
    // abode-node refuses some peers before reading: what it said is still there to read.
    if (io == Io::kTimedOut) return fail(io);
  }
  if (Io io = Transfer(SYS_recvfrom, fd, response, 4, deadline_ms); io != Io::kOk) return fail(io);
  const uint32_t size = GetU32(response);
  if (size > kMaxFrameBytes) {
    state.failure = kRelayBadAnswer;
    Sys(SYS_close, fd);
    return;
  }
  if (Io io = Transfer(SYS_recvfrom, fd, response + 4, size, deadline_ms); io != Io::kOk) return fail(io);
  const char* at = response + 4;
  const char* const end = at + size;
  if (size < kOutputMagicSize || !Same(at, kOutputMagic, kOutputMagicSize)) {
    // An abode-node without the relay (a JSON answer): main asks again the old way.
    Sys(SYS_close, fd);
    return;
  }
  at += kOutputMagicSize;
  struct Part {
    const char* data = nullptr;
    uint32_t size = 0;
  } parts[3];
  bool whole = end - at >= 4;
  const int exit_code = whole ? static_cast<int>(GetU32(at)) : 0;
  at += 4;
  for (Part& part : parts) {
    whole = whole && end - at >= 4 && static_cast<unsigned long>(end - at - 4) >= GetU32(at);
    if (!whole) break;
    part.size = GetU32(at);
    part.data = at + 4;
    at += 4 + part.size;
  }
  if (!whole || at != end) {
    state.failure = kRelayBadAnswer;
    Sys(SYS_close, fd);
    return;
  }
  // The plugin's end as abode-node records it; a failure to send it changes nothing for the caller.
  char* closing = request;
  char* q = closing + 4;
  for (const char* s = "{\"plugin_end_unix_ns\":"; *s != 0; ++s) *q++ = *s;
  q = Decimal(q, Clock(CLOCK_REALTIME));
  *q++ = '}';
  PutU32(closing, static_cast<uint32_t>(q - closing - 4));
  Transfer(SYS_sendto, fd, closing, static_cast<unsigned long>(q - closing), NowMs() + 50);
  Sys(SYS_close, fd);

  WriteAll(1, parts[0].data, parts[0].size);
  if (parts[1].size > 0 && parts[1].size < sizeof log_path && parts[2].size > 0) {
    Copy(log_path, parts[1].data, parts[1].size);
    log_path[parts[1].size] = 0;
    const long log = Sys(SYS_openat, AT_FDCWD, reinterpret_cast<long>(log_path),
                         O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
    if (log >= 0) {
      WriteAll(static_cast<int>(log), parts[2].data, parts[2].size);
      Sys(SYS_close, log);
    }
  }
  Exit(exit_code);
}

}  // namespace
}  // namespace abode::cni

extern "C" [[gnu::used]] void abode_cni_relay_main(long* stack) { abode::cni::Relay(stack); }

// The entry point: the initial stack (argc, argv, environment, auxiliary vector) goes to the relay; when it
// returns, the C library's own entry takes over with the stack and registers exactly as the kernel left
// them (%rdx, the function the entry would register with atexit, is 0 for a static executable).
__asm__(R"(
  .text
  .globl abode_cni_relay_entry
  .type abode_cni_relay_entry, @function
abode_cni_relay_entry:
  mov %rsp, %rbx
  mov %rsp, %rdi
  and $-16, %rsp
  call abode_cni_relay_main
  mov %rbx, %rsp
  xor %edx, %edx
  jmp _start
  .size abode_cni_relay_entry, .-abode_cni_relay_entry
)");

#endif  // defined(__x86_64__)

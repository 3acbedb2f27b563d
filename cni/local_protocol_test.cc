#include "cni/local_protocol.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

namespace abode::cni {
namespace {

using Clock = std::chrono::steady_clock;

TEST(LocalProtocolTest, RequestRoundTrips) {
  LocalRequest r;
  r.verb = "GC";
  r.container_id = "c1";
  r.ifname = "eth0";
  r.network = "net";
  PoolRequest p;
  p.name = "10.0.0.0-24";
  p.cidr = *Prefix::Parse("10.0.0.0/24");
  p.range_start = "10.0.0.10";
  p.exclude = {"10.0.0.64/26"};
  p.gateway = "10.0.0.1";
  p.network = "net";
  PoolRequest named;
  named.name = "named";
  named.has_spec = false;
  r.pools = {p, named};
  r.static_addresses = {"10.0.0.5"};
  r.labels = {{"k8s-pod-name", "web-0"}};
  r.prev_ips = {"10.0.0.5/24"};
  r.valid_attachments = std::vector<std::pair<std::string, std::string>>{{"c1", "eth0"}};
  r.traceparent = "00-0123456789abcdef0123456789abcdef-0123456789abcdef-01";
  r.parent_traceparent = "00-0123456789abcdef0123456789abcdef-1111111111111111-01";
  r.plugin_start_unix_ns = 42;
  r.timeout_ms = 1234;
  auto back = DecodeRequest(EncodeRequest(r));
  ASSERT_TRUE(back.ok()) << back.error().msg;
  EXPECT_EQ(back->pools, r.pools);
  EXPECT_EQ(back->static_addresses, r.static_addresses);
  EXPECT_EQ(back->labels, r.labels);
  EXPECT_EQ(back->prev_ips, r.prev_ips);
  EXPECT_EQ(back->valid_attachments, r.valid_attachments);
  EXPECT_EQ(back->traceparent, r.traceparent);
  EXPECT_EQ(back->parent_traceparent, r.parent_traceparent);
  EXPECT_EQ(back->plugin_start_unix_ns, 42);
  EXPECT_EQ(back->timeout_ms, 1234);
}

TEST(LocalProtocolTest, MalformedRequestsAreDecodeFailures) {
  for (const std::string text : {"", "[]", R"({"verb":"FROB"})", R"({"verb":"ADD"})",
                                 R"({"verb":"ADD","container_id":"c","ifname":"e","pools":[{"name":"p","cidr":"x"}]})",
                                 R"({"verb":"GC","labels":{"a":1}})"}) {
    auto r = DecodeRequest(text);
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.error().code, kDecodeFailure);
  }
}

TEST(LocalProtocolTest, ResponseRoundTrips) {
  LocalResponse r;
  r.ips = {{"10.0.0.2", 24, "10.0.0.1", "p"}};
  r.released = 3;
  auto back = DecodeResponse(EncodeResponse(r));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->ips, r.ips);
  EXPECT_EQ(back->released, 3);
  LocalResponse e;
  e.error = CniError{kPoolExhausted, "full", ""};
  auto err = DecodeResponse(EncodeResponse(e));
  ASSERT_TRUE(err.ok());
  ASSERT_TRUE(err->error);
  EXPECT_EQ(err->error->code, kPoolExhausted);
}

TEST(LocalProtocolTest, InvocationsRoundTripWithTheCniEnvironmentOnly) {
  PluginEnvironment e;
  e.env = {{"CNI_COMMAND", "ADD"}, {"CNI_ARGS", "A=b=c;D"}, {"TRACEPARENT", "t"}, {"HOME", "/root"}};
  e.stdin_text = std::string("{\"cniVersion\":\"1.0.0\"}\0\xff", 24);
  e.start_unix_ns = 1'800'000'000'123'456'789;
  const std::string frame = EncodeInvocation(e);
  EXPECT_TRUE(IsInvocation(frame));
  EXPECT_FALSE(IsInvocation(EncodeRequest(LocalRequest{})));
  auto back = DecodeInvocation(frame);
  ASSERT_TRUE(back.ok()) << back.error().msg;
  EXPECT_EQ(back->env, (std::map<std::string, std::string>{
                           {"CNI_COMMAND", "ADD"}, {"CNI_ARGS", "A=b=c;D"}, {"TRACEPARENT", "t"}}));
  EXPECT_EQ(back->stdin_text, e.stdin_text);
  EXPECT_EQ(back->start_unix_ns, e.start_unix_ns);
  // Cut anywhere inside the environment: a decode failure, never a crash.
  const size_t stdin_at = frame.size() - e.stdin_text.size();
  for (size_t cut = 0; cut < stdin_at; ++cut) {
    auto bad = DecodeInvocation(frame.substr(0, cut));
    ASSERT_FALSE(bad.ok()) << cut;
    EXPECT_EQ(bad.error().code, kDecodeFailure);
  }
}

TEST(LocalProtocolTest, OutputsRoundTripAndMalformedOnesAreRefused) {
  const PluginOutput o{1, "{\"code\": 11}\n", "[error] x\n", "/var/log/abode.log"};
  const std::string frame = EncodeOutput(o);
  auto back = DecodeOutput(frame);
  ASSERT_TRUE(back.ok()) << back.error().msg;
  EXPECT_EQ(back->exit_code, 1);
  EXPECT_EQ(back->stdout_text, o.stdout_text);
  EXPECT_EQ(back->log_text, o.log_text);
  EXPECT_EQ(back->log_file, o.log_file);
  EXPECT_FALSE(DecodeOutput(frame + "x").ok());
  EXPECT_FALSE(DecodeOutput(frame.substr(0, frame.size() - 1)).ok());
  EXPECT_FALSE(DecodeOutput(EncodeResponse(LocalResponse{})).ok());
}

TEST(LocalProtocolTest, FramesCrossASocketAndTimeOut) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  const std::string big(300'000, 'x');  // more than one socket buffer: the writer must wait for the reader
  std::string got;
  std::thread reader([&] {
    auto f = ReadFrame(fds[1], Clock::now() + std::chrono::seconds(10));
    if (f.ok()) got = *f;
  });
  EXPECT_FALSE(WriteFrame(fds[0], big, Clock::now() + std::chrono::seconds(10)).has_value());
  reader.join();
  EXPECT_EQ(got, big);
  // Nothing arrives: the deadline answers with "try again later".
  auto none = ReadFrame(fds[1], Clock::now() + std::chrono::milliseconds(20));
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code, kTryAgainLater);
  // A header announcing more than the limit is refused without reading it.
  const char header[4] = {0x7f, 0, 0, 0};
  ASSERT_EQ(::write(fds[0], header, 4), 4);
  auto huge = ReadFrame(fds[1], Clock::now() + std::chrono::seconds(1));
  ASSERT_FALSE(huge.ok());
  EXPECT_EQ(huge.error().code, kDecodeFailure);
  ::close(fds[0]);
  auto closed = ReadFrame(fds[1], Clock::now() + std::chrono::seconds(1));
  ASSERT_FALSE(closed.ok());
  EXPECT_EQ(closed.error().code, kIoFailure);
  ::close(fds[1]);
}

}  // namespace
}  // namespace abode::cni

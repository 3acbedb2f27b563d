#include "cni/plugin.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <thread>
#include <sstream>
#include <nlohmann/json.hpp>

namespace abode::cni {
namespace {

using nlohmann::json;

constexpr char kConfig[] =
    R"({"cniVersion":"1.0.0","name":"net1","type":"bridge","ipam":{"type":"abode","range":"10.20.0.0/24",
        "gateway":"10.20.0.1","routes":[{"dst":"0.0.0.0/0"}],"socket_path":"/nonexistent/abode.sock"}})";

std::map<std::string, std::string> AddEnv() {
  return {{"CNI_COMMAND", "ADD"}, {"CNI_CONTAINERID", "c1"}, {"CNI_NETNS", "/proc/self/ns/net"},
          {"CNI_IFNAME", "eth0"}, {"CNI_ARGS", "K8S_POD_NAMESPACE=ns;K8S_POD_NAME=web-0;K8S_POD_UID=u1"}};
}

TEST(PluginTest, AddSendsTheRequestAndPrintsTheResult) {
  LocalRequest seen;
  auto node = [&](const std::string& socket, const LocalRequest& r, std::chrono::steady_clock::time_point) {
    EXPECT_EQ(socket, "/nonexistent/abode.sock");
    seen = r;
    LocalResponse resp;
    resp.ips = {{"10.20.0.2", 24, "10.20.0.1", "10.20.0.0-24"}};
    return Result<LocalResponse>(resp);
  };
  PluginOutput out = RunPlugin({AddEnv(), kConfig, 7}, node);
  ASSERT_EQ(out.exit_code, 0) << out.stdout_text;
  const json r = json::parse(out.stdout_text);
  EXPECT_EQ(r["ips"][0]["address"], "10.20.0.2/24");
  EXPECT_EQ(r["ips"][0]["gateway"], "10.20.0.1");
  EXPECT_EQ(r["routes"][0]["dst"], "0.0.0.0/0");
  EXPECT_EQ(seen.verb, "ADD");
  EXPECT_EQ(seen.container_id, "c1");
  EXPECT_EQ(seen.pools.at(0).name, "10.20.0.0-24");
  EXPECT_EQ(seen.labels.at("k8s-pod-uid"), "u1");
  EXPECT_EQ(seen.plugin_start_unix_ns, 7);
  EXPECT_EQ(seen.traceparent.size(), 55u);
}

TEST(PluginTest, StaticRequestsInsideARangeAreReservedOutsideReturned) {
  LocalRequest seen;
  auto node = [&](const std::string&, const LocalRequest& r, std::chrono::steady_clock::time_point) {
    seen = r;
    LocalResponse resp;
    resp.ips = {{"10.20.0.9", 24, "10.20.0.1", "10.20.0.0-24"}};
    return Result<LocalResponse>(resp);
  };
  auto env = AddEnv();
  env["CNI_ARGS"] = "IP=10.20.0.9/24,192.168.7.7/24;GATEWAY=10.20.0.254";
  PluginOutput out = RunPlugin({env, kConfig, 0}, node);
  ASSERT_EQ(out.exit_code, 0) << out.stdout_text;
  EXPECT_EQ(seen.static_addresses, std::vector<std::string>{"10.20.0.9"});
  const json r = json::parse(out.stdout_text);
  ASSERT_EQ(r["ips"].size(), 2u);
  EXPECT_EQ(r["ips"][0]["gateway"], "10.20.0.254");
  EXPECT_EQ(r["ips"][1]["address"], "192.168.7.7/24");
}

TEST(PluginTest, NodeErrorsPassThroughAndStatusFailuresAreFifty) {
  auto down = [](const std::string&, const LocalRequest&, std::chrono::steady_clock::time_point) {
    return Result<LocalResponse>(CniError{kTryAgainLater, "abode-node is not reachable", ""});
  };
  PluginOutput add = RunPlugin({AddEnv(), kConfig, 0}, down);
  EXPECT_EQ(add.exit_code, 1);
  EXPECT_EQ(json::parse(add.stdout_text)["code"], 11);
  std::string status_config = kConfig;
  status_config.replace(status_config.find("1.0.0"), 5, "1.1.0");
  PluginOutput status = RunPlugin({{{"CNI_COMMAND", "STATUS"}}, status_config, 0}, down);
  EXPECT_EQ(status.exit_code, 1);
  EXPECT_EQ(json::parse(status.stdout_text)["code"], 50);
  // STATUS needs 1.1.0.
  PluginOutput old = RunPlugin({{{"CNI_COMMAND", "STATUS"}}, kConfig, 0}, down);
  EXPECT_EQ(json::parse(old.stdout_text)["code"], kIncompatibleVersion);
}

TEST(PluginTest, LogsIgnoredKeysToTheLogFile) {
  auto node = [](const std::string&, const LocalRequest&, std::chrono::steady_clock::time_point) {
    return Result<LocalResponse>(LocalResponse{});
  };
  auto env = AddEnv();
  env["CNI_COMMAND"] = "DEL";
  PluginOutput out = RunPlugin(
      {env,
       R"({"cniVersion":"0.4.0","name":"n","ipam":{"type":"whereabouts","range":"10.1.0.0/24","etcd_host":"h",
           "log_file":"/tmp/x","log_level":"debug"}})",
       0},
      node);
  EXPECT_EQ(out.exit_code, 0);
  EXPECT_NE(out.log_text.find("ignoring whereabouts key ipam.etcd_host"), std::string::npos) << out.log_text;
  EXPECT_EQ(out.log_file, "/tmp/x");
}

TEST(PluginTest, TraceparentKeepsTheCallersTrace) {
  const std::string parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  const std::string child = NewTraceparent(parent);
  EXPECT_EQ(child.substr(0, 36), parent.substr(0, 36));
  EXPECT_NE(child, parent);
  EXPECT_NE(NewTraceparent("garbage").substr(3, 32), NewTraceparent("garbage").substr(3, 32));
}

TEST(PluginTest, ABusyNodeWhoseBacklogIsFullIsTryAgainLaterWithinTheDeadline) {
  const std::string path = ::testing::TempDir() + "/abode_busy_" + std::to_string(::getpid()) + ".sock";
  std::remove(path.c_str());
  const int listener = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::snprintf(address.sun_path, sizeof address.sun_path, "%s", path.c_str());
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::listen(listener, 0), 0);
  // Nobody accepts: fill the backlog.
  std::vector<int> waiting;
  for (int i = 0; i < 4; ++i) {
    const int c = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
    ::connect(c, reinterpret_cast<sockaddr*>(&address), sizeof address);
    waiting.push_back(c);
  }
  LocalRequest r;
  r.verb = "STATUS";
  const auto start = std::chrono::steady_clock::now();
  auto answer = CallNodeOverSocket(path, r, start + std::chrono::milliseconds(300));
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(answer.ok());
  EXPECT_EQ(answer.error().code, kTryAgainLater);
  EXPECT_LT(took, std::chrono::seconds(3));
  for (int c : waiting) ::close(c);
  ::close(listener);
  std::remove(path.c_str());
}

// The binary, exec'd as a runtime would.
struct Exec {
  int status = -1;
  std::string out;
};

Exec RunBinary(const std::string& env, const std::string& input) {
  // Test processes run side by side: a file of this process's own.
  const std::string in_path = ::testing::TempDir() + "/abode_cni_stdin_" + std::to_string(::getpid()) + ".json";
  std::ofstream(in_path) << input;
  const std::string command = "env -i " + env + " " + ABODE_CNI_BIN + " < " + in_path + " 2>&1";
  Exec e;
  FILE* p = ::popen(command.c_str(), "r");
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, p)) > 0) e.out.append(buffer, n);
  e.status = ::pclose(p);
  return e;
}

TEST(PluginBinaryTest, IsStaticAndHoldsNoGrpc) {
  FILE* p = ::popen((std::string("ldd ") + ABODE_CNI_BIN + " 2>&1").c_str(), "r");
  std::string out;
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, p)) > 0) out.append(buffer, n);
  ::pclose(p);
  // Static: ldd says so and lists nothing.
  EXPECT_NE(out.find("not a dynamic executable"), std::string::npos) << out;
  for (const char* lib : {"grpc", "protobuf", "absl"}) EXPECT_EQ(out.find(lib), std::string::npos) << lib << "\n" << out;
  // And no gRPC code was linked in statically either.
  FILE* symbols = ::popen((std::string("nm -C ") + ABODE_CNI_BIN + " | grep -c 'grpc::' || true").c_str(), "r");
  char count[32] = {};
  ASSERT_NE(std::fgets(count, sizeof count, symbols), nullptr);
  ::pclose(symbols);
  EXPECT_EQ(std::string(count), "0\n");
}

TEST(PluginBinaryTest, VersionAnswersWithoutANode) {
  Exec e = RunBinary("CNI_COMMAND=VERSION", R"({"cniVersion":"0.4.0"})");
  ASSERT_TRUE(WIFEXITED(e.status) && WEXITSTATUS(e.status) == 0) << e.out;
  const json v = json::parse(e.out);
  EXPECT_EQ(v["cniVersion"], "0.4.0");
  EXPECT_EQ(v["supportedVersions"], json({"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}));
}

TEST(PluginBinaryTest, MalformedInputGivesErrorJsonNeverACrash) {
  const std::string add = "CNI_COMMAND=ADD CNI_CONTAINERID=c1 CNI_NETNS=/x CNI_IFNAME=eth0";
  const std::vector<std::tuple<std::string, std::string, int>> cases = {
      {"", kConfig, kInvalidEnvironment},
      {"CNI_COMMAND=ADD CNI_NETNS=/x CNI_IFNAME=eth0", kConfig, kInvalidEnvironment},
      {add, "", kDecodeFailure},
      {add, "{{{", kDecodeFailure},
      {add, std::string(5000, '['), kDecodeFailure},
      {add, R"({"cniVersion":"1.0.0","ipam":[]})", kInvalidConfig},
      {add, R"({"cniVersion":"1.0.0","ipam":{"range":"300.1.1.1/8"}})", kInvalidConfig},
      {add, R"({"cniVersion":"1.0.0","ipam":{"range":"10.0.0.0/8","routes":"x"}})", kInvalidConfig},
      {add, R"({"cniVersion":"9.9.9","ipam":{"range":"10.0.0.0/8"}})", kIncompatibleVersion},
      {"CNI_COMMAND=CHECK CNI_CONTAINERID=c1 CNI_NETNS=/x CNI_IFNAME=eth0",
       R"({"cniVersion":"1.0.0","ipam":{"range":"10.0.0.0/8"}})", kInvalidConfig},
      // No abode-node at the socket: try again later.
      {add, R"({"cniVersion":"1.0.0","ipam":{"range":"10.0.0.0/8","socket_path":"/nonexistent/x.sock"}})",
       kTryAgainLater},
  };
  for (const auto& [env, input, code] : cases) {
    Exec e = RunBinary(env, input);
    ASSERT_TRUE(WIFEXITED(e.status)) << env << " " << input.substr(0, 80);
    EXPECT_EQ(WEXITSTATUS(e.status), 1) << e.out;
    const json j = json::parse(e.out, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << e.out;
    EXPECT_EQ(j["code"], code) << env << " " << input.substr(0, 80) << "\n" << e.out;
    EXPECT_TRUE(j["msg"].is_string());
  }
}

// A stand-in for abode-node on a socket of its own: each connection gets the next of `replies`, which reads
// the request frame and answers it; what the plugin sent is kept.
class FakeNode {
 public:
  using Reply = std::function<std::string(const std::string& request)>;
  explicit FakeNode(std::vector<Reply> replies) : replies_(std::move(replies)) {
    path_ = ::testing::TempDir() + "/abode_fake_node_" + std::to_string(::getpid()) + ".sock";
    std::remove(path_.c_str());
    listener_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::snprintf(address.sun_path, sizeof address.sun_path, "%s", path_.c_str());
    EXPECT_EQ(::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    EXPECT_EQ(::listen(listener_, 8), 0);
    thread_ = std::thread([this] {
      for (const Reply& reply : replies_) {
        const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) return;
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        auto request = ReadFrame(fd, deadline);
        requests_.push_back(request.ok() ? *request : "");
        const std::string answer = reply(requests_.back());
        if (!answer.empty()) (void)WriteFrame(fd, answer, deadline);
        auto closing = ReadFrame(fd, deadline);
        closings_.push_back(closing.ok() ? DecodeClosing(*closing) : 0);
        ::close(fd);
      }
    });
  }
  ~FakeNode() {
    ::shutdown(listener_, SHUT_RDWR);
    thread_.join();
    ::close(listener_);
    std::remove(path_.c_str());
  }
  // Joins: every reply was used (or the listener closed). Then requests() and closings() are stable.
  void Wait() {
    if (thread_.joinable()) thread_.join();
    thread_ = std::thread([] {});
  }
  const std::string& path() const { return path_; }
  const std::vector<std::string>& requests() const { return requests_; }
  const std::vector<int64_t>& closings() const { return closings_; }

 private:
  std::vector<Reply> replies_;
  std::string path_;
  int listener_ = -1;
  std::thread thread_;
  std::vector<std::string> requests_;
  std::vector<int64_t> closings_;
};

std::string Escaped(const std::string& path) {
  std::string out;
  for (char c : path) out += c == '/' ? std::string("\\/") : std::string(1, c);
  return out;
}

constexpr char kAddEnv[] = "CNI_COMMAND=ADD CNI_CONTAINERID=c1 CNI_NETNS=/x CNI_IFNAME=eth0 HOME=/root";

#if defined(__x86_64__)
TEST(PluginBinaryTest, RelaysTheInvocationToTheNodeAndPrintsItsAnswer) {
  const std::string log = ::testing::TempDir() + "/abode_cni_relay.log";
  std::remove(log.c_str());
  FakeNode node({[&](const std::string&) { return EncodeOutput({3, "the node's answer\n", "[info] line\n", log}); }});
  // The socket path escaped, beside keys of the same name where they mean nothing.
  const std::string config = R"({"socket_path":"/nonexistent/a","cniVersion":"1.0.0","args":{"socket_path":"/b"},)"
                             R"("ipam":{"type":"abode","range":"10.0.0.0/8","exclude":["10.0.0.0/30"],)"
                             R"("timeout_ms":5000,"socket_path":")" + Escaped(node.path()) + R"("}})";
  Exec e = RunBinary(kAddEnv, config);
  node.Wait();
  ASSERT_TRUE(WIFEXITED(e.status));
  EXPECT_EQ(WEXITSTATUS(e.status), 3);
  EXPECT_EQ(e.out, "the node's answer\n");
  ASSERT_EQ(node.requests().size(), 1u);
  ASSERT_TRUE(IsInvocation(node.requests()[0]));
  auto invocation = DecodeInvocation(node.requests()[0]);
  ASSERT_TRUE(invocation.ok());
  EXPECT_EQ(invocation->stdin_text, config);
  // Only the CNI environment travels.
  EXPECT_EQ(invocation->env, (std::map<std::string, std::string>{{"CNI_COMMAND", "ADD"},
                                                                 {"CNI_CONTAINERID", "c1"},
                                                                 {"CNI_NETNS", "/x"},
                                                                 {"CNI_IFNAME", "eth0"}}));
  EXPECT_GT(invocation->start_unix_ns, 0);
  EXPECT_GE(node.closings().at(0), invocation->start_unix_ns);
  std::ifstream in(log);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str(), "[info] line\n");
}

TEST(PluginBinaryTest, ANodeWithoutTheRelayIsAskedTheOldWay) {
  FakeNode node({[](const std::string&) {
                   LocalResponse refused;
                   refused.error = CniError{kDecodeFailure, "local request: not a JSON object", ""};
                   return EncodeResponse(refused);
                 },
                 [](const std::string& request) {
                   LocalResponse r;
                   if (DecodeRequest(request).ok()) r.ips = {{"10.0.0.7", 8, "", "p"}};
                   return EncodeResponse(r);
                 }});
  Exec e = RunBinary(kAddEnv, R"({"cniVersion":"1.0.0","ipam":{"range":"10.0.0.0/8","socket_path":")" +
                                  node.path() + R"("}})");
  node.Wait();
  ASSERT_TRUE(WIFEXITED(e.status) && WEXITSTATUS(e.status) == 0) << e.out;
  EXPECT_EQ(json::parse(e.out)["ips"][0]["address"], "10.0.0.7/8");
  ASSERT_EQ(node.requests().size(), 2u);
  EXPECT_TRUE(IsInvocation(node.requests()[0]));
  EXPECT_EQ(DecodeRequest(node.requests()[1])->verb, "ADD");
}

TEST(PluginBinaryTest, ANodeThatDoesNotAnswerIsTryAgainLaterAndAskedOnce) {
  FakeNode node({[](const std::string&) { return std::string(); }});
  Exec e = RunBinary(kAddEnv, R"({"cniVersion":"1.0.0","ipam":{"range":"10.0.0.0/8","timeout_ms":200,)"
                              R"("socket_path":")" + node.path() + R"("}})");
  node.Wait();
  ASSERT_TRUE(WIFEXITED(e.status));
  EXPECT_EQ(WEXITSTATUS(e.status), 1);
  EXPECT_EQ(json::parse(e.out)["code"], kTryAgainLater) << e.out;
  EXPECT_EQ(node.requests().size(), 1u);
}

TEST(PluginBinaryTest, AMalformedAnswerIsADecodeFailure) {
  FakeNode node({[](const std::string&) { return EncodeOutput({0, "x", "", ""}) + "trailing"; }});
  Exec e = RunBinary(kAddEnv, R"({"cniVersion":"1.0.0","ipam":{"range":"10.0.0.0/8","socket_path":")" +
                                  node.path() + R"("}})");
  node.Wait();
  ASSERT_TRUE(WIFEXITED(e.status));
  EXPECT_EQ(WEXITSTATUS(e.status), 1);
  EXPECT_EQ(json::parse(e.out)["code"], kDecodeFailure) << e.out;
}
#endif  // defined(__x86_64__)

TEST(PluginBinaryTest, WritesItsLogFile) {
  const std::string log = ::testing::TempDir() + "/abode_cni_plugin.log";
  std::remove(log.c_str());
  Exec e = RunBinary("CNI_COMMAND=DEL CNI_CONTAINERID=c1 CNI_IFNAME=eth0",
                     R"({"cniVersion":"0.4.0","name":"n","ipam":{"type":"whereabouts","range":"10.0.0.0/8",
                         "etcd_host":"x","log_level":"debug","log_file":")" + log +
                         R"(","socket_path":"/nonexistent/x.sock"}})");
  EXPECT_EQ(WEXITSTATUS(e.status), 1);
  std::ifstream in(log);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_NE(text.str().find("ignoring whereabouts key ipam.etcd_host"), std::string::npos) << text.str();
  EXPECT_NE(text.str().find("[error] DEL c1 abode-node is not reachable"), std::string::npos) << text.str();
}

}  // namespace
}  // namespace abode::cni

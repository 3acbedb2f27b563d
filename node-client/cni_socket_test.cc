#include "cni_socket.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "cni/plugin.h"

namespace abode::node {
namespace {

using Clock = std::chrono::steady_clock;

class CniSocketTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("abode-cni-socket-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "cni.sock").string();
    auto server = CniSocketServer::Start(
        path_,
        [](const cni::LocalRequest& r) {
          cni::LocalResponse out;
          out.ips = {{"10.0.0.2", 24, "", r.container_id}};
          return out;
        },
        [this](const CniRequestRecord& r) {
          std::lock_guard lock(mu_);
          records_.push_back(r);
          cv_.notify_all();
        },
        4);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
  }
  void TearDown() override {
    server_.reset();
    std::filesystem::remove_all(dir_);
  }
  CniRequestRecord WaitRecord(size_t n) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return records_.size() >= n; });
    return records_[n - 1];
  }

  std::filesystem::path dir_;
  std::string path_;
  std::unique_ptr<CniSocketServer> server_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<CniRequestRecord> records_;
};

cni::LocalRequest Add(const std::string& container) {
  cni::LocalRequest r;
  r.verb = "ADD";
  r.container_id = container;
  r.ifname = "eth0";
  r.plugin_start_unix_ns = 1;  // long ago: the plugin's span is positive
  return r;
}

TEST_F(CniSocketTest, ServesARequestAndRecordsBothSpans) {
  struct stat st;
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto answer = cni::CallNodeOverSocket(path_, Add("c7"), Clock::now() + std::chrono::seconds(5));
  ASSERT_TRUE(answer.ok()) << answer.error().msg;
  ASSERT_EQ(answer->ips.size(), 1u);
  EXPECT_EQ(answer->ips[0].pool, "c7");
  const CniRequestRecord record = WaitRecord(1);
  EXPECT_EQ(record.verb, "ADD");
  EXPECT_EQ(record.code, 0);
  EXPECT_GT(record.plugin_seconds, 0);
}

UniqueFd Connect(const std::string& path);

TEST_F(CniSocketTest, ARelayedInvocationIsAnsweredWithThePluginsOutput) {
  cni::PluginEnvironment invocation;
  invocation.env = {{"CNI_COMMAND", "ADD"}, {"CNI_CONTAINERID", "c9"}, {"CNI_NETNS", "/x"}, {"CNI_IFNAME", "eth0"}};
  invocation.stdin_text = R"({"cniVersion":"0.4.0","name":"n","ipam":{"range":"10.0.0.0/24"}})";
  invocation.start_unix_ns = 1;
  UniqueFd fd = Connect(path_);
  ASSERT_TRUE(fd.valid());
  ASSERT_FALSE(cni::WriteFrame(fd.get(), cni::EncodeInvocation(invocation), Clock::now() + std::chrono::seconds(5)));
  auto frame = cni::ReadFrame(fd.get(), Clock::now() + std::chrono::seconds(5));
  ASSERT_TRUE(frame.ok()) << frame.error().msg;
  auto output = cni::DecodeOutput(*frame);
  ASSERT_TRUE(output.ok()) << output.error().msg;
  EXPECT_EQ(output->exit_code, 0) << output->stdout_text;
  // The handler's answer, in the result format of the configuration's version.
  EXPECT_NE(output->stdout_text.find(R"("address": "10.0.0.2/24")"), std::string::npos) << output->stdout_text;
  EXPECT_NE(output->stdout_text.find(R"("version": "4")"), std::string::npos) << output->stdout_text;
  ASSERT_FALSE(cni::WriteFrame(fd.get(), cni::EncodeClosing(2'000'000'001), Clock::now() + std::chrono::seconds(5)));
  const CniRequestRecord record = WaitRecord(1);
  EXPECT_EQ(record.verb, "ADD");
  EXPECT_EQ(record.code, 0);
  EXPECT_EQ(record.container_id, "c9");
  EXPECT_EQ(record.traceparent.size(), 55u);
  EXPECT_DOUBLE_EQ(record.plugin_seconds, 2.0);

  // A configuration error is the plugin's error JSON, and its code is what the metrics count.
  invocation.stdin_text = R"({"cniVersion":"0.4.0","ipam":{"range":"300.0.0.0/24"}})";
  fd = Connect(path_);
  ASSERT_FALSE(cni::WriteFrame(fd.get(), cni::EncodeInvocation(invocation), Clock::now() + std::chrono::seconds(5)));
  frame = cni::ReadFrame(fd.get(), Clock::now() + std::chrono::seconds(5));
  ASSERT_TRUE(frame.ok());
  output = cni::DecodeOutput(*frame);
  ASSERT_TRUE(output.ok());
  EXPECT_EQ(output->exit_code, 1);
  EXPECT_NE(output->stdout_text.find(R"("code": 7)"), std::string::npos) << output->stdout_text;
  fd.Reset();
  EXPECT_EQ(WaitRecord(2).code, cni::kInvalidConfig);

  // A truncated invocation: decode failure, as the plugin's output.
  fd = Connect(path_);
  const std::string whole = cni::EncodeInvocation(invocation);
  ASSERT_FALSE(cni::WriteFrame(fd.get(), whole.substr(0, cni::kInvocationMagicSize + 14),
                               Clock::now() + std::chrono::seconds(5)));
  frame = cni::ReadFrame(fd.get(), Clock::now() + std::chrono::seconds(5));
  ASSERT_TRUE(frame.ok());
  output = cni::DecodeOutput(*frame);
  ASSERT_TRUE(output.ok());
  EXPECT_EQ(output->exit_code, 1);
  EXPECT_NE(output->stdout_text.find(R"("code": 6)"), std::string::npos) << output->stdout_text;
}

UniqueFd Connect(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) return UniqueFd();
  return fd;
}

TEST_F(CniSocketTest, MalformedRequestsAreAnsweredWithAnError) {
  for (const char* payload : {"not json", R"({"verb":"FROB"})"}) {
    UniqueFd fd = Connect(path_);
    ASSERT_TRUE(fd.valid());
    ASSERT_FALSE(cni::WriteFrame(fd.get(), payload, Clock::now() + std::chrono::seconds(5)).has_value());
    auto frame = cni::ReadFrame(fd.get(), Clock::now() + std::chrono::seconds(5));
    ASSERT_TRUE(frame.ok()) << frame.error().msg;
    auto response = cni::DecodeResponse(*frame);
    ASSERT_TRUE(response.ok());
    ASSERT_TRUE(response->error.has_value());
    EXPECT_EQ(response->error->code, cni::kDecodeFailure);
  }
  // A frame header announcing more than the limit.
  UniqueFd fd = Connect(path_);
  const unsigned char header[4] = {0x10, 0, 0, 0};
  ASSERT_EQ(::write(fd.get(), header, 4), 4);
  auto frame = cni::ReadFrame(fd.get(), Clock::now() + std::chrono::seconds(5));
  ASSERT_TRUE(frame.ok());
  EXPECT_EQ(cni::DecodeResponse(*frame)->error->code, cni::kDecodeFailure);
  EXPECT_EQ(WaitRecord(3).verb, "");
}

TEST_F(CniSocketTest, ClientsThatAreNotRootAreRefusedEvenWhenTheFileIsOpen) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to run a client as another user";
  ASSERT_EQ(::chmod(path_.c_str(), 0666), 0);
  ASSERT_EQ(::chmod(dir_.c_str(), 0755), 0);
  const pid_t child = ::fork();
  if (child == 0) {
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(10);
    auto response = cni::CallNodeOverSocket(path_, Add("c1"), Clock::now() + std::chrono::seconds(5));
    if (!response.ok()) ::_exit(13);
    ::_exit(response->error && response->error->code == cni::kInvalidEnvironment ? 0 : 14);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST_F(CniSocketTest, AnotherKindOfFileAtThePathIsNotReplaced) {
  const std::string plain = (dir_ / "plain").string();
  std::ofstream(plain) << "keep";
  auto server = CniSocketServer::Start(plain, {}, {}, 1);
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(std::filesystem::is_regular_file(plain));
}

TEST_F(CniSocketTest, ConcurrentClientsAreAllServed) {
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  for (int i = 0; i < 16; ++i) {
    clients.emplace_back([&, i] {
      auto answer = cni::CallNodeOverSocket(path_, Add("c" + std::to_string(i)), Clock::now() + std::chrono::seconds(10));
      if (answer.ok() && answer->ips.size() == 1 && answer->ips[0].pool == "c" + std::to_string(i)) ++ok;
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(ok.load(), 16);
}

}  // namespace
}  // namespace abode::node

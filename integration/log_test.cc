// The daemons' log as a real process writes it: --log-level and --log-format refuse unknown values naming the
// flag, SIGUSR1/SIGUSR2 change a running allocator's level, and JSON mode writes one JSON object per line.
#include <signal.h>

#include <chrono>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "abode/v1/allocator.grpc.pb.h"
#include "abode/v1/pools.grpc.pb.h"
#include "integration/allocator_process.h"
#include "integration/cluster_harness.h"
#include "nlohmann/json.hpp"
#include "test-support/eventually.h"
#include "test-support/temp_dir.h"

namespace abode::integration {
namespace {

using test_support::TempDir;

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Waits until the process's log holds `text`.
bool LogShows(const AllocatorProcess& process, const std::string& text) {
  return test_support::Eventually([&] { return Slurp(process.log_path()).find(text) != std::string::npos; },
                                  std::chrono::seconds(30));
}

TEST(LogFlagsTest, UnknownLevelsAndFormatsAreRefusedNamingTheFlag) {
  TempDir dir;
  const std::vector<std::vector<std::string>> bad = {{"--log-format=xml"}, {"--log-format", "JSON"},
                                                     {"--log-level=loud"}, {"--log-level", ""}};
  for (const auto& flags : bad) {
    const std::string flag = flags[0].substr(0, flags[0].find('='));
    std::vector<std::string> allocator = {ABODE_ALLOCATOR_BIN, "--listen", "127.0.0.1:0", "--data-dir",
                                          dir.path() + "/data"};
    allocator.insert(allocator.end(), flags.begin(), flags.end());
    const ProcessResult a = RunProcess(allocator);
    EXPECT_NE(a.exit_code, 0) << flags[0];
    EXPECT_NE(a.err.find(flag), std::string::npos) << flags[0] << ": " << a.err;
    // Refused before anything starts.
    EXPECT_FALSE(std::filesystem::exists(dir.path() + "/data")) << flags[0];

    std::vector<std::string> node = {ABODE_NODE_BIN, "--node", "n1", "--allocator", "127.0.0.1:1"};
    node.insert(node.end(), flags.begin(), flags.end());
    const ProcessResult n = RunProcess(node);
    EXPECT_NE(n.exit_code, 0) << flags[0];
    EXPECT_NE(n.err.find(flag), std::string::npos) << flags[0] << ": " << n.err;
  }
}

TEST(LogLevelSignalsTest, Sigusr1AndSigusr2ChangeARunningAllocatorsLevel) {
  TempDir dir;
  AllocatorProcess allocator(ABODE_ALLOCATOR_BIN, dir.path() + "/data", {"--log-level", "warn"});
  ASSERT_TRUE(allocator.Start().ok()) << Slurp(allocator.log_path());
  // The "serving" line (info) is written before the port file that Start waits for: at warn it is not there.
  EXPECT_EQ(Slurp(allocator.log_path()).find("serving gRPC"), std::string::npos);

  ASSERT_EQ(::kill(allocator.pid(), SIGUSR1), 0);
  ASSERT_TRUE(LogShows(allocator, "log level is now info, was warn (SIGUSR1)")) << Slurp(allocator.log_path());
  ASSERT_EQ(::kill(allocator.pid(), SIGUSR1), 0);
  ASSERT_TRUE(LogShows(allocator, "log level is now debug, was info (SIGUSR1)"));
  ASSERT_EQ(::kill(allocator.pid(), SIGUSR2), 0);
  ASSERT_TRUE(LogShows(allocator, "log level is now info, was debug (SIGUSR2)"));
  // At info, the shutdown's info line is written.
  ASSERT_TRUE(allocator.Stop());
  EXPECT_NE(Slurp(allocator.log_path()).find("shutting down"), std::string::npos) << Slurp(allocator.log_path());
}

TEST(LogLevelSignalsTest, Sigusr2SilencesInfoLinesOfARunningAllocator) {
  TempDir dir;
  AllocatorProcess allocator(ABODE_ALLOCATOR_BIN, dir.path() + "/data", {"--log-level", "info"});
  ASSERT_TRUE(allocator.Start().ok()) << Slurp(allocator.log_path());
  EXPECT_NE(Slurp(allocator.log_path()).find("serving gRPC"), std::string::npos);
  ASSERT_EQ(::kill(allocator.pid(), SIGUSR2), 0);
  ASSERT_TRUE(LogShows(allocator, "log level is now warn, was info (SIGUSR2)")) << Slurp(allocator.log_path());
  // A clean exit at warn: its info line is not written.
  ASSERT_TRUE(allocator.Stop());
  EXPECT_EQ(Slurp(allocator.log_path()).find("shutting down"), std::string::npos) << Slurp(allocator.log_path());
}

TEST(JsonLogTest, EveryLineOfARunningAllocatorIsAJsonObject) {
  TempDir dir;
  AllocatorProcess allocator(ABODE_ALLOCATOR_BIN, dir.path() + "/data", {"--log-format=json", "--log-level=debug"});
  ASSERT_TRUE(allocator.Start().ok()) << Slurp(allocator.log_path());
  auto channel = grpc::CreateChannel(allocator.address(), grpc::InsecureChannelCredentials());
  {
    grpc::ClientContext ctx;
    v1::CreatePoolRequest req;
    req.mutable_pool()->set_name("pods");
    req.mutable_pool()->set_cidr("10.9.0.0/24");
    req.mutable_pool()->set_purpose(v1::POOL_PURPOSE_WORKLOAD);
    v1::Pool pool;
    ASSERT_TRUE(v1::Pools::NewStub(channel)->CreatePool(&ctx, req, &pool).ok());
  }
  {
    grpc::ClientContext ctx;
    v1::AllocateRequest req;
    req.set_pool("pods");
    req.set_owner("pod/a");
    v1::Allocation allocation;
    ASSERT_TRUE(v1::Allocator::NewStub(channel)->Allocate(&ctx, req, &allocation).ok());
  }
  ASSERT_EQ(::kill(allocator.pid(), SIGUSR1), 0);
  ASSERT_TRUE(LogShows(allocator, "log level is now trace, was debug (SIGUSR1)"));
  ASSERT_TRUE(allocator.Stop());

  const std::regex rfc3339(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z)");
  std::istringstream lines(Slurp(allocator.log_path()));
  std::vector<std::string> messages;
  for (std::string line; std::getline(lines, line);) {
    nlohmann::json parsed;
    try {
      parsed = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      ADD_FAILURE() << "not JSON: " << line << " (" << e.what() << ")";
      continue;
    }
    ASSERT_TRUE(parsed.is_object()) << line;
    EXPECT_TRUE(std::regex_match(parsed.value("time", ""), rfc3339)) << line;
    EXPECT_EQ(parsed.value("logger", ""), "abode-allocator") << line;
    EXPECT_FALSE(parsed.value("level", "").empty()) << line;
    messages.push_back(parsed.value("message", ""));
  }
  const auto has = [&](const std::string& text) {
    for (const std::string& m : messages) {
      if (m.find(text) != std::string::npos) return true;
    }
    return false;
  };
  EXPECT_TRUE(has("serving gRPC on port"));
  EXPECT_TRUE(has("log level is now trace, was debug (SIGUSR1)"));
  EXPECT_TRUE(has("shutting down"));
}

}  // namespace
}  // namespace abode::integration

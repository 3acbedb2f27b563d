// The real abodectl binary against a real abode-allocator on a loopback port: what an operator sees.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include <grpcpp/create_channel.h>

#include "abode/v1/nodes.grpc.pb.h"
#include "integration/allocator_process.h"
#include "test-support/eventually.h"

namespace abode::cli {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

struct ProcessResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Starts `argv` with stdout and stderr sent to fresh files; returns its pid, or -1.
pid_t Spawn(const std::vector<std::string>& argv, const std::filesystem::path& out_path,
            const std::filesystem::path& err_path) {
  std::filesystem::remove(out_path);
  std::filesystem::remove(err_path);
  return integration::SpawnProcess(argv, out_path.string(), err_path.string());
}

int WaitForExit(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

// A port on loopback that nothing listens on: bound, read, and closed again.
int UnusedPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof(address);
  bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  close(fd);
  return ntohs(address.sin_port);
}

class AbodectlE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    work_dir_ = new std::filesystem::path(std::filesystem::path(::testing::TempDir()) /
                                          ("abodectl_e2e." + std::to_string(getpid())));
    std::filesystem::remove_all(*work_dir_);
    std::filesystem::create_directories(*work_dir_ / "data");
    server_process_ = new integration::AllocatorProcess(ABODE_ALLOCATOR_PATH, (*work_dir_ / "data").string());
    if (server_process_->Start().ok()) server_ = new std::string(server_process_->address());
  }

  static void TearDownTestSuite() {
    if (server_process_ != nullptr) server_process_->Stop();
    delete server_process_;
    server_process_ = nullptr;
    delete server_;
    server_ = nullptr;
    if (work_dir_ != nullptr) std::filesystem::remove_all(*work_dir_);
    delete work_dir_;
    work_dir_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(server_, nullptr) << "abode-allocator did not start; its log:\n"
                                << ReadFile(server_process_->log_path());
  }

  // Runs abodectl against the test server.
  static ProcessResult Abodectl(std::vector<std::string> args) {
    args.insert(args.begin(), {"--server", *server_});
    return AbodectlRaw(std::move(args));
  }

  static ProcessResult AbodectlRaw(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {ABODECTL_PATH};
    argv.insert(argv.end(), args.begin(), args.end());
    const std::filesystem::path out_path = *work_dir_ / "abodectl.out";
    const std::filesystem::path err_path = *work_dir_ / "abodectl.err";
    ProcessResult result;
    const pid_t pid = Spawn(argv, out_path, err_path);
    if (pid < 0) return result;
    result.exit_code = WaitForExit(pid);
    result.out = ReadFile(out_path);
    result.err = ReadFile(err_path);
    return result;
  }

  // Runs abodectl with -o json; it must succeed with parsable output.
  static nlohmann::json Json(std::vector<std::string> args) {
    args.insert(args.begin(), {"-o", "json"});
    const ProcessResult result = Abodectl(args);
    EXPECT_EQ(result.exit_code, 0) << ::testing::PrintToString(args) << "\n" << result.err;
    return nlohmann::json::parse(result.out, nullptr, /*allow_exceptions=*/false);
  }

  static void CreatePool(const std::string& name, const std::string& cidr) {
    const ProcessResult result = Abodectl({"pool", "create", name, "--cidr", cidr});
    ASSERT_EQ(result.exit_code, 0) << result.err;
  }

  static std::filesystem::path* work_dir_;
  static std::string* server_;
  static integration::AllocatorProcess* server_process_;
};

std::filesystem::path* AbodectlE2eTest::work_dir_ = nullptr;
std::string* AbodectlE2eTest::server_ = nullptr;
integration::AllocatorProcess* AbodectlE2eTest::server_process_ = nullptr;

TEST_F(AbodectlE2eTest, PoolCreateListGetDelete) {
  ProcessResult created = Abodectl({"pool", "create", "e2e-pools", "--cidr", "10.77.0.0/24", "--gateway", "10.77.0.1",
                                    "--exclude", "10.77.0.128/25", "--strategy", "sequential"});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  EXPECT_THAT(created.out, HasSubstr("e2e-pools"));

  const nlohmann::json pools = Json({"pool", "list"});
  ASSERT_TRUE(pools.is_array());
  bool listed = false;
  for (const nlohmann::json& pool : pools) {
    if (pool["name"] == "e2e-pools") {
      listed = true;
      EXPECT_TRUE(pool["size"].is_number());
      EXPECT_EQ(pool["used"], 0);
    }
  }
  EXPECT_TRUE(listed) << pools.dump();
  const ProcessResult table = Abodectl({"pool", "list"});
  EXPECT_THAT(table.out, StartsWith("NAME"));
  EXPECT_THAT(table.out, HasSubstr("UTILIZATION"));
  EXPECT_THAT(table.out, HasSubstr("10.77.0.0/24"));

  const nlohmann::json pool = Json({"pool", "get", "e2e-pools"});
  EXPECT_EQ(pool["name"], "e2e-pools");
  EXPECT_EQ(pool["cidr"], "10.77.0.0/24");
  EXPECT_EQ(pool["gateway"], "10.77.0.1");
  EXPECT_EQ(pool["exclude"], nlohmann::json::array({"10.77.0.128/25"}));
  EXPECT_EQ(pool["strategy"], "sequential");
  EXPECT_TRUE(pool["size"].is_number());
  EXPECT_TRUE(pool["free"].is_number());
  EXPECT_EQ(pool["utilization"], 0.0);

  const ProcessResult deleted = Abodectl({"pool", "delete", "e2e-pools"});
  EXPECT_EQ(deleted.exit_code, 0) << deleted.err;
  const ProcessResult missing = Abodectl({"pool", "get", "e2e-pools"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_THAT(missing.err, StartsWith("error: NOT_FOUND: "));
}

TEST_F(AbodectlE2eTest, AllocateIsIdempotentAndARequestedAddressCanBeTaken) {
  CreatePool("e2e-alloc", "10.78.0.0/24");
  const nlohmann::json first = Json({"allocate", "--pool", "e2e-alloc", "--owner", "owner-1", "--node", "n1"});
  const nlohmann::json again = Json({"allocate", "--pool", "e2e-alloc", "--owner", "owner-1", "--node", "n1"});
  ASSERT_TRUE(first.is_object());
  EXPECT_EQ(first["address"], again["address"]);
  EXPECT_EQ(first["owner"], "owner-1");
  EXPECT_EQ(first["pool"], "e2e-alloc");
  EXPECT_EQ(first["node"], "n1");
  EXPECT_EQ(first["prefix_length"], 24);
  EXPECT_TRUE(first["expire_time"].is_null());
  EXPECT_TRUE(first["revision"].is_number());

  const ProcessResult taken = Abodectl(
      {"allocate", "--pool", "e2e-alloc", "--owner", "owner-2", "--address", first["address"].get<std::string>()});
  EXPECT_EQ(taken.exit_code, 1);
  EXPECT_THAT(taken.err, StartsWith("error: ALREADY_EXISTS: "));
  EXPECT_TRUE(taken.out.empty());

  const nlohmann::json used = Json({"pool", "get", "e2e-alloc"});
  EXPECT_EQ(used["used"], 1);
  EXPECT_GT(used["utilization"].get<double>(), 0);
}

TEST_F(AbodectlE2eTest, ReleaseByOwnerAndByAddress) {
  CreatePool("e2e-release", "10.79.0.0/24");
  const nlohmann::json by_owner = Json({"allocate", "--pool", "e2e-release", "--owner", "owner-a"});
  const nlohmann::json released = Json({"release", "--owner", "owner-a"});
  ASSERT_TRUE(released.is_array());
  ASSERT_EQ(released.size(), 1u);
  EXPECT_EQ(released[0]["address"], by_owner["address"]);
  EXPECT_EQ(Json({"list", "--owner", "owner-a"}), nlohmann::json::array());

  const nlohmann::json by_address =
      Json({"allocate", "--pool", "e2e-release", "--owner", "owner-b", "--address", "10.79.0.50"});
  EXPECT_EQ(by_address["address"], "10.79.0.50");
  const nlohmann::json released_address = Json({"release", "--address", "10.79.0.50", "--pool", "e2e-release"});
  ASSERT_EQ(released_address.size(), 1u);
  EXPECT_EQ(released_address[0]["owner"], "owner-b");

  // Release is idempotent: nothing left, nothing printed but an empty list.
  EXPECT_EQ(Json({"release", "--owner", "owner-b"}), nlohmann::json::array());
  const ProcessResult both = Abodectl({"release", "--owner", "x", "--address", "10.79.0.50"});
  EXPECT_EQ(both.exit_code, 2);
}

TEST_F(AbodectlE2eTest, ListWithFilters) {
  CreatePool("e2e-list", "10.80.0.0/24");
  Json({"allocate", "--pool", "e2e-list", "--owner", "web-1", "--node", "node-1", "--label", "app=web"});
  Json({"allocate", "--pool", "e2e-list", "--owner", "web-2", "--node", "node-2", "--label", "app=web"});
  Json({"allocate", "--pool", "e2e-list", "--owner", "db-1", "--node", "node-1", "--label", "app=db", "--label",
        "tier=data"});

  EXPECT_EQ(Json({"list", "--pool", "e2e-list"}).size(), 3u);
  const nlohmann::json on_node = Json({"list", "--pool", "e2e-list", "--node", "node-1"});
  EXPECT_EQ(on_node.size(), 2u);
  const nlohmann::json db = Json({"list", "--pool", "e2e-list", "--selector", "app=db,tier=data"});
  ASSERT_EQ(db.size(), 1u);
  EXPECT_EQ(db[0]["owner"], "db-1");
  EXPECT_EQ(db[0]["labels"], (nlohmann::json{{"app", "db"}, {"tier", "data"}}));
  EXPECT_EQ(Json({"list", "--pool", "e2e-list", "--owner", "web-2"}).size(), 1u);
  EXPECT_EQ(Json({"list", "--pool", "e2e-list", "--limit", "2"}).size(), 2u);

  const ProcessResult table = Abodectl({"list", "--pool", "e2e-list"});
  EXPECT_EQ(table.exit_code, 0);
  EXPECT_THAT(table.out, StartsWith("ADDRESS"));
  EXPECT_THAT(table.out, HasSubstr("app=db,tier=data"));
}

TEST_F(AbodectlE2eTest, HistoryShowsHoldersNewestFirst) {
  CreatePool("e2e-history", "10.81.0.0/24");
  Json({"allocate", "--pool", "e2e-history", "--owner", "first", "--address", "10.81.0.7"});
  Json({"release", "--owner", "first"});
  Json({"allocate", "--pool", "e2e-history", "--owner", "second", "--address", "10.81.0.7"});

  const nlohmann::json history = Json({"history", "--address", "10.81.0.7", "--pool", "e2e-history"});
  ASSERT_TRUE(history.is_array());
  ASSERT_EQ(history.size(), 2u) << history.dump();
  EXPECT_EQ(history[0]["owner"], "second");
  EXPECT_TRUE(history[0]["to"].is_null());
  EXPECT_EQ(history[1]["owner"], "first");
  EXPECT_TRUE(history[1]["to"].is_string());
  EXPECT_EQ(history[1]["reason"], "released");
  EXPECT_EQ(history[1]["address"], "10.81.0.7");

  // At the instant the first holder began, only it held the address.
  const nlohmann::json then = Json(
      {"history", "--address", "10.81.0.7", "--pool", "e2e-history", "--at", history[1]["from"].get<std::string>()});
  ASSERT_EQ(then.size(), 1u) << then.dump();
  EXPECT_EQ(then[0]["owner"], "first");

  const ProcessResult table = Abodectl({"history", "--address", "10.81.0.7", "--pool", "e2e-history"});
  EXPECT_THAT(table.out, StartsWith("OWNER"));
  EXPECT_THAT(table.out, HasSubstr("released"));
}

TEST_F(AbodectlE2eTest, ClusterStatusOnASingleNodeShowsItLeading) {
  const nlohmann::json status = Json({"cluster", "status"});
  ASSERT_TRUE(status.is_object()) << status.dump();
  ASSERT_EQ(status["members"].size(), 1u) << status.dump();
  EXPECT_EQ(status["role"], "leader");
  EXPECT_GT(status["leader_id"].get<std::uint64_t>(), 0u);
  EXPECT_EQ(status["leader_id"], status["member_id"]);
  EXPECT_EQ(status["members"][0]["id"], status["leader_id"]);
  EXPECT_EQ(status["members"][0]["role"], "leader");
  EXPECT_TRUE(status["members"][0]["address"].is_string());
  EXPECT_GE(status["commit_index"].get<std::uint64_t>(), status["applied_index"].get<std::uint64_t>());

  const ProcessResult table = Abodectl({"cluster", "status"});
  EXPECT_EQ(table.exit_code, 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr(": leader, term "));
  EXPECT_THAT(table.out, HasSubstr("*"));

  const nlohmann::json checksum = Json({"cluster", "checksum"});
  EXPECT_EQ(checksum["member_id"], status["member_id"]);
  EXPECT_EQ(checksum["checksum"].get<std::string>().size(), 16u);
}

TEST_F(AbodectlE2eTest, ExternalAddressCreateListDelete) {
  ASSERT_EQ(Abodectl({"pool", "create", "e2e-public", "--cidr", "203.0.113.0/24", "--purpose", "external"}).exit_code,
            0);
  const nlohmann::json created = Json({"external", "create", "e2e-web", "--pool", "e2e-public", "--address",
                                       "203.0.113.7", "--node-selector", "edge=true"});
  EXPECT_EQ(created["name"], "e2e-web");
  EXPECT_EQ(created["address"], "203.0.113.7");
  EXPECT_EQ(created["pool"], "e2e-public");
  EXPECT_EQ(created["node_selector"], "edge=true");
  EXPECT_TRUE(created["node"].is_null());  // no ready node carries the edge label

  const nlohmann::json listed = Json({"external", "list"});
  ASSERT_TRUE(listed.is_array());
  bool found = false;
  for (const nlohmann::json& address : listed) found = found || address["name"] == "e2e-web";
  EXPECT_TRUE(found) << listed.dump();
  const ProcessResult table = Abodectl({"external", "list"});
  EXPECT_THAT(table.out, StartsWith("NAME"));
  EXPECT_THAT(table.out, HasSubstr("203.0.113.7"));

  const ProcessResult deleted = Abodectl({"external", "delete", "e2e-web"});
  EXPECT_EQ(deleted.exit_code, 0) << deleted.err;
  EXPECT_EQ(deleted.out, "external address \"e2e-web\" deleted\n");
  const ProcessResult missing = Abodectl({"external", "get", "e2e-web"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_THAT(missing.err, StartsWith("error: NOT_FOUND: "));
}

TEST_F(AbodectlE2eTest, MagicAddressOutsideLinkLocalIsRefused) {
  const ProcessResult refused = Abodectl(
      {"magic", "create", "e2e-magic", "--address", "10.0.0.1", "--port", "8125/udp", "--selector", "app=dd-agent"});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_THAT(refused.err, StartsWith("error: INVALID_ARGUMENT: "));
  EXPECT_THAT(refused.err, HasSubstr("link-local"));
  EXPECT_TRUE(refused.out.empty());
}

TEST_F(AbodectlE2eTest, ElasticAddressAssociatedWithAnAllocation) {
  ASSERT_EQ(Abodectl({"pool", "create", "e2e-eip", "--cidr", "198.51.100.0/24", "--purpose", "external"}).exit_code, 0);
  CreatePool("e2e-eip-pods", "10.82.0.0/24");
  const nlohmann::json workload =
      Json({"allocate", "--pool", "e2e-eip-pods", "--owner", "e2e-eip-workload", "--node", "n1"});
  const nlohmann::json created = Json({"elastic", "create", "e2e-eip-1", "--pool", "e2e-eip"});
  EXPECT_EQ(created["name"], "e2e-eip-1");
  EXPECT_TRUE(created["association"].is_null());

  const nlohmann::json associated = Json({"elastic", "associate", "e2e-eip-1", "--owner", "e2e-eip-workload"});
  EXPECT_EQ(associated["association"]["owner"], "e2e-eip-workload");
  const nlohmann::json got = Json({"elastic", "get", "e2e-eip-1"});
  EXPECT_EQ(got["address"], created["address"]);
  EXPECT_EQ(got["association"]["owner"], "e2e-eip-workload");
  EXPECT_EQ(got["workload_address"], workload["address"]);
  EXPECT_EQ(got["workload_owner"], "e2e-eip-workload");
  EXPECT_EQ(got["node"], "n1");

  const ProcessResult table = Abodectl({"elastic", "get", "e2e-eip-1"});
  EXPECT_THAT(table.out, HasSubstr("owner e2e-eip-workload"));
}

TEST_F(AbodectlE2eTest, NodesList) {
  const nlohmann::json nodes = Json({"nodes"});
  EXPECT_TRUE(nodes.is_array()) << nodes.dump();
  const ProcessResult table = Abodectl({"nodes", "list"});
  EXPECT_EQ(table.exit_code, 0) << table.err;
  EXPECT_THAT(table.out, StartsWith("NAME"));
  EXPECT_THAT(table.out, HasSubstr("CARRIES"));
}

// Whether `nodes get NAME` shows the node with `connected`.
bool NodeConnected(const ProcessResult& got, bool connected) {
  if (got.exit_code != 0) return false;
  const nlohmann::json node = nlohmann::json::parse(got.out, nullptr, /*allow_exceptions=*/false);
  return node.is_object() && node["ready"] == true && node["connected"] == connected;
}

TEST_F(AbodectlE2eTest, NodesDeleteDecommissionsANodeAndRecordsTheReason) {
  CreatePool("e2e-decom", "10.83.0.0/24");
  // A node client's stream registers the node and keeps it connected.
  auto nodes = v1::Nodes::NewStub(grpc::CreateChannel(*server_, grpc::InsecureChannelCredentials()));
  auto stream_ctx = std::make_unique<grpc::ClientContext>();
  auto stream = nodes->WatchAssignments(stream_ctx.get());
  v1::WatchAssignmentsRequest start;
  start.mutable_start()->set_node("e2e-n1");
  start.mutable_start()->mutable_registration()->set_name("e2e-n1");
  ASSERT_TRUE(stream->Write(start));
  ASSERT_TRUE(test_support::Eventually(
      [] { return NodeConnected(Abodectl({"-o", "json", "nodes", "get", "e2e-n1"}), true); },
      std::chrono::seconds(10)));
  const nlohmann::json pod = Json({"allocate", "--pool", "e2e-decom", "--owner", "e2e-decom-pod", "--node", "e2e-n1"});
  Json({"allocate", "--pool", "e2e-decom", "--owner", "e2e-decom-elsewhere", "--node", "e2e-n2"});

  const ProcessResult refused = Abodectl({"nodes", "delete", "e2e-n1", "--reason", "rack retired"});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_THAT(refused.err, HasSubstr("FAILED_PRECONDITION"));
  EXPECT_THAT(refused.err, HasSubstr("connected"));

  const ProcessResult deleted = Abodectl({"nodes", "delete", "e2e-n1", "--reason", "rack retired", "--force"});
  ASSERT_EQ(deleted.exit_code, 0) << deleted.err;
  EXPECT_EQ(deleted.out, "node \"e2e-n1\" deleted; 1 allocation released (" + pod["address"].get<std::string>() +
                             ")\n");
  stream_ctx->TryCancel();
  stream->Finish().IgnoreError();

  const nlohmann::json history =
      Json({"history", "--address", pod["address"].get<std::string>(), "--pool", "e2e-decom"});
  ASSERT_EQ(history.size(), 1u) << history.dump();
  EXPECT_EQ(history[0]["owner"], "e2e-decom-pod");
  EXPECT_EQ(history[0]["reason"], "node e2e-n1 decommissioned: rack retired");
  const nlohmann::json left = Json({"list", "--pool", "e2e-decom"});
  ASSERT_EQ(left.size(), 1u) << left.dump();
  EXPECT_EQ(left[0]["owner"], "e2e-decom-elsewhere");

  const ProcessResult gone = Abodectl({"nodes", "delete", "e2e-n1"});
  EXPECT_EQ(gone.exit_code, 1);
  EXPECT_THAT(gone.err, HasSubstr("NOT_FOUND"));
}

TEST_F(AbodectlE2eTest, LabelEditsAnOwnersLabelsAndANodesSetLabels) {
  CreatePool("e2e-label", "10.84.0.0/24");
  Json({"allocate", "--pool", "e2e-label", "--owner", "e2e-label-pod", "--label", "app=web", "--label",
        "tier=front", "--label", "keep=me"});
  const nlohmann::json labelled =
      Json({"label", "--owner", "e2e-label-pod", "app=db", "zone=a", "--remove", "tier"});
  ASSERT_EQ(labelled.size(), 1u) << labelled.dump();
  EXPECT_EQ(labelled[0]["labels"], (nlohmann::json{{"app", "db"}, {"keep", "me"}, {"zone", "a"}}));
  const nlohmann::json selected = Json({"list", "--selector", "app=db,zone=a"});
  ASSERT_EQ(selected.size(), 1u) << selected.dump();
  EXPECT_EQ(selected[0]["owner"], "e2e-label-pod");

  const ProcessResult nobody = Abodectl({"label", "--owner", "e2e-label-nobody", "app=db"});
  EXPECT_EQ(nobody.exit_code, 1);
  EXPECT_THAT(nobody.err, StartsWith("error: NOT_FOUND: "));
  const ProcessResult bad = Abodectl({"label", "--owner", "e2e-label-pod", "Bad Key=x"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_THAT(bad.err, StartsWith("error: INVALID_ARGUMENT: "));
  EXPECT_THAT(bad.err, HasSubstr("labels"));
  const ProcessResult usage = Abodectl({"label", "--owner", "e2e-label-pod"});
  EXPECT_EQ(usage.exit_code, 2);
  EXPECT_THAT(usage.err, HasSubstr("give at least one KEY=VALUE to set or --remove KEY"));

  // A node registers (its node client's stream) with a reported label; set labels go beside it.
  auto nodes = v1::Nodes::NewStub(grpc::CreateChannel(*server_, grpc::InsecureChannelCredentials()));
  auto stream_ctx = std::make_unique<grpc::ClientContext>();
  auto stream = nodes->WatchAssignments(stream_ctx.get());
  v1::WatchAssignmentsRequest start;
  start.mutable_start()->set_node("e2e-label-n1");
  start.mutable_start()->mutable_registration()->set_name("e2e-label-n1");
  (*start.mutable_start()->mutable_registration()->mutable_labels())["reported"] = "yes";
  ASSERT_TRUE(stream->Write(start));
  ASSERT_TRUE(test_support::Eventually(
      [] { return Abodectl({"nodes", "get", "e2e-label-n1"}).exit_code == 0; }, std::chrono::seconds(10)));
  Json({"nodes", "label", "e2e-label-n1", "edge=true", "rack=r1"});
  const nlohmann::json node = Json({"nodes", "label", "e2e-label-n1", "rack=r2", "--remove", "edge"});
  EXPECT_EQ(node["set_labels"], (nlohmann::json{{"rack", "r2"}}));
  EXPECT_EQ(node["labels"], (nlohmann::json{{"reported", "yes"}}));
  const nlohmann::json matched = Json({"nodes", "--selector", "rack=r2,reported=yes"});
  ASSERT_EQ(matched.size(), 1u) << matched.dump();
  EXPECT_EQ(matched[0]["name"], "e2e-label-n1");
  stream_ctx->TryCancel();
  stream->Finish().IgnoreError();

  const ProcessResult unknown = Abodectl({"nodes", "label", "e2e-label-n9", "rack=r1"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_THAT(unknown.err, StartsWith("error: NOT_FOUND: "));
}

TEST_F(AbodectlE2eTest, WatchPrintsTheSnapshotFirst) {
  const ProcessResult watched = Abodectl({"watch", "--count", "1", "--node", "n1"});
  EXPECT_EQ(watched.exit_code, 0) << watched.err;
  EXPECT_THAT(watched.out, StartsWith("revision "));
  EXPECT_THAT(watched.out, HasSubstr(" snapshot "));
  EXPECT_EQ(std::count(watched.out.begin(), watched.out.end(), '\n'), 1);

  const nlohmann::json line = Json({"watch", "--count", "1", "--node", "n1"});
  EXPECT_EQ(line["snapshot"], true);
  EXPECT_TRUE(line["revision"].is_number());
  EXPECT_GT(line["lease_ms"].get<std::int64_t>(), 0);
  EXPECT_TRUE(line["assignments"].is_array());
}

TEST(AbodectlE2eNoServerTest, UnreachableServerIsUnavailableWithinTheDeadline) {
  const std::filesystem::path dir =
      std::filesystem::path(::testing::TempDir()) / ("abodectl_e2e_noserver." + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const auto start = std::chrono::steady_clock::now();
  const pid_t pid =
      Spawn({ABODECTL_PATH, "--server", "127.0.0.1:" + std::to_string(UnusedPort()), "--timeout", "3", "pool", "list"},
            dir / "out", dir / "err");
  ASSERT_GT(pid, 0);
  const int exit_code = WaitForExit(pid);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_NE(exit_code, 0);
  EXPECT_THAT(ReadFile(dir / "err"), StartsWith("error: UNAVAILABLE: "));
  EXPECT_LT(elapsed, std::chrono::seconds(6));
  std::filesystem::remove_all(dir);
}

TEST(AbodectlE2eNoServerTest, EndlessWatchOfAnUnreachableServerFailsWithinTheTimeout) {
  const std::filesystem::path dir =
      std::filesystem::path(::testing::TempDir()) / ("abodectl_e2e_nowatch." + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const auto start = std::chrono::steady_clock::now();
  const pid_t pid = Spawn({ABODECTL_PATH, "--server", "127.0.0.1:" + std::to_string(UnusedPort()), "--timeout", "2",
                           "watch", "--node", "n1"},
                          dir / "out", dir / "err");
  ASSERT_GT(pid, 0);
  const int exit_code = WaitForExit(pid);
  EXPECT_EQ(exit_code, 1);
  EXPECT_THAT(ReadFile(dir / "err"), StartsWith("error: UNAVAILABLE: "));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  std::filesystem::remove_all(dir);
}

TEST_F(AbodectlE2eTest, ImportWhereaboutsPlansImportsOnceAndListsConflicts) {
  const std::string pools = std::string(ABODE_CLI_TESTDATA) + "/whereabouts_ippools.json";
  const std::string reservations = std::string(ABODE_CLI_TESTDATA) + "/whereabouts_reservations.json";
  const ProcessResult plan = Abodectl({"import", "whereabouts", pools, "--dry-run"});
  ASSERT_EQ(plan.exit_code, 0) << plan.err;
  EXPECT_THAT(plan.out, HasSubstr("dry run, nothing changed"));
  EXPECT_NE(Abodectl({"pool", "get", "10.210.0.0-24"}).exit_code, 0);

  const ProcessResult imported = Abodectl({"import", "whereabouts", pools});
  ASSERT_EQ(imported.exit_code, 0) << imported.err << imported.out;
  nlohmann::json held = Json({"list", "--pool", "10.210.0.0-24"});
  ASSERT_EQ(held.size(), 3u) << held.dump();
  const nlohmann::json v6 = Json({"list", "--pool", "fd00-210---64"});
  ASSERT_EQ(v6.size(), 1u);
  EXPECT_EQ(v6[0]["address"], "fd00:210:0:0:8000::");

  // Again: nothing to do.
  const nlohmann::json again = Json({"import", "whereabouts", pools});
  for (const nlohmann::json& step : again["steps"]) EXPECT_EQ(step["action"], "unchanged") << step.dump();
  EXPECT_EQ(Json({"list", "--pool", "10.210.0.0-24"}).size(), 3u);

  // The reservations: 10.210.0.9 is new, 10.210.0.3 has two owners in the export, and an address abode holds for
  // someone else is listed, not taken.
  ASSERT_EQ(Abodectl({"release", "--address", "10.211.1.0", "--network", "blue"}).exit_code, 0);
  ASSERT_EQ(Abodectl({"allocate", "--pool", "blue-10.211.0.0-16", "--owner", "someone-else", "--address",
                      "10.211.1.0"}).exit_code,
            0);
  const ProcessResult conflicts = Abodectl({"import", "whereabouts", pools, reservations});
  EXPECT_EQ(conflicts.exit_code, 1);
  EXPECT_THAT(conflicts.out, HasSubstr("conflict: 10.210.0.3"));
  EXPECT_THAT(conflicts.out, HasSubstr("10.211.1.0 is held by owner \"someone-else\""));
  EXPECT_THAT(conflicts.err, HasSubstr("FAILED_PRECONDITION"));
  // .9 joined; .3 keeps the holder the first import gave it.
  EXPECT_EQ(Json({"list", "--pool", "10.210.0.0-24"}).size(), 4u);
  EXPECT_EQ(Json({"get", "--address", "10.211.1.0", "--network", "blue"})[0]["owner"], "someone-else");
}

}  // namespace
}  // namespace abode::cli

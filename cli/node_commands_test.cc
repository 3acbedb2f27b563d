// nodes and watch through RunAbodectl against a fake transport.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "cli/abodectl_fixture.h"
#include "cli/api_methods.h"

namespace abode::cli {
namespace {

using LabelMap = std::map<std::string, std::string>;

using ::testing::HasSubstr;
using ::testing::StartsWith;

using NodeCommandsTest = AbodectlTest;

std::unique_ptr<google::protobuf::Message> WatchMessage(std::uint64_t revision, bool snapshot) {
  auto message = std::make_unique<v1::WatchAssignmentsResponse>();
  message->set_revision(revision);
  message->set_snapshot(snapshot);
  if (snapshot) message->set_lease_ms(6000);
  v1::Assignment& assignment = *message->add_assignments();
  assignment.set_id("external/web");
  assignment.set_revision(revision);
  assignment.mutable_external()->set_name("web");
  assignment.mutable_external()->set_address("203.0.113.5");
  return message;
}

std::vector<std::unique_ptr<google::protobuf::Message>> WatchMessages(int count) {
  std::vector<std::unique_ptr<google::protobuf::Message>> messages;
  for (int i = 0; i < count; ++i) messages.push_back(WatchMessage(10 + i, i == 0));
  return messages;
}

TEST_F(NodeCommandsTest, NodesAloneOrListLists) {
  fake_.Respond(v1::ListNodesResponse());
  Result result = Run({"nodes"});
  ASSERT_EQ(result.exit_code, kExitOk) << result.err;
  EXPECT_EQ(fake_.calls()[0].method, kListNodes.path);
  EXPECT_THAT(result.out, StartsWith("NAME"));

  fake_.Respond(v1::ListNodesResponse());
  result = Run({"nodes", "--selector", "zone=a"});
  ASSERT_EQ(result.exit_code, kExitOk) << result.err;
  EXPECT_EQ(fake_.request<v1::ListNodesRequest>(1).label_selector(), "zone=a");

  fake_.Respond(v1::ListNodesResponse());
  result = Run({"-o", "json", "nodes", "list", "--selector", "zone=b"});
  ASSERT_EQ(result.exit_code, kExitOk) << result.err;
  EXPECT_EQ(fake_.calls()[2].method, kListNodes.path);
  EXPECT_EQ(fake_.request<v1::ListNodesRequest>(2).label_selector(), "zone=b");
  EXPECT_EQ(result.out, "[]\n");
}

TEST_F(NodeCommandsTest, NodesGet) {
  v1::Node node;
  node.mutable_spec()->set_name("n1");
  fake_.Respond(node);
  const Result result = Run({"nodes", "get", "n1"});
  ASSERT_EQ(result.exit_code, kExitOk) << result.err;
  ASSERT_EQ(fake_.calls().size(), 1u);
  EXPECT_EQ(fake_.calls()[0].method, kGetNode.path);
  EXPECT_EQ(fake_.request<v1::GetNodeRequest>().name(), "n1");
  EXPECT_THAT(result.out, StartsWith("NAME         n1\n"));
}

TEST_F(NodeCommandsTest, NodesDeleteSendsReasonAndForceAndSaysWhatWasReleased) {
  v1::DeleteNodeResponse deleted;
  deleted.set_revision(42);
  deleted.add_released()->set_address("10.0.0.7");
  deleted.add_released()->set_address("10.0.0.9");
  deleted.add_moved_external_addresses("web");
  fake_.Respond(deleted);
  Result result = Run({"nodes", "delete", "n1", "--reason", "hardware failure", "--force"});
  ASSERT_EQ(result.exit_code, kExitOk) << result.err;
  EXPECT_EQ(fake_.calls()[0].method, kDeleteNode.path);
  EXPECT_EQ(fake_.request<v1::DeleteNodeRequest>().node(), "n1");
  EXPECT_EQ(fake_.request<v1::DeleteNodeRequest>().reason(), "hardware failure");
  EXPECT_TRUE(fake_.request<v1::DeleteNodeRequest>().force());
  EXPECT_EQ(result.out,
            "node \"n1\" deleted; 2 allocations released (10.0.0.7, 10.0.0.9); external addresses moved: web\n");

  fake_.Respond(v1::DeleteNodeResponse());
  result = Run({"-o", "json", "nodes", "delete", "n2"});
  ASSERT_EQ(result.exit_code, kExitOk) << result.err;
  EXPECT_FALSE(fake_.request<v1::DeleteNodeRequest>(1).force());
  EXPECT_EQ(fake_.request<v1::DeleteNodeRequest>(1).reason(), "");
  const nlohmann::json json = nlohmann::json::parse(result.out);
  EXPECT_EQ(json["name"], "n2");
  EXPECT_TRUE(json["released"].empty());
}

TEST_F(NodeCommandsTest, WatchSendsAnObservingStartAndStopsAtCount) {
  fake_.RespondStream(WatchMessages(3), absl::OkStatus());
  const Result result = Run({"watch", "--node", "n1", "--resume-revision", "7", "--count", "2", "--timeout", "4"});
  ASSERT_EQ(result.exit_code, kExitOk) << result.err;
  ASSERT_EQ(fake_.opened_streams().size(), 1u);
  EXPECT_EQ(fake_.opened_streams()[0].method, kWatchAssignments.path);
  EXPECT_EQ(fake_.opened_streams()[0].options.deadline, std::chrono::seconds(4));
  EXPECT_EQ(fake_.opened_streams()[0].options.first_message_timeout, std::chrono::seconds(4));
  ASSERT_EQ(fake_.written().size(), 1u);
  const auto& start = dynamic_cast<const v1::WatchAssignmentsRequest&>(*fake_.written()[0]);
  ASSERT_TRUE(start.has_start());
  EXPECT_EQ(start.start().node(), "n1");
  EXPECT_EQ(start.start().resume_revision(), 7u);
  EXPECT_FALSE(start.start().has_registration());
  EXPECT_EQ(result.out,
            "revision 10 snapshot lease 6000ms: external/web 203.0.113.5\n"
            "revision 11 delta: external/web 203.0.113.5\n");
}

TEST_F(NodeCommandsTest, WatchWithoutCountHasNoDeadline) {
  fake_.RespondStream(WatchMessages(1), absl::UnavailableError("server going away"));
  const Result result = Run({"-o", "json", "watch", "--node", "n1"});
  EXPECT_EQ(result.exit_code, kExitRpcError);
  EXPECT_EQ(result.err, "error: UNAVAILABLE: server going away\n");
  EXPECT_FALSE(fake_.opened_streams()[0].options.deadline.has_value());
  EXPECT_TRUE(fake_.opened_streams()[0].options.stop_requested != nullptr);
  // One JSON object a line.
  const nlohmann::json first = nlohmann::json::parse(result.out);
  EXPECT_EQ(first["revision"], 10);
  EXPECT_EQ(first["snapshot"], true);
  EXPECT_EQ(first["assignments"][0]["id"], "external/web");
  EXPECT_EQ(result.out.find('\n'), result.out.size() - 1);
}

TEST_F(NodeCommandsTest, WatchEndedByTheServerBeforeCountIsAnError) {
  fake_.RespondStream(WatchMessages(1), absl::OkStatus());
  const Result result = Run({"watch", "--node", "n1", "--count", "2"});
  EXPECT_EQ(result.exit_code, kExitRpcError);
  EXPECT_THAT(result.err, HasSubstr("UNAVAILABLE"));
  EXPECT_THAT(result.out, StartsWith("revision 10 snapshot"));
}

TEST_F(NodeCommandsTest, NodesLabelEditsTheSetLabelsOnly) {
  v1::Node node;
  node.mutable_spec()->set_name("n1");
  (*node.mutable_spec()->mutable_labels())["reported"] = "by-abode-node";
  (*node.mutable_set_labels())["zone"] = "a";
  (*node.mutable_set_labels())["rack"] = "r1";
  fake_.Respond(node);
  fake_.Respond(node);
  const Result result = Run({"nodes", "label", "n1", "zone=b", "role=edge", "--remove", "rack"});
  ASSERT_EQ(result.exit_code, kExitOk) << result.err;
  ASSERT_EQ(fake_.calls().size(), 2u);
  EXPECT_EQ(fake_.calls()[0].method, kGetNode.path);
  EXPECT_EQ(fake_.request<v1::GetNodeRequest>(0).name(), "n1");
  EXPECT_EQ(fake_.calls()[1].method, kSetNodeLabels.path);
  const auto& request = fake_.request<v1::SetNodeLabelsRequest>(1);
  EXPECT_EQ(request.name(), "n1");
  EXPECT_EQ(LabelMap(request.labels().begin(), request.labels().end()),
            (LabelMap{{"role", "edge"}, {"zone", "b"}}))
      << "the reported labels are abode-node's, never copied into the set ones";
  EXPECT_THAT(result.out, StartsWith("NAME         n1\n"));

  fake_.Fail(absl::NotFoundError("node \"n9\" is not registered"));
  const Result missing = Run({"nodes", "label", "n9", "zone=a"});
  EXPECT_EQ(missing.exit_code, kExitRpcError);
  EXPECT_EQ(missing.err, "error: NOT_FOUND: node \"n9\" is not registered\n");
  EXPECT_EQ(fake_.calls().size(), 3u);
}

TEST_F(NodeCommandsTest, BadUsageExitsTwo) {
  ExpectUsageError({"watch"}, "--node");
  ExpectUsageError({"watch", "--node", "n1", "--count", "0"}, "--count");
  ExpectUsageError({"nodes", "get"}, "NAME");
  ExpectUsageError({"nodes", "delete"}, "NODE");
  ExpectUsageError({"nodes", "label"}, "NODE");
  ExpectUsageError({"nodes", "label", "n1"}, "give at least one KEY=VALUE to set or --remove KEY");
  ExpectUsageError({"nodes", "label", "n1", "zone"}, "\"zone\" is not key=value");
  ExpectUsageError({"nodes", "label", "n1", "zone=a", "--remove", "zone"}, "--remove: key \"zone\" is also set");
}

}  // namespace
}  // namespace abode::cli

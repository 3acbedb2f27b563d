// Command lines through RunAbodectl against a fake transport: every flag lands in its request field, usage
// errors exit 2 without calling the server, RPC errors exit 1 with the gRPC code name.
#include "cli/abodectl.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sstream>

#include "cli/abodectl_fixture.h"
#include "cli/api_methods.h"

namespace abode::cli {
namespace {

using LabelMap = std::map<std::string, std::string>;

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

v1::Allocation SomeAllocation(const std::string& address, const std::string& owner) {
  v1::Allocation allocation;
  allocation.set_pool("pods");
  allocation.set_address(address);
  allocation.set_owner(owner);
  return allocation;
}

TEST_F(AbodectlTest, GlobalDefaults) {
  fake_.Respond(v1::ListPoolsResponse());
  ASSERT_EQ(Run({"pool", "list"}).exit_code, kExitOk);
  ASSERT_TRUE(dialed_.has_value());
  EXPECT_EQ(dialed_->server, "127.0.0.1:7443");
  EXPECT_EQ(dialed_->format, OutputFormat::kTable);
  EXPECT_EQ(dialed_->timeout, std::chrono::seconds(10));
}

TEST_F(AbodectlTest, GlobalFlagsBeforeOrAfterTheCommand) {
  fake_.Respond(v1::ListPoolsResponse());
  ASSERT_EQ(Run({"--server", "10.0.0.1:9000", "-o", "json", "--timeout", "2.5", "pool", "list"}).exit_code, kExitOk);
  EXPECT_EQ(dialed_->server, "10.0.0.1:9000");
  EXPECT_EQ(dialed_->format, OutputFormat::kJson);
  EXPECT_EQ(dialed_->timeout, std::chrono::milliseconds(2500));

  fake_.Respond(v1::ListPoolsResponse());
  const Result result = Run({"pool", "list", "--output", "json", "--server", "h:1", "--timeout", "3"});
  ASSERT_EQ(result.exit_code, kExitOk) << result.err;
  EXPECT_EQ(dialed_->server, "h:1");
  EXPECT_EQ(dialed_->timeout, std::chrono::seconds(3));
  EXPECT_EQ(result.out, "[]\n");
}

TEST_F(AbodectlTest, ServerFromEnvironmentUnlessFlagGiven) {
  fake_.Respond(v1::ListPoolsResponse());
  Run({"pool", "list"}, "env-host:7000");
  EXPECT_EQ(dialed_->server, "env-host:7000");
  fake_.Respond(v1::ListPoolsResponse());
  Run({"--server", "flag-host:1", "pool", "list"}, "env-host:7000");
  EXPECT_EQ(dialed_->server, "flag-host:1");
}

TEST_F(AbodectlTest, PoolCreateFillsEveryField) {
  fake_.Respond(v1::Pool());
  const Result result =
      Run({"pool",        "create",     "pods",      "--cidr",       "10.1.0.0/16", "--range-start", "10.1.0.10",
           "--range-end", "10.1.0.200", "--exclude", "10.1.0.64/28", "--exclude",   "10.1.1.0/24",   "--gateway",
           "10.1.0.1",    "--network",  "blue",      "--strategy",   "sequential",  "--purpose",     "external"});
  ASSERT_EQ(result.exit_code, kExitOk) << result.err;
  ASSERT_EQ(fake_.calls().size(), 1u);
  EXPECT_EQ(fake_.calls()[0].method, kCreatePool.path);
  const v1::PoolSpec& spec = fake_.request<v1::CreatePoolRequest>().pool();
  EXPECT_EQ(spec.name(), "pods");
  EXPECT_EQ(spec.cidr(), "10.1.0.0/16");
  EXPECT_EQ(spec.range_start(), "10.1.0.10");
  EXPECT_EQ(spec.range_end(), "10.1.0.200");
  EXPECT_THAT(spec.exclude(), ElementsAre("10.1.0.64/28", "10.1.1.0/24"));
  EXPECT_EQ(spec.gateway(), "10.1.0.1");
  EXPECT_EQ(spec.network(), "blue");
  EXPECT_EQ(spec.strategy(), v1::ALLOCATION_STRATEGY_SEQUENTIAL);
  EXPECT_EQ(spec.purpose(), v1::POOL_PURPOSE_EXTERNAL);
}

TEST_F(AbodectlTest, PoolCreateMinimalLeavesOptionalsUnset) {
  fake_.Respond(v1::Pool());
  ASSERT_EQ(Run({"pool", "create", "p", "--cidr", "fd00::/64", "--strategy", "lowest"}).exit_code, kExitOk);
  const v1::PoolSpec& spec = fake_.request<v1::CreatePoolRequest>().pool();
  EXPECT_EQ(spec.name(), "p");
  EXPECT_EQ(spec.cidr(), "fd00::/64");
  EXPECT_EQ(spec.strategy(), v1::ALLOCATION_STRATEGY_LOWEST);
  EXPECT_EQ(spec.purpose(), v1::POOL_PURPOSE_UNSPECIFIED);
  EXPECT_THAT(spec.exclude(), IsEmpty());
  EXPECT_EQ(spec.network(), "");
}

TEST_F(AbodectlTest, PoolGetDeleteList) {
  fake_.Respond(v1::Pool());
  ASSERT_EQ(Run({"pool", "get", "pods"}).exit_code, kExitOk);
  EXPECT_EQ(fake_.calls()[0].method, kGetPool.path);
  EXPECT_EQ(fake_.request<v1::GetPoolRequest>(0).name(), "pods");

  v1::DeletePoolResponse deleted;
  deleted.set_released(3);
  deleted.set_revision(17);
  fake_.Respond(deleted);
  Result result = Run({"pool", "delete", "pods", "--force"});
  ASSERT_EQ(result.exit_code, kExitOk) << result.err;
  EXPECT_EQ(fake_.calls()[1].method, kDeletePool.path);
  EXPECT_EQ(fake_.request<v1::DeletePoolRequest>(1).name(), "pods");
  EXPECT_TRUE(fake_.request<v1::DeletePoolRequest>(1).force());
  EXPECT_EQ(result.out, "pool \"pods\" deleted, 3 allocations released\n");

  fake_.Respond(deleted);
  result = Run({"-o", "json", "pool", "delete", "pods"});
  EXPECT_FALSE(fake_.request<v1::DeletePoolRequest>(2).force());
  EXPECT_EQ(nlohmann::json::parse(result.out), (nlohmann::json{{"name", "pods"}, {"released", 3}, {"revision", 17}}));

  fake_.Respond(v1::ListPoolsResponse());
  ASSERT_EQ(Run({"pool", "list", "--network", "blue"}).exit_code, kExitOk);
  EXPECT_EQ(fake_.calls()[3].method, kListPools.path);
  EXPECT_EQ(fake_.request<v1::ListPoolsRequest>(3).network(), "blue");
}

TEST_F(AbodectlTest, AllocateFillsEveryField) {
  fake_.Respond(SomeAllocation("10.1.0.9", "k8s/uid/eth0"));
  const Result result = Run({"allocate", "--pool", "pods", "--owner", "k8s/uid/eth0", "--address", "10.1.0.9", "--node",
                             "node-a", "--label", "app=web", "--label", "tier=a=b", "--ttl", "300"});
  ASSERT_EQ(result.exit_code, kExitOk) << result.err;
  EXPECT_EQ(fake_.calls()[0].method, kAllocate.path);
  const auto& request = fake_.request<v1::AllocateRequest>();
  EXPECT_EQ(request.pool(), "pods");
  EXPECT_EQ(request.owner(), "k8s/uid/eth0");
  EXPECT_EQ(request.address(), "10.1.0.9");
  EXPECT_EQ(request.node(), "node-a");
  EXPECT_THAT(request.labels(), UnorderedElementsAre(Pair("app", "web"), Pair("tier", "a=b")));
  EXPECT_EQ(request.ttl_seconds(), 300);
  EXPECT_THAT(result.out, HasSubstr("10.1.0.9"));
}

TEST_F(AbodectlTest, AllocatePrintsOneJsonObject) {
  fake_.Respond(SomeAllocation("10.1.0.9", "o"));
  const Result result = Run({"allocate", "--pool", "pods", "--owner", "o", "-o", "json"});
  ASSERT_EQ(result.exit_code, kExitOk) << result.err;
  const nlohmann::json json = nlohmann::json::parse(result.out);
  EXPECT_TRUE(json.is_object());
  EXPECT_EQ(json["address"], "10.1.0.9");
  EXPECT_EQ(fake_.request<v1::AllocateRequest>().ttl_seconds(), 0);
  EXPECT_THAT(fake_.request<v1::AllocateRequest>().labels(), IsEmpty());
}

TEST_F(AbodectlTest, ReleaseByOwnerOrByAddress) {
  v1::ReleaseResponse released;
  *released.add_released() = SomeAllocation("10.1.0.9", "o");
  fake_.Respond(released);
  Result result = Run({"release", "--owner", "o", "--pool", "pods", "-o", "json"});
  ASSERT_EQ(result.exit_code, kExitOk) << result.err;
  EXPECT_EQ(fake_.calls()[0].method, kRelease.path);
  EXPECT_EQ(fake_.request<v1::ReleaseRequest>(0).owner(), "o");
  EXPECT_EQ(fake_.request<v1::ReleaseRequest>(0).pool(), "pods");
  EXPECT_EQ(fake_.request<v1::ReleaseRequest>(0).address(), "");
  const nlohmann::json json = nlohmann::json::parse(result.out);
  ASSERT_TRUE(json.is_array());
  EXPECT_EQ(json[0]["address"], "10.1.0.9");

  fake_.Respond(v1::ReleaseResponse());
  result = Run({"release", "--address", "10.1.0.9", "--network", "blue"});
  ASSERT_EQ(result.exit_code, kExitOk) << result.err;
  EXPECT_EQ(fake_.request<v1::ReleaseRequest>(1).address(), "10.1.0.9");
  EXPECT_EQ(fake_.request<v1::ReleaseRequest>(1).network(), "blue");
  EXPECT_EQ(fake_.request<v1::ReleaseRequest>(1).owner(), "");
}

TEST_F(AbodectlTest, RenewFillsEveryField) {
  fake_.Respond(v1::RenewResponse());
  ASSERT_EQ(Run({"renew", "--owner", "o", "--pool", "pods", "--ttl", "60"}).exit_code, kExitOk);
  EXPECT_EQ(fake_.calls()[0].method, kRenew.path);
  const auto& request = fake_.request<v1::RenewRequest>();
  EXPECT_EQ(request.owner(), "o");
  EXPECT_EQ(request.pool(), "pods");
  EXPECT_EQ(request.ttl_seconds(), 60);
}

TEST_F(AbodectlTest, LabelKeepsTheOwnersOtherLabelsSetsAndRemoves) {
  v1::GetAllocationResponse held;
  *held.add_allocations() = SomeAllocation("10.0.0.4", "o");
  (*held.mutable_allocations(0)->mutable_labels())["k8s-pod-uid"] = "u1";
  (*held.mutable_allocations(0)->mutable_labels())["app"] = "web";
  (*held.mutable_allocations(0)->mutable_labels())["tier"] = "front";
  fake_.Respond(held);
  v1::UpdateLabelsResponse updated;
  *updated.add_allocations() = SomeAllocation("10.0.0.4", "o");
  fake_.Respond(updated);
  const Result result = Run({"label", "--owner", "o", "--pool", "pods", "app=db", "zone=a", "--remove", "tier"});
  ASSERT_EQ(result.exit_code, kExitOk) << result.err;
  ASSERT_EQ(fake_.calls().size(), 2u);
  EXPECT_EQ(fake_.calls()[0].method, kGetAllocation.path);
  EXPECT_EQ(fake_.request<v1::GetAllocationRequest>(0).owner(), "o");
  EXPECT_EQ(fake_.request<v1::GetAllocationRequest>(0).pool(), "pods");
  EXPECT_EQ(fake_.calls()[1].method, kUpdateLabels.path);
  const auto& request = fake_.request<v1::UpdateLabelsRequest>(1);
  EXPECT_EQ(request.owner(), "o");
  EXPECT_EQ(request.pool(), "pods");
  EXPECT_EQ(LabelMap(request.labels().begin(), request.labels().end()),
            (LabelMap{{"app", "db"}, {"zone", "a"}}));
  EXPECT_THAT(request.keep_keys(), ::testing::ElementsAre("k8s-pod-uid")) << "set keys and removed ones are not kept";
  EXPECT_THAT(result.out, ::testing::HasSubstr("10.0.0.4"));

  // An owner holding nothing: the read's NOT_FOUND, and no write.
  fake_.Fail(absl::NotFoundError("owner \"x\" holds no address"));
  const Result missing = Run({"label", "--owner", "x", "app=db"});
  EXPECT_EQ(missing.exit_code, kExitRpcError);
  EXPECT_EQ(missing.err, "error: NOT_FOUND: owner \"x\" holds no address\n");
  EXPECT_EQ(fake_.calls().size(), 3u);
}

TEST_F(AbodectlTest, LabelUsageErrorsNameTheArgument) {
  ExpectUsageError({"label", "app=db"}, "--owner");
  ExpectUsageError({"label", "--owner", "o"}, "give at least one KEY=VALUE to set or --remove KEY");
  ExpectUsageError({"label", "--owner", "o", "app"}, "\"app\" is not key=value");
  ExpectUsageError({"label", "--owner", "o", "=db"}, "\"=db\" is not key=value");
  ExpectUsageError({"label", "--owner", "o", "app=db", "--remove", "app"},
                   "--remove: key \"app\" is also set by app=db");
}

TEST_F(AbodectlTest, GetByOwnerOrByAddress) {
  fake_.Respond(v1::GetAllocationResponse());
  ASSERT_EQ(Run({"get", "--owner", "o", "--pool", "pods"}).exit_code, kExitOk);
  EXPECT_EQ(fake_.calls()[0].method, kGetAllocation.path);
  EXPECT_EQ(fake_.request<v1::GetAllocationRequest>(0).owner(), "o");
  EXPECT_EQ(fake_.request<v1::GetAllocationRequest>(0).pool(), "pods");

  fake_.Respond(v1::GetAllocationResponse());
  ASSERT_EQ(Run({"get", "--address", "fd00::5", "--network", "blue"}).exit_code, kExitOk);
  EXPECT_EQ(fake_.request<v1::GetAllocationRequest>(1).address(), "fd00::5");
  EXPECT_EQ(fake_.request<v1::GetAllocationRequest>(1).network(), "blue");
  EXPECT_EQ(fake_.request<v1::GetAllocationRequest>(1).owner(), "");
}

TEST_F(AbodectlTest, ListFollowsPagesToTheEnd) {
  for (const char* token : {"p2", "p3", ""}) {
    v1::ListAllocationsResponse page;
    *page.add_allocations() = SomeAllocation(std::string("10.0.0.") + (*token ? token + 1 : "4"), "o");
    page.set_next_page_token(token);
    fake_.Respond(page);
  }
  const Result result =
      Run({"list", "--pool", "pods", "--node", "n1", "--owner", "o", "--selector", "app=web,tier=a", "-o", "json"});
  ASSERT_EQ(result.exit_code, kExitOk) << result.err;
  ASSERT_EQ(fake_.calls().size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    const auto& request = fake_.request<v1::ListAllocationsRequest>(i);
    EXPECT_EQ(fake_.calls()[i].method, kListAllocations.path);
    EXPECT_EQ(request.pool(), "pods");
    EXPECT_EQ(request.node(), "n1");
    EXPECT_EQ(request.owner(), "o");
    EXPECT_EQ(request.label_selector(), "app=web,tier=a");
  }
  EXPECT_EQ(fake_.request<v1::ListAllocationsRequest>(0).page_token(), "");
  EXPECT_EQ(fake_.request<v1::ListAllocationsRequest>(1).page_token(), "p2");
  EXPECT_EQ(fake_.request<v1::ListAllocationsRequest>(2).page_token(), "p3");
  const nlohmann::json json = nlohmann::json::parse(result.out);
  ASSERT_EQ(json.size(), 3u);
  EXPECT_EQ(json[0]["address"], "10.0.0.2");
  EXPECT_EQ(json[2]["address"], "10.0.0.4");
}

TEST_F(AbodectlTest, ListStopsAtTheLimit) {
  v1::ListAllocationsResponse page;
  *page.add_allocations() = SomeAllocation("10.0.0.1", "a");
  *page.add_allocations() = SomeAllocation("10.0.0.2", "b");
  page.set_next_page_token("more");
  fake_.Respond(page);
  *page.add_allocations() = SomeAllocation("10.0.0.3", "c");
  fake_.Respond(page);
  const Result result = Run({"list", "--limit", "3", "-o", "json"});
  ASSERT_EQ(result.exit_code, kExitOk) << result.err;
  ASSERT_EQ(fake_.calls().size(), 2u);
  EXPECT_EQ(fake_.request<v1::ListAllocationsRequest>(0).page_size(), 3);
  EXPECT_EQ(fake_.request<v1::ListAllocationsRequest>(1).page_size(), 1);
  EXPECT_EQ(nlohmann::json::parse(result.out).size(), 3u);
}

TEST_F(AbodectlTest, ListRefusesAServerThatRepeatsItsPageToken) {
  v1::ListAllocationsResponse page;
  page.set_next_page_token("same");
  fake_.Respond(page);
  fake_.Respond(page);
  const Result result = Run({"list"});
  EXPECT_EQ(result.exit_code, kExitRpcError);
  EXPECT_THAT(result.err, HasSubstr("error: INTERNAL: "));
}

TEST_F(AbodectlTest, HistoryFillsEveryField) {
  fake_.Respond(v1::GetHistoryResponse());
  Result result =
      Run({"history", "--address", "10.1.0.9", "--network", "blue", "--pool", "pods", "--at", "2026-11-22T14:05:00Z"});
  ASSERT_EQ(result.exit_code, kExitOk) << result.err;
  EXPECT_EQ(fake_.calls()[0].method, kGetHistory.path);
  const auto& request = fake_.request<v1::GetHistoryRequest>(0);
  EXPECT_EQ(request.address(), "10.1.0.9");
  EXPECT_EQ(request.network(), "blue");
  EXPECT_EQ(request.pool(), "pods");
  EXPECT_EQ(request.at_time_unix_ms(), 1795356300000);
  EXPECT_EQ(result.out, "OWNER   POOL   NODE   FROM   TO   REASON\n");

  fake_.Respond(v1::GetHistoryResponse());
  ASSERT_EQ(Run({"history", "--address", "10.1.0.9", "--at", "1795356300123"}).exit_code, kExitOk);
  EXPECT_EQ(fake_.request<v1::GetHistoryRequest>(1).at_time_unix_ms(), 1795356300123);

  fake_.Respond(v1::GetHistoryResponse());
  ASSERT_EQ(Run({"history", "--address", "10.1.0.9"}).exit_code, kExitOk);
  EXPECT_EQ(fake_.request<v1::GetHistoryRequest>(2).at_time_unix_ms(), 0);
}

TEST_F(AbodectlTest, RpcErrorsExitOneWithTheCodeName) {
  fake_.Fail(absl::NotFoundError("pool \"x\" not found"));
  const Result result = Run({"pool", "get", "x"});
  EXPECT_EQ(result.exit_code, kExitRpcError);
  EXPECT_EQ(result.err, "error: NOT_FOUND: pool \"x\" not found\n");
  EXPECT_THAT(result.out, IsEmpty());

  fake_.Fail(absl::AlreadyExistsError("10.1.0.9 is held"));
  EXPECT_EQ(Run({"allocate", "--pool", "p", "--owner", "o", "--address", "10.1.0.9"}).err,
            "error: ALREADY_EXISTS: 10.1.0.9 is held\n");
  fake_.Fail(absl::UnavailableError("failed to connect"));
  EXPECT_EQ(Run({"list"}).err, "error: UNAVAILABLE: failed to connect\n");
}

TEST_F(AbodectlTest, UsageErrors) {
  ExpectUsageError({}, "a command is required");
  ExpectUsageError({"pool"}, "subcommand");
  ExpectUsageError({"frobnicate"}, "frobnicate");
  ExpectUsageError({"pool", "create", "pods"}, "--cidr");
  ExpectUsageError({"pool", "create", "--cidr", "10.0.0.0/8"}, "NAME");
  ExpectUsageError({"pool", "create", "p", "--cidr", "10.0.0.0/8", "--strategy", "random"}, "random");
  ExpectUsageError({"pool", "create", "p", "--cidr", "10.0.0.0/8", "--purpose", "fun"}, "fun");
  ExpectUsageError({"pool", "get"}, "NAME");
  ExpectUsageError({"pool", "list", "extra"}, "extra");
  ExpectUsageError({"allocate", "--pool", "p"}, "--owner");
  ExpectUsageError({"allocate", "--owner", "o"}, "--pool");
  ExpectUsageError({"allocate", "--pool", "p", "--owner", "o", "--label", "novalue"}, "novalue");
  ExpectUsageError({"allocate", "--pool", "p", "--owner", "o", "--label", "=v"}, "=v");
  ExpectUsageError({"allocate", "--pool", "p", "--owner", "o", "--ttl", "-1"}, "--ttl");
  ExpectUsageError({"allocate", "--pool", "p", "--owner", "o", "--ttl", "soon"}, "--ttl");
  ExpectUsageError({"release"}, "exactly one of --owner or --address");
  ExpectUsageError({"release", "--pool", "p"}, "exactly one of --owner or --address");
  ExpectUsageError({"release", "--owner", "o", "--address", "10.0.0.1"}, "excludes");
  ExpectUsageError({"release", "--owner", "o", "--network", "n"}, "--address");
  ExpectUsageError({"renew"}, "--owner");
  ExpectUsageError({"renew", "--owner", "o", "--ttl", "-5"}, "--ttl");
  ExpectUsageError({"get"}, "exactly one of --owner or --address");
  ExpectUsageError({"get", "--owner", "o", "--address", "10.0.0.1"}, "excludes");
  ExpectUsageError({"get", "--address", "10.0.0.1", "--pool", "p", "--network", "n"}, "excludes");
  ExpectUsageError({"list", "--limit", "0"}, "--limit");
  ExpectUsageError({"history"}, "--address");
  ExpectUsageError({"history", "--address", "10.0.0.1", "--at", "yesterday"}, "yesterday");
  ExpectUsageError({"-o", "yaml", "pool", "list"}, "yaml");
  ExpectUsageError({"--server", "", "pool", "list"}, "--server");
  ExpectUsageError({"--timeout", "0", "pool", "list"}, "--timeout");
  ExpectUsageError({"--timeout", "-3", "pool", "list"}, "--timeout");
}

TEST_F(AbodectlTest, UsageErrorShowsTheFailingCommandsUsage) {
  const Result result = Run({"pool", "create", "pods"});
  EXPECT_THAT(result.err, HasSubstr("--range-start"));
  EXPECT_THAT(result.err, HasSubstr("--strategy"));
}

TEST_F(AbodectlTest, HelpExitsZero) {
  Result result = Run({"--help"});
  EXPECT_EQ(result.exit_code, kExitOk);
  EXPECT_THAT(result.out, HasSubstr("pool"));
  EXPECT_THAT(result.out, HasSubstr("history"));
  EXPECT_THAT(result.err, IsEmpty());

  result = Run({"allocate", "--help"});
  EXPECT_EQ(result.exit_code, kExitOk);
  EXPECT_THAT(result.out, HasSubstr("--owner"));
  EXPECT_THAT(fake_.calls(), IsEmpty());
}

}  // namespace
}  // namespace abode::cli

namespace abode::cli {
namespace {

TEST_F(AbodectlTest, CheckConfigValidatesWithoutDialing) {
  Result ok = Run({"--check-config", "--server", "abode.abode-system.svc:7443", "cluster", "status"});
  EXPECT_EQ(ok.exit_code, kExitOk) << ok.err;
  EXPECT_EQ(ok.out, "abodectl: configuration ok: server abode.abode-system.svc:7443\n");
  ok = Run({"--check-config"}, "[fd00::1]:7443");  // no command, server from $ABODE_SERVER
  EXPECT_EQ(ok.exit_code, kExitOk) << ok.err;
  EXPECT_EQ(ok.out, "abodectl: configuration ok: server [fd00::1]:7443\n");
  EXPECT_EQ(Run({"--check-config", "--server", "dns:///abode:7443"}).exit_code, kExitOk);

  for (const std::string bad : {"abode", "abode:0", "abode:http", ":7443", "fd00::1:7443"}) {
    SCOPED_TRACE(bad);
    const Result r = Run({"--check-config", "--server", bad, "list"});
    EXPECT_EQ(r.exit_code, kExitUsage);
    EXPECT_THAT(r.err, ::testing::HasSubstr("--server: \"" + bad + "\""));
  }
  // The command line itself is still parsed: a bad command is a usage error.
  const Result bad_command = Run({"--check-config", "pool", "create", "pods"});
  EXPECT_EQ(bad_command.exit_code, kExitUsage);
  EXPECT_THAT(bad_command.err, ::testing::HasSubstr("--cidr"));
  EXPECT_THAT(fake_.calls(), ::testing::IsEmpty());
  EXPECT_FALSE(dialed_.has_value());
}

}  // namespace
}  // namespace abode::cli

#include "cli/output.h"

#include <gtest/gtest.h>

#include <sstream>

#include "cli/json_text.h"

namespace abode::cli {
namespace {

v1::Pool Ipv4Pool() {
  v1::Pool pool;
  v1::PoolSpec& spec = *pool.mutable_spec();
  spec.set_name("pods");
  spec.set_cidr("10.1.0.0/24");
  spec.set_network("default");
  spec.set_range_start("10.1.0.10");
  spec.set_range_end("10.1.0.200");
  spec.add_exclude("10.1.0.64/28");
  spec.set_gateway("10.1.0.1");
  spec.set_strategy(v1::ALLOCATION_STRATEGY_SEQUENTIAL);
  spec.set_purpose(v1::POOL_PURPOSE_WORKLOAD);
  pool.set_size("174");
  pool.set_used(87);
  pool.set_free("87");
  return pool;
}

v1::Pool Ipv6Pool() {
  v1::Pool pool;
  pool.mutable_spec()->set_name("v6");
  pool.mutable_spec()->set_cidr("fd00:1::/48");
  pool.set_size("1208925819614629174706176");
  pool.set_used(3);
  pool.set_free("1208925819614629174706173");
  return pool;
}

v1::Allocation PodAllocation() {
  v1::Allocation allocation;
  allocation.set_pool("pods");
  allocation.set_network("default");
  allocation.set_address("10.1.0.10");
  allocation.set_prefix_length(24);
  allocation.set_gateway("10.1.0.1");
  allocation.set_owner("k8s/uid-1/eth0");
  allocation.set_node("node-a");
  (*allocation.mutable_labels())["team"] = "red";
  (*allocation.mutable_labels())["app"] = "web";
  allocation.set_ttl_seconds(60);
  allocation.set_expire_time_unix_ms(1795356300000);
  allocation.set_create_time_unix_ms(1795356240000);
  allocation.set_create_revision(41);
  allocation.set_revision(42);
  return allocation;
}

TEST(OutputTest, PoolJsonHasEveryKeyWithItsValue) {
  const nlohmann::json expected = {
      {"name", "pods"},
      {"cidr", "10.1.0.0/24"},
      {"network", "default"},
      {"strategy", "sequential"},
      {"purpose", "workload"},
      {"range_start", "10.1.0.10"},
      {"range_end", "10.1.0.200"},
      {"exclude", {"10.1.0.64/28"}},
      {"gateway", "10.1.0.1"},
      {"size", 174},
      {"used", 87},
      {"free", 87},
      {"utilization", 50.0},
  };
  EXPECT_EQ(nlohmann::json::parse(DumpJson(PoolJson(Ipv4Pool()))), expected);
}

TEST(OutputTest, PoolJsonOfUnsetOptionalsAndHugeSizes) {
  const std::string text = DumpJson(PoolJson(Ipv6Pool()));
  EXPECT_NE(text.find("\"size\": 1208925819614629174706176,"), std::string::npos) << text;
  EXPECT_NE(text.find("\"free\": 1208925819614629174706173,"), std::string::npos) << text;
  const nlohmann::json parsed = nlohmann::json::parse(text);
  EXPECT_TRUE(parsed["size"].is_number());
  EXPECT_TRUE(parsed["range_start"].is_null());
  EXPECT_TRUE(parsed["range_end"].is_null());
  EXPECT_TRUE(parsed["gateway"].is_null());
  EXPECT_EQ(parsed["exclude"], nlohmann::json::array());
  EXPECT_EQ(parsed["strategy"], "lowest");
  EXPECT_EQ(parsed["purpose"], "workload");
  EXPECT_EQ(parsed["network"], "");
  EXPECT_EQ(parsed["used"], 3);
  EXPECT_GT(parsed["utilization"].get<double>(), 0);
}

TEST(OutputTest, AllocationJsonHasExactlyTheDocumentedKeys) {
  const nlohmann::json expected = {
      {"address", "10.1.0.10"},
      {"owner", "k8s/uid-1/eth0"},
      {"pool", "pods"},
      {"node", "node-a"},
      {"labels", {{"app", "web"}, {"team", "red"}}},
      {"revision", 42},
      {"network", "default"},
      {"prefix_length", 24},
      {"expire_time", "2026-11-22T14:05:00Z"},
  };
  EXPECT_EQ(AllocationJson(PodAllocation()), expected);

  v1::Allocation forever = PodAllocation();
  forever.set_expire_time_unix_ms(0);
  forever.clear_labels();
  const nlohmann::json json = AllocationJson(forever);
  EXPECT_TRUE(json["expire_time"].is_null());
  EXPECT_EQ(json["labels"], nlohmann::json::object());
}

TEST(OutputTest, HistoryEntryJson) {
  v1::HistoryEntry ended;
  ended.set_network("default");
  ended.set_pool("pods");
  ended.set_address("10.1.0.10");
  ended.set_owner("k8s/uid-1/eth0");
  ended.set_node("node-a");
  ended.set_from_time_unix_ms(1795356300000);
  ended.set_to_time_unix_ms(1795356360000);
  ended.set_from_revision(3);
  ended.set_to_revision(9);
  ended.set_end_reason("released");
  EXPECT_EQ(HistoryEntryJson(ended), (nlohmann::json{{"owner", "k8s/uid-1/eth0"},
                                                     {"pool", "pods"},
                                                     {"node", "node-a"},
                                                     {"address", "10.1.0.10"},
                                                     {"from", "2026-11-22T14:05:00Z"},
                                                     {"to", "2026-11-22T14:06:00Z"},
                                                     {"reason", "released"}}));
  v1::HistoryEntry held = ended;
  held.set_to_time_unix_ms(0);
  held.set_to_revision(0);
  held.clear_end_reason();
  EXPECT_TRUE(HistoryEntryJson(held)["to"].is_null());
  EXPECT_TRUE(HistoryEntryJson(held)["reason"].is_null());
}

TEST(OutputTest, PoolsTable) {
  Repeated<v1::Pool> pools;
  *pools.Add() = Ipv4Pool();
  *pools.Add() = Ipv6Pool();
  EXPECT_EQ(PoolsTable(pools),
            "NAME   NETWORK   CIDR          SIZE                        USED   FREE                        "
            "UTILIZATION\n"
            "pods   default   10.1.0.0/24   174                         87     87                          50.0%\n"
            "v6     -         fd00:1::/48   1208925819614629174706176   3      1208925819614629174706173   0.0%\n");
}

TEST(OutputTest, PoolDetail) {
  EXPECT_EQ(PoolDetail(Ipv4Pool()),
            "NAME         pods\n"
            "NETWORK      default\n"
            "CIDR         10.1.0.0/24\n"
            "RANGE        10.1.0.10 - 10.1.0.200\n"
            "EXCLUDE      10.1.0.64/28\n"
            "GATEWAY      10.1.0.1\n"
            "STRATEGY     sequential\n"
            "PURPOSE      workload\n"
            "SIZE         174\n"
            "USED         87\n"
            "FREE         87\n"
            "UTILIZATION  50.0%\n");
}

TEST(OutputTest, AllocationsTable) {
  Repeated<v1::Allocation> allocations;
  *allocations.Add() = PodAllocation();
  v1::Allocation bare;
  bare.set_pool("pods");
  bare.set_address("10.1.0.11");
  bare.set_owner("o2");
  *allocations.Add() = bare;
  EXPECT_EQ(AllocationsTable(allocations),
            "ADDRESS     POOL   OWNER            NODE     LABELS             EXPIRES\n"
            "10.1.0.10   pods   k8s/uid-1/eth0   node-a   app=web,team=red   2026-11-22T14:05:00Z\n"
            "10.1.0.11   pods   o2               -        -                  -\n");
  EXPECT_EQ(AllocationsTable({}), "ADDRESS   POOL   OWNER   NODE   LABELS   EXPIRES\n");
}

TEST(OutputTest, HistoryTable) {
  Repeated<v1::HistoryEntry> entries;
  v1::HistoryEntry* held = entries.Add();
  held->set_owner("b");
  held->set_pool("pods");
  held->set_from_time_unix_ms(1795356360000);
  v1::HistoryEntry* ended = entries.Add();
  ended->set_owner("a");
  ended->set_pool("pods");
  ended->set_node("node-a");
  ended->set_from_time_unix_ms(1795356300000);
  ended->set_to_time_unix_ms(1795356330000);
  ended->set_end_reason("expired");
  EXPECT_EQ(HistoryTable(entries),
            "OWNER   POOL   NODE     FROM                   TO                     REASON\n"
            "b       pods   -        2026-11-22T14:06:00Z   -                      -\n"
            "a       pods   node-a   2026-11-22T14:05:00Z   2026-11-22T14:05:30Z   expired\n");
}

TEST(OutputTest, OutputWritesOnlyTheChosenFormat) {
  std::ostringstream text;
  Output table(OutputFormat::kTable, text);
  WriteAllocation(table, PodAllocation());
  EXPECT_EQ(text.str().rfind("ADDRESS", 0), 0u);

  std::ostringstream json_text;
  Output json(OutputFormat::kJson, json_text);
  Repeated<v1::Pool> pools;
  *pools.Add() = Ipv4Pool();
  WritePools(json, pools);
  const nlohmann::json parsed = nlohmann::json::parse(json_text.str());
  ASSERT_TRUE(parsed.is_array());
  EXPECT_EQ(parsed[0]["name"], "pods");
  EXPECT_EQ(json_text.str().back(), '\n');
}

}  // namespace
}  // namespace abode::cli

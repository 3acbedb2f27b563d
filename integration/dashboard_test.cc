// deploy/grafana/abode-dashboard.json against the daemons: every metric its PromQL queries read is a series that
// a live abode-allocator or abode-node serves at /metrics. The live part runs both daemons (abode-node in this
// test's private network namespace; root), drives an Allocate, an error, a magic address and a CNI ADD so that
// the series that appear only with traffic exist, then scrapes both.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "abode/v1/allocator.grpc.pb.h"
#include "abode/v1/nodes.grpc.pb.h"
#include "abode/v1/pools.grpc.pb.h"
#include "absl/strings/str_join.h"
#include "integration/allocator_process.h"
#include "integration/cluster_harness.h"
#include "integration/cni_harness.h"
#include "integration/promql_names.h"
#include "integration/require_root.h"
#include "nlohmann/json.hpp"
#include "test-support/eventually.h"
#include "test-support/temp_dir.h"

namespace abode::integration {
namespace {

using nlohmann::json;

std::set<std::string> Names(const std::string& expression) {
  auto names = PromqlMetricNames(expression);
  EXPECT_TRUE(names.ok()) << names.status();
  return names.ok() ? *names : std::set<std::string>{};
}

TEST(PromqlNamesTest, MetricsInsideFunctionsAggregationsAndHistograms) {
  EXPECT_EQ(Names("up"), (std::set<std::string>{"up"}));
  EXPECT_EQ(Names("histogram_quantile(0.99, sum by (le, grpc_method) "
                  "(rate(grpc_server_handling_seconds_bucket{grpc_method=\"Allocate\"}[$__rate_interval])))"),
            (std::set<std::string>{"grpc_server_handling_seconds_bucket"}));
  EXPECT_EQ(Names("max by (pool) (abode_pool_allocated_addresses) / max by (pool) (abode_pool_addresses) > 0.9"),
            (std::set<std::string>{"abode_pool_allocated_addresses", "abode_pool_addresses"}));
  EXPECT_EQ(Names("sum without (instance) (a_total) or on (job) group_left (x) b * ignoring (y) c unless d and e"),
            (std::set<std::string>{"a_total", "b", "c", "d", "e"}));
  EXPECT_EQ(Names("scalar(max(abode_state_revision)) - abode_node_applied_revision offset 5m"),
            (std::set<std::string>{"abode_state_revision", "abode_node_applied_revision"}));
  EXPECT_EQ(Names("topk(3, sum(rate(x_total[5m:1m]))) > bool 1e3 + Inf - NaN + 0x1f + .5"),
            (std::set<std::string>{"x_total"}));
  EXPECT_EQ(Names("count_values(\"v\", build_info) + sum by (le) (h_bucket{le=~\"0.(1|5)\", a!='}'})"),
            (std::set<std::string>{"build_info", "h_bucket"}));
  EXPECT_EQ(Names("{__name__=\"by_name\", job=\"x\"} + rate(m[${interval}]) + n[[w]]"),
            (std::set<std::string>{"by_name", "m", "n"}));
  EXPECT_EQ(Names("vector(1) + time()"), (std::set<std::string>{}));
  for (const char* bad : {"rate(x[5m]", "x{a=\"b\"", "sum(x))", "x{a=\"b}"}) {
    EXPECT_FALSE(PromqlMetricNames(bad).ok()) << bad;
  }
}

TEST(PromqlNamesTest, GrafanaVariableQueries) {
  EXPECT_EQ(*GrafanaVariableMetricNames("label_values(abode_ready{job=\"a\"}, instance)"),
            (std::set<std::string>{"abode_ready"}));
  EXPECT_EQ(*GrafanaVariableMetricNames("label_values(instance)"), (std::set<std::string>{}));
  EXPECT_EQ(*GrafanaVariableMetricNames("query_result(sum by (pool) (abode_pool_addresses))"),
            (std::set<std::string>{"abode_pool_addresses"}));
  EXPECT_EQ(*GrafanaVariableMetricNames("metrics(abode_.*)"), (std::set<std::string>{}));
}

// Every PromQL expression of the dashboard: its panels' targets (rows' nested panels too) and its query
// variables, keyed by where it stands.
std::vector<std::pair<std::string, std::string>> Queries(const json& dashboard, bool* variables_ok) {
  std::vector<std::pair<std::string, std::string>> out;
  std::function<void(const json&)> walk = [&](const json& panels) {
    for (const json& panel : panels) {
      for (const json& target : panel.value("targets", json::array())) {
        if (target.contains("expr")) out.emplace_back(panel.value("title", "?"), target["expr"].get<std::string>());
      }
      if (panel.contains("panels")) walk(panel["panels"]);
    }
  };
  walk(dashboard.value("panels", json::array()));
  *variables_ok = true;
  for (const json& variable : dashboard["templating"].value("list", json::array())) {
    if (variable.value("type", "") != "query") continue;
    const json& q = variable["query"];
    const std::string text = q.is_string() ? q.get<std::string>() : q.value("query", "");
    auto names = GrafanaVariableMetricNames(text);
    if (!names.ok()) *variables_ok = false;
    // As a query of its own, so that the names it reads are checked with the rest.
    if (names.ok() && !names->empty()) out.emplace_back("$" + variable.value("name", "?"), absl::StrJoin(*names, " + "));
  }
  return out;
}

json LoadDashboard() {
  std::ifstream in(ABODE_DASHBOARD);
  return json::parse(in);
}

// Metric name -> the panels that query it.
std::map<std::string, std::set<std::string>> DashboardMetrics() {
  const json dashboard = LoadDashboard();
  bool variables_ok = false;
  std::map<std::string, std::set<std::string>> metrics;
  for (const auto& [where, expression] : Queries(dashboard, &variables_ok)) {
    auto names = PromqlMetricNames(expression);
    EXPECT_TRUE(names.ok()) << where << ": " << names.status();
    if (!names.ok()) continue;
    EXPECT_FALSE(names->empty()) << where << ": " << expression << " reads no metric";
    for (const std::string& name : *names) metrics[name].insert(where);
  }
  EXPECT_TRUE(variables_ok);
  return metrics;
}

TEST(DashboardTest, IsAGrafanaDashboardWhosePanelsAllQueryPrometheus) {
  const json dashboard = LoadDashboard();
  EXPECT_EQ(dashboard.value("uid", ""), "abode-overview");
  EXPECT_FALSE(dashboard.value("title", "").empty());
  int targets = 0;
  std::set<int> ids;
  for (const json& panel : dashboard["panels"]) {
    EXPECT_TRUE(ids.insert(panel.value("id", -1)).second) << "panel id twice: " << panel.value("id", -1);
    if (panel.value("type", "") == "row") continue;
    EXPECT_EQ(panel["datasource"].value("type", ""), "prometheus") << panel.value("title", "?");
    EXPECT_FALSE(panel.value("targets", json::array()).empty()) << panel.value("title", "?");
    targets += static_cast<int>(panel.value("targets", json::array()).size());
  }
  EXPECT_GT(targets, 20);
  // The tracer's exporter is on the dashboard too.
  const auto metrics = DashboardMetrics();
  for (const char* name : {"abode_trace_export_queue_length", "abode_trace_export_dropped_total",
                           "abode_trace_export_errors_total"}) {
    EXPECT_EQ(metrics.count(name), 1u) << name;
  }
}

// GET /metrics from 127.0.0.1:`port`: the body, or "" when nothing answers.
std::string Scrape(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "";
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string reply;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) {
    const std::string request = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (::write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size())) {
      char buf[65536];
      for (ssize_t n; (n = ::read(fd, buf, sizeof(buf))) > 0;) reply.append(buf, static_cast<size_t>(n));
    }
  }
  ::close(fd);
  const size_t body = reply.find("\r\n\r\n");
  return body == std::string::npos ? "" : reply.substr(body + 4);
}

// The names of the samples in a text exposition (histogram samples under their _bucket/_sum/_count names).
std::set<std::string> SeriesNames(const std::string& exposition) {
  std::set<std::string> names;
  std::istringstream lines(exposition);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] == '#') continue;
    names.insert(line.substr(0, line.find_first_of("{ ")));
  }
  return names;
}

void MustRun(const std::vector<std::string>& argv) {
  const ProcessResult r = RunProcess(argv);
  ASSERT_EQ(r.exit_code, 0) << absl::StrJoin(argv, " ") << ": " << r.err;
}

TEST(DashboardLiveTest, EverySeriesTheDashboardQueriesIsServedByADaemon) {
  ABODE_REQUIRE_ROOT("the dashboard's live test needs root (CI runs as root)",
                     "needs root: abode-node programs nftables in a network namespace");
  ASSERT_TRUE(EnterPrivateNetworkNamespace().ok());
  const auto wanted = DashboardMetrics();
  ASSERT_FALSE(wanted.empty());
  test_support::TempDir dir;
  // The magic interface: a bridge, as a node's pod bridge.
  MustRun({"/usr/sbin/ip", "link", "add", "pbr0", "type", "bridge"});
  MustRun({"/usr/sbin/ip", "link", "set", "pbr0", "up"});

  // Fixed ports: the namespace is this test's own.
  constexpr int kAllocatorMetrics = 9464;
  constexpr int kNodeMetrics = 9465;
  AllocatorProcess allocator(ABODE_ALLOCATOR_BIN, dir.path() + "/data",
                             {"--metrics-listen", "127.0.0.1:" + std::to_string(kAllocatorMetrics)});
  ASSERT_TRUE(allocator.Start().ok()) << allocator.log_path();
  auto channel = grpc::CreateChannel(allocator.address(), grpc::InsecureChannelCredentials());
  const auto deadline = [] { return std::chrono::system_clock::now() + std::chrono::seconds(10); };
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(deadline());
    v1::CreatePoolRequest req;
    req.mutable_pool()->set_name("pods");
    req.mutable_pool()->set_cidr("10.50.0.0/24");
    req.mutable_pool()->set_purpose(v1::POOL_PURPOSE_WORKLOAD);
    v1::Pool pool;
    const grpc::Status s = v1::Pools::NewStub(channel)->CreatePool(&ctx, req, &pool);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  for (const std::string pool : {"pods", "no-such-pool"}) {  // one OK, one NOT_FOUND
    grpc::ClientContext ctx;
    ctx.set_deadline(deadline());
    v1::AllocateRequest req;
    req.set_pool(pool);
    req.set_owner("pod/agent");
    req.set_node("node-a");
    (*req.mutable_labels())["app"] = "agent";
    v1::Allocation allocation;
    const grpc::Status s = v1::Allocator::NewStub(channel)->Allocate(&ctx, req, &allocation);
    EXPECT_EQ(s.error_code(), pool == "pods" ? grpc::StatusCode::OK : grpc::StatusCode::NOT_FOUND)
        << s.error_message();
  }
  {  // A magic address on node-a: its reconcile checks the host's kernel settings.
    grpc::ClientContext ctx;
    ctx.set_deadline(deadline());
    v1::CreateMagicAddressRequest req;
    req.mutable_address()->set_name("agent");
    req.mutable_address()->set_address("169.254.210.210");
    auto* port = req.mutable_address()->add_ports();
    port->set_protocol(v1::PROTOCOL_UDP);
    port->set_port(8125);
    req.mutable_address()->set_label_selector("app=agent");
    v1::MagicAddress created;
    const grpc::Status s = v1::MagicAddresses::NewStub(channel)->CreateMagicAddress(&ctx, req, &created);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  const std::string socket = dir.path() + "/cni.sock";
  const std::string node_log = dir.path() + "/node.log";
  Child node;
  ASSERT_TRUE(node.Start({ABODE_NODE_BIN, "--node", "node-a", "--allocator", allocator.address(), "--magic-interface",
                          "pbr0", "--metrics-listen", "127.0.0.1:" + std::to_string(kNodeMetrics), "--cni-socket",
                          socket, "--log-format", "json"},
                         node_log)
                  .ok());
  ASSERT_TRUE(test_support::Eventually([&] { return std::filesystem::exists(socket); }, std::chrono::seconds(30)));
  PluginRun add;
  add.plugin = ABODE_CNI_BIN;
  add.env = {{"CNI_COMMAND", "ADD"}, {"CNI_CONTAINERID", "dash1"}, {"CNI_NETNS", "/proc/self/ns/net"},
             {"CNI_IFNAME", "eth0"}};
  add.stdin_text = json{{"cniVersion", "1.0.0"},
                        {"name", "dash"},
                        {"ipam", {{"type", "abode"}, {"range", "10.60.0.0/24"}, {"socket_path", socket}}}}
                       .dump();
  const PluginExit added = ExecPlugin(add);
  ASSERT_EQ(added.exit_code, 0) << added.stdout_text;

  // Series that need a reconcile or the plugin's closing frame appear shortly after; wait for all of them.
  std::set<std::string> served;
  std::vector<std::string> missing;
  test_support::Eventually(
      [&] {
        served = SeriesNames(Scrape(kAllocatorMetrics));
        const std::set<std::string> from_node = SeriesNames(Scrape(kNodeMetrics));
        served.insert(from_node.begin(), from_node.end());
        missing.clear();
        for (const auto& [name, panels] : wanted) {
          if (served.count(name) == 0) {
            missing.push_back(name + " (" + absl::StrJoin(panels, ", ") + ")");
          }
        }
        return missing.empty();
      },
      std::chrono::seconds(30), std::chrono::milliseconds(200));
  EXPECT_TRUE(missing.empty()) << "the dashboard queries series no daemon serves: " << absl::StrJoin(missing, "; ");

  // abode-node's JSON log, line by line.
  node.Kill();
  std::ifstream log(node_log);
  int lines = 0;
  for (std::string line; std::getline(log, line); ++lines) {
    const json parsed = json::parse(line, nullptr, false);
    EXPECT_TRUE(parsed.is_object() && parsed.value("logger", "") == "abode-node") << line;
  }
  EXPECT_GT(lines, 0);
}

}  // namespace
}  // namespace abode::integration

// Traces in a real Jaeger (v2 all-in-one, built by scripts/test-tools.sh jaeger): a 3-member allocator
// cluster, two abode-node processes (each in its own network namespace, pointed at a follower) and the CNI
// plugin, all exporting OTLP/gRPC to Jaeger; the spans are read back from Jaeger's query API. Needs root (skips
// without it unless CI is set); skips when Jaeger cannot be built here (fails when CI is set).
//
//   test process (private netns): Jaeger on the bridge address, bridge of the cluster harness
//   member-1..3: their own namespaces on the bridge        node-0, node-1: namespaces on the bridge (.200, .201)
#include <curl/curl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "abode/v1/nodes.grpc.pb.h"
#include "absl/strings/str_cat.h"
#include "integration/cluster_harness.h"
#include "integration/cni_harness.h"
#include "test-support/eventually.h"

namespace abode::integration {
namespace {

using nlohmann::json;
using test_support::Eventually;

bool AllowedHere() { return ::geteuid() == 0 || std::getenv("CI") != nullptr; }

// A GET answered 200, its body; else nullopt.
std::optional<std::string> HttpGet(const std::string& url) {
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return std::nullopt;
  std::string body;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 5000L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, +[](char* data, size_t size, size_t n, void* out) {
    static_cast<std::string*>(out)->append(data, size * n);
    return size * n;
  });
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  const CURLcode rc = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(curl);
  if (rc != CURLE_OK || status != 200) return std::nullopt;
  return body;
}

// One span of a trace as Jaeger's query API returns it, with its process's service and instance.
struct JaegerSpan {
  std::string trace_id, span_id, name, service, instance, parent, kind;
  int64_t start_us = 0, duration_us = 0;
  json tags;
  json references;
  json logs;  // the span's events
  int64_t end_us() const { return start_us + duration_us; }
  const json* Tag(const std::string& key) const {
    for (const json& t : tags) {
      if (t["key"] == key) return &t["value"];
    }
    return nullptr;
  }
  std::string StrTag(const std::string& key) const {
    const json* v = Tag(key);
    if (v == nullptr) return "";
    return v->is_string() ? v->get<std::string>() : v->dump();
  }
  bool error() const { return StrTag("otel.status_code") == "ERROR"; }
  // Whether the span links (a FOLLOWS_FROM reference) to span `span_id` of trace `trace_id`.
  bool LinksTo(const std::string& trace_id, const std::string& span_id) const {
    for (const json& r : references) {
      if (r["refType"] == "FOLLOWS_FROM" && r["traceID"] == trace_id && r["spanID"] == span_id) return true;
    }
    return false;
  }
  // The fields of each event named `name`, as key → text.
  std::vector<std::map<std::string, std::string>> Events(const std::string& name) const {
    std::vector<std::map<std::string, std::string>> out;
    for (const json& log : logs) {
      std::map<std::string, std::string> fields;
      for (const json& f : log["fields"]) fields[f["key"]] = f["value"].is_string() ? f["value"].get<std::string>() : f["value"].dump();
      if (fields["event"] == name) out.push_back(std::move(fields));
    }
    return out;
  }
};

std::vector<JaegerSpan> SpansOf(const json& trace) {
  std::vector<JaegerSpan> out;
  for (const json& s : trace["spans"]) {
    JaegerSpan span;
    span.trace_id = s["traceID"];
    span.span_id = s["spanID"];
    span.name = s["operationName"];
    span.start_us = s["startTime"];
    span.duration_us = s["duration"];
    span.tags = s["tags"];
    span.references = s["references"];
    span.logs = s.contains("logs") ? s["logs"] : json::array();
    for (const json& r : s["references"]) {
      if (r["refType"] == "CHILD_OF" && r["traceID"] == span.trace_id) span.parent = r["spanID"];
    }
    const json& process = trace["processes"][s["processID"].get<std::string>()];
    span.service = process["serviceName"];
    for (const json& t : process["tags"]) {
      if (t["key"] == "service.instance.id") span.instance = t["value"];
    }
    span.kind = span.StrTag("span.kind");
    out.push_back(std::move(span));
  }
  return out;
}

class TracingTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!AllowedHere()) return;
    const ProcessResult built = RunProcess({ABODE_SOURCE_DIR "/scripts/test-tools.sh", "jaeger"});
    if (built.exit_code == 77) {
      skip_ = new std::string("Jaeger cannot be built here (scripts/test-tools.sh jaeger exit 77): " + built.err);
      return;
    }
    ASSERT_EQ(built.exit_code, 0) << built.err;
    const ProcessResult dir = RunProcess({ABODE_SOURCE_DIR "/scripts/test-tools.sh", "--dir", "jaeger"});
    ASSERT_EQ(dir.exit_code, 0) << dir.err;
    const std::string jaeger = dir.out.substr(0, dir.out.find('\n')) + "/jaeger";

    ASSERT_TRUE(EnterPrivateNetworkNamespace().ok());
    dir_ = new std::string(std::filesystem::temp_directory_path() / ("abode-tracing-" + std::to_string(::getpid())));
    std::filesystem::create_directories(*dir_);
    auto cluster = ClusterHarness::Create(ABODE_ALLOCATOR_BIN, ClusterOptions{.members = 3, .network_namespaces = true});
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = cluster->release();
    const std::string host_ip = cluster_->test_host_ip();

    // Jaeger on the bridge address, so that the members and nodes in their namespaces reach it.
    const int otlp = FreeLoopbackPort(), query = FreeLoopbackPort(), query_grpc = FreeLoopbackPort(),
              health = FreeLoopbackPort();
    query_url_ = new std::string(absl::StrCat("http://127.0.0.1:", query));
    {
      std::ofstream config(*dir_ + "/jaeger.yaml");
      config << "service:\n  extensions: [jaeger_storage, jaeger_query, healthcheckv2]\n"
             << "  pipelines:\n    traces:\n      receivers: [otlp]\n      processors: [batch]\n"
             << "      exporters: [jaeger_storage_exporter]\n"
             << "  telemetry:\n    metrics:\n      level: none\n    logs:\n      level: warn\n"
             << "extensions:\n  jaeger_query:\n    storage:\n      traces: mem\n"
             << "    http:\n      endpoint: \"0.0.0.0:" << query << "\"\n"
             << "    grpc:\n      endpoint: \"127.0.0.1:" << query_grpc << "\"\n"
             << "  jaeger_storage:\n    backends:\n      mem:\n        memory:\n          max_traces: 100000\n"
             << "  healthcheckv2:\n    use_v2: true\n    http:\n      endpoint: \"127.0.0.1:" << health << "\"\n"
             << "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: \"0.0.0.0:" << otlp << "\"\n"
             << "processors:\n  batch:\n    timeout: 100ms\n"
             << "exporters:\n  jaeger_storage_exporter:\n    trace_storage: mem\n";
    }
    jaeger_ = new Child();
    ASSERT_TRUE(jaeger_->Start({jaeger, "--config", "file:" + *dir_ + "/jaeger.yaml"}, *dir_ + "/jaeger.log").ok());
    ASSERT_TRUE(Eventually([&] { return HttpGet(absl::StrCat("http://127.0.0.1:", health, "/status")).has_value(); },
                           std::chrono::seconds(60), std::chrono::milliseconds(50)))
        << "Jaeger did not become healthy; see " << *dir_ << "/jaeger.log";

    // Every abode process started from here on exports to Jaeger (they inherit the environment).
    ::setenv("OTEL_EXPORTER_OTLP_ENDPOINT", absl::StrCat("http://", host_ip, ":", otlp).c_str(), 1);
    ::setenv("OTEL_TRACES_SAMPLER", "parentbased_always_on", 1);
    ASSERT_TRUE(cluster_->StartAll().ok());
    auto leader = cluster_->WaitForLeader(std::chrono::seconds(60));
    ASSERT_TRUE(leader.ok()) << leader.status();
    leader_ = *leader;
    follower_ = (leader_ + 1) % 3;

    // Two nodes, each in its own namespace on the bridge, talking to the follower only.
    for (int k = 0; k < 2; ++k) {
      const std::string ns = absl::StrCat("abtr", ::getpid() % 100000, "n", k);
      const std::string host_end = absl::StrCat("atr", ::getpid() % 100000, "h", k);
      const std::string ip = host_ip.substr(0, host_ip.rfind('.')) + "." + std::to_string(200 + k);
      namespaces_.push_back(ns);
      const absl::Status s = Shell(absl::StrCat(
          "ip netns add ", ns, " && ip link add ", host_end, " type veth peer name up0 netns ", ns, " && ip link set ",
          host_end, " master ", cluster_->bridge(), " up && ip -n ", ns, " addr add ", ip, "/24 dev up0 && ip -n ", ns,
          " link set up0 up && ip -n ", ns, " link set lo up && ip -n ", ns, " link add mag0 type bridge && ip -n ",
          ns, " link set mag0 up"));
      ASSERT_TRUE(s.ok()) << s;
      nodes_.push_back(new Child());
      const std::string node = absl::StrCat("node-", k);
      ASSERT_TRUE(nodes_.back()
                      ->Start({"/usr/sbin/ip", "netns", "exec", ns, ABODE_NODE_BIN, "--node", node, "--allocator",
                               cluster_->grpc_address(follower_), "--cni-socket", Socket(k), "--uplink-interface",
                               "up0", "--magic-interface", "mag0", "--log-level", "info"},
                              *dir_ + "/" + node + ".log")
                      .ok());
    }
    for (int k = 0; k < 2; ++k) {
      struct stat st;
      ASSERT_TRUE(Eventually([&] { return ::stat(Socket(k).c_str(), &st) == 0; }, std::chrono::seconds(30)))
          << "abode-node " << k << " did not serve its socket; see " << *dir_;
    }
  }

  static void TearDownTestSuite() {
    for (Child* n : nodes_) delete n;
    nodes_.clear();
    for (const std::string& ns : namespaces_) (void)Shell("ip netns del " + ns);
    namespaces_.clear();
    delete cluster_;
    cluster_ = nullptr;
    delete jaeger_;
    jaeger_ = nullptr;
    if (dir_ != nullptr && !HasFailure()) std::filesystem::remove_all(*dir_);
  }

  void SetUp() override {
    if (!AllowedHere()) GTEST_SKIP() << "the tracing test needs root (network namespaces); set CI to force it";
    if (skip_ != nullptr) {
      ASSERT_EQ(std::getenv("CI"), nullptr) << *skip_;
      GTEST_SKIP() << *skip_;
    }
    ASSERT_NE(cluster_, nullptr);
    ASSERT_EQ(nodes_.size(), 2u);
  }

  static std::string Socket(int k) { return absl::StrCat(*dir_, "/node-", k, ".sock"); }

  // Runs the plugin's ADD for `container` on node 0 with an ipam section for `range` (and range_start/end).
  static PluginExit Add(const std::string& container, const json& ipam) {
    PluginRun run;
    run.plugin = ABODE_CNI_BIN;
    run.env = {{"CNI_COMMAND", "ADD"},
               {"CNI_CONTAINERID", container},
               {"CNI_NETNS", "/var/run/netns/" + container},
               {"CNI_IFNAME", "eth0"},
               {"CNI_PATH", *dir_}};
    json full = ipam;
    full["type"] = "abode";
    full["socket_path"] = Socket(0);
    run.stdin_text = json{{"cniVersion", "1.0.0"}, {"name", "tracenet"}, {"type", "bridge"}, {"ipam", full}}.dump();
    return ExecPlugin(run);
  }

  // The trace of `service` holding a span whose tag `key` is `value`, once Jaeger has it.
  static std::string FindTrace(const std::string& service, const std::string& key, const std::string& value) {
    std::string found;
    Eventually(
        [&] {
          auto body = HttpGet(absl::StrCat(*query_url_, "/api/traces?service=", service, "&limit=200&lookback=1h"));
          if (!body) return false;
          const json j = json::parse(*body, nullptr, false);
          if (!j.is_object() || !j["data"].is_array()) return false;
          for (const json& trace : j["data"]) {
            for (const JaegerSpan& s : SpansOf(trace)) {
              if (s.StrTag(key) == value) found = s.trace_id;
            }
          }
          return !found.empty();
        },
        std::chrono::seconds(30), std::chrono::milliseconds(200));
    return found;
  }

  // The whole trace once `ready` holds for it (spans arrive from several processes at their own pace).
  template <typename Ready>
  static std::vector<JaegerSpan> AwaitTrace(const std::string& trace_id, Ready ready) {
    std::vector<JaegerSpan> spans;
    Eventually(
        [&] {
          auto body = HttpGet(absl::StrCat(*query_url_, "/api/traces/", trace_id));
          if (!body) return false;
          const json j = json::parse(*body, nullptr, false);
          if (!j.is_object() || !j["data"].is_array() || j["data"].empty()) return false;
          spans = SpansOf(j["data"][0]);
          return ready(spans);
        },
        std::chrono::seconds(30), std::chrono::milliseconds(200));
    return spans;
  }

  // The spans named `operation` of abode-allocator that link to span `span_id` of trace `trace_id` (each the
  // root of a trace of its own: a log entry serves many callers), once `ready` holds for them.
  template <typename Ready>
  static std::vector<JaegerSpan> AwaitLinked(const std::string& operation, const std::string& trace_id,
                                             const std::string& span_id, Ready ready) {
    std::vector<JaegerSpan> linked;
    Eventually(
        [&] {
          auto body = HttpGet(absl::StrCat(*query_url_, "/api/traces?service=abode-allocator&operation=", operation,
                                           "&limit=1000&lookback=1h"));
          if (!body) return false;
          const json j = json::parse(*body, nullptr, false);
          if (!j.is_object() || !j["data"].is_array()) return false;
          linked.clear();
          for (const json& trace : j["data"]) {
            for (JaegerSpan& s : SpansOf(trace)) {
              if (s.name == operation && s.LinksTo(trace_id, span_id)) linked.push_back(std::move(s));
            }
          }
          return ready(linked);
        },
        std::chrono::seconds(30), std::chrono::milliseconds(200));
    return linked;
  }

  // The raft.commit span on the leader that links to span `span_id` of trace `trace_id`.
  static std::optional<JaegerSpan> CommitLinkedTo(const std::string& trace_id, const std::string& span_id) {
    const auto commits =
        AwaitLinked("raft.commit", trace_id, span_id, [](const std::vector<JaegerSpan>& s) { return !s.empty(); });
    EXPECT_EQ(commits.size(), 1u) << "one raft.commit span on the leader links to the call";
    if (commits.empty()) return std::nullopt;
    return commits[0];
  }

  // The raft.apply spans beneath `commit`, in its trace, once every member's has arrived.
  static std::vector<JaegerSpan> AppliesOf(const JaegerSpan& commit) {
    auto applies_of = [&commit](const std::vector<JaegerSpan>& spans) {
      std::vector<JaegerSpan> out;
      for (const JaegerSpan& s : spans) {
        if (s.name == "raft.apply" && s.parent == commit.span_id) out.push_back(s);
      }
      return out;
    };
    return applies_of(AwaitTrace(commit.trace_id, [&](const std::vector<JaegerSpan>& spans) {
      return Instances(applies_of(spans)).size() == 3;
    }));
  }

  static std::set<std::string> Instances(const std::vector<JaegerSpan>& spans) {
    std::set<std::string> out;
    for (const JaegerSpan& s : spans) out.insert(s.instance);
    return out;
  }

  static std::vector<const JaegerSpan*> Named(const std::vector<JaegerSpan>& spans, const std::string& name,
                                              const std::string& service = "") {
    std::vector<const JaegerSpan*> out;
    for (const JaegerSpan& s : spans) {
      if (s.name == name && (service.empty() || s.service == service)) out.push_back(&s);
    }
    return out;
  }

  // Whether at least `n` spans of that name (and service, when given) have reached Jaeger: each process exports
  // its spans in its own batches, so a trace fills in over time.
  static bool Has(const std::vector<JaegerSpan>& spans, const std::string& name, const std::string& service,
                  size_t n = 1) {
    return Named(spans, name, service).size() >= n;
  }

  static const JaegerSpan* ById(const std::vector<JaegerSpan>& spans, const std::string& id) {
    for (const JaegerSpan& s : spans) {
      if (s.span_id == id) return &s;
    }
    return nullptr;
  }

  static std::string* skip_;
  static std::string* dir_;
  static std::string* query_url_;
  static Child* jaeger_;
  static ClusterHarness* cluster_;
  static std::vector<Child*> nodes_;
  static std::vector<std::string> namespaces_;
  static int leader_, follower_;
};

std::string* TracingTest::skip_ = nullptr;
std::string* TracingTest::dir_ = nullptr;
std::string* TracingTest::query_url_ = nullptr;
Child* TracingTest::jaeger_ = nullptr;
ClusterHarness* TracingTest::cluster_ = nullptr;
std::vector<Child*> TracingTest::nodes_;
std::vector<std::string> TracingTest::namespaces_;
int TracingTest::leader_ = -1;
int TracingTest::follower_ = -1;

TEST_F(TracingTest, OneCniAddIsOneTraceFromThePluginThroughTheFollowerToTheLeadersApply) {
  const PluginExit added = Add("trace-ctr-1", {{"range", "10.90.0.0/24"}});
  ASSERT_EQ(added.exit_code, 0) << added.stdout_text;
  const std::string address = json::parse(added.stdout_text)["ips"][0]["address"].get<std::string>();
  const std::string ip = address.substr(0, address.find('/'));

  const std::string trace_id = FindTrace("abode-cni", "cni.container_id", "trace-ctr-1");
  ASSERT_FALSE(trace_id.empty()) << "no abode-cni span for the ADD in Jaeger";
  const auto spans = AwaitTrace(trace_id, [](const std::vector<JaegerSpan>& s) {
    return Has(s, "cni ADD", "abode-cni") && Has(s, "cni ADD", "abode-node") &&
           Has(s, "abode.v1.Allocator/Allocate", "abode-node") &&
           Has(s, "abode.v1.Allocator/Allocate", "abode-allocator") && Has(s, "abode.v1.Replica/Forward", "", 2);
  });

  // The chain: plugin → abode-node → its client call → Allocate on the follower → Forward → leader.
  auto plugin = Named(spans, "cni ADD", "abode-cni");
  ASSERT_EQ(plugin.size(), 1u);
  EXPECT_EQ(plugin[0]->parent, "");
  EXPECT_EQ(plugin[0]->kind, "client");
  auto node = Named(spans, "cni ADD", "abode-node");
  ASSERT_EQ(node.size(), 1u);
  EXPECT_EQ(node[0]->parent, plugin[0]->span_id);
  EXPECT_EQ(node[0]->instance, "node-0");
  EXPECT_EQ(node[0]->StrTag("abode.address"), ip);
  EXPECT_EQ(node[0]->StrTag("cni.container_id"), "trace-ctr-1");

  const JaegerSpan* client = nullptr;
  const JaegerSpan* server = nullptr;
  for (const JaegerSpan* c : Named(spans, "abode.v1.Allocator/Allocate", "abode-node")) {
    if (c->parent == node[0]->span_id) client = c;
  }
  ASSERT_NE(client, nullptr);
  EXPECT_EQ(client->kind, "client");
  for (const JaegerSpan* s : Named(spans, "abode.v1.Allocator/Allocate", "abode-allocator")) {
    if (s->parent == client->span_id) server = s;
  }
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(server->kind, "server");
  EXPECT_EQ(server->instance, absl::StrCat("member-", follower_ + 1));
  EXPECT_EQ(server->StrTag("rpc.system"), "grpc");
  EXPECT_EQ(server->StrTag("rpc.service"), "abode.v1.Allocator");
  EXPECT_EQ(server->StrTag("rpc.method"), "Allocate");
  EXPECT_EQ(server->StrTag("rpc.grpc.status_code"), "0");

  const JaegerSpan* forward = nullptr;
  for (const JaegerSpan* f : Named(spans, "abode.v1.Replica/Forward")) {
    if (f->parent == server->span_id) forward = f;
  }
  ASSERT_NE(forward, nullptr) << "the follower's forward to the leader";
  EXPECT_EQ(forward->kind, "client");
  const JaegerSpan* at_leader = nullptr;
  for (const JaegerSpan* f : Named(spans, "abode.v1.Replica/Forward")) {
    if (f->parent == forward->span_id) at_leader = f;
  }
  ASSERT_NE(at_leader, nullptr);
  EXPECT_EQ(at_leader->instance, absl::StrCat("member-", leader_ + 1));

  // Time runs forward along the chain; the synchronous calls nest.
  for (const JaegerSpan& s : spans) {
    if (const JaegerSpan* parent = ById(spans, s.parent)) {
      EXPECT_GE(s.start_us, parent->start_us) << s.name << " starts before its parent " << parent->name;
    }
  }
  for (const JaegerSpan* inner : {node[0], client, server}) {
    const JaegerSpan* outer = ById(spans, inner->parent);
    ASSERT_NE(outer, nullptr);
    EXPECT_LE(inner->end_us(), outer->end_us()) << inner->name << " ends after " << outer->name;
  }

  // The log entry that carried the command links to the follower's call rather than belonging to its trace:
  // committed by the leader, then applied on every member at the same index, each apply beneath the commit.
  const std::optional<JaegerSpan> found = CommitLinkedTo(trace_id, server->span_id);
  ASSERT_TRUE(found.has_value());
  const JaegerSpan& commit = *found;
  EXPECT_EQ(commit.instance, absl::StrCat("member-", leader_ + 1));
  EXPECT_EQ(commit.parent, "");
  EXPECT_FALSE(commit.StrTag("raft.term").empty());
  EXPECT_FALSE(commit.StrTag("raft.index").empty());
  EXPECT_GE(commit.start_us, server->start_us);
  EXPECT_FALSE(commit.error());
  const auto applies = AppliesOf(commit);
  EXPECT_EQ(Instances(applies).size(), 3u) << "the entry is applied on every member";
  for (const JaegerSpan& apply : applies) {
    EXPECT_EQ(apply.trace_id, commit.trace_id);
    EXPECT_EQ(apply.parent, commit.span_id);
    EXPECT_EQ(apply.StrTag("raft.index"), commit.StrTag("raft.index")) << apply.instance;
    EXPECT_EQ(apply.StrTag("raft.batch_size"), commit.StrTag("raft.batch_size")) << apply.instance;
    EXPECT_EQ(apply.StrTag("abode.commands_refused"), "0");
    EXPECT_GE(apply.start_us, server->start_us);
    EXPECT_FALSE(apply.error());
  }
  // The leader closes the entry once its own apply is done (a lone caller may hear before, from inside it).
  for (const JaegerSpan& apply : applies) {
    if (apply.instance == commit.instance) {
      EXPECT_LE(apply.end_us(), commit.end_us() + 1);  // µs rounding
    }
  }
}

TEST_F(TracingTest, AFullPoolShowsAsAnErrorAlongTheTrace) {
  const json one_address = {{"range", "10.91.0.0/24"}, {"range_start", "10.91.0.5"}, {"range_end", "10.91.0.5"}};
  ASSERT_EQ(Add("trace-full-1", one_address).exit_code, 0);
  const PluginExit refused = Add("trace-full-2", one_address);
  ASSERT_NE(refused.exit_code, 0) << refused.stdout_text;

  const std::string trace_id = FindTrace("abode-cni", "cni.container_id", "trace-full-2");
  ASSERT_FALSE(trace_id.empty());
  const auto spans = AwaitTrace(trace_id, [](const std::vector<JaegerSpan>& s) {
    return Has(s, "cni ADD", "abode-cni") && Has(s, "cni ADD", "abode-node") &&
           Has(s, "abode.v1.Allocator/Allocate", "abode-allocator");
  });
  auto plugin = Named(spans, "cni ADD", "abode-cni");
  ASSERT_EQ(plugin.size(), 1u);
  EXPECT_TRUE(plugin[0]->error());
  auto node = Named(spans, "cni ADD", "abode-node");
  ASSERT_EQ(node.size(), 1u);
  EXPECT_TRUE(node[0]->error());
  auto server = Named(spans, "abode.v1.Allocator/Allocate", "abode-allocator");
  ASSERT_EQ(server.size(), 1u);
  EXPECT_EQ(server[0]->StrTag("rpc.grpc.status_code"), "8");
  EXPECT_TRUE(server[0]->error()) << "the Allocate call's span carries RESOURCE_EXHAUSTED (8) as an error";
  // The entry's apply, on every member, is an error with an event naming the refused command and its caller.
  const std::optional<JaegerSpan> commit = CommitLinkedTo(trace_id, server[0]->span_id);
  ASSERT_TRUE(commit.has_value());
  const auto applies = AppliesOf(*commit);
  EXPECT_EQ(Instances(applies).size(), 3u);
  for (const JaegerSpan& apply : applies) {
    EXPECT_TRUE(apply.error()) << apply.instance;
    EXPECT_EQ(apply.StrTag("abode.commands_refused"), "1");
    const auto refused = apply.Events("command refused");
    ASSERT_EQ(refused.size(), 1u) << apply.instance;
    EXPECT_EQ(refused[0].at("abode.command"), "allocate");
    EXPECT_EQ(refused[0].at("abode.error_code"), "RESOURCE_EXHAUSTED");
    EXPECT_EQ(refused[0].at("abode.owner"), "cni/trace-full-2/eth0");
    EXPECT_EQ(refused[0].at("abode.caller"), absl::StrCat("00-", trace_id, "-", server[0]->span_id, "-01"));
  }
}

TEST_F(TracingTest, AMagicAddressChangeIsTracedToBothNodesKernels) {
  // Both nodes ready first: a node that registers later gets the address in its snapshot, not as a change.
  auto nodes = v1::Nodes::NewStub(cluster_->channel(leader_));
  ASSERT_TRUE(Eventually(
      [&] {
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
        v1::ListNodesResponse resp;
        if (!nodes->ListNodes(&ctx, v1::ListNodesRequest(), &resp).ok()) return false;
        int ready = 0;
        for (const v1::Node& n : resp.nodes()) ready += n.ready() ? 1 : 0;
        return ready == 2;
      },
      std::chrono::seconds(30), std::chrono::milliseconds(100)));

  // The caller's own trace context, so the trace is known without searching.
  const std::string trace_id = "5eed0000000000000000000000000019";
  const std::string caller = "aaaaaaaaaaaaaaaa";
  {
    auto magic = v1::MagicAddresses::NewStub(cluster_->channel(follower_));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    ctx.AddMetadata("traceparent", absl::StrCat("00-", trace_id, "-", caller, "-01"));
    v1::CreateMagicAddressRequest req;
    req.mutable_address()->set_name("metrics");
    req.mutable_address()->set_address("169.254.20.10");
    auto* port = req.mutable_address()->add_ports();
    port->set_protocol(v1::PROTOCOL_UDP);
    port->set_port(8125);
    req.mutable_address()->set_label_selector("app=agent");
    v1::MagicAddress created;
    const grpc::Status s = magic->CreateMagicAddress(&ctx, req, &created);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  const auto spans = AwaitTrace(trace_id, [](const std::vector<JaegerSpan>& s) {
    std::set<std::string> reconciled;
    for (const JaegerSpan& span : s) {
      if (span.name == "nftables") reconciled.insert(span.instance);
    }
    return reconciled.size() == 2 && Has(s, "abode.v1.MagicAddresses/CreateMagicAddress", "abode-allocator") &&
           Has(s, "watch.deliver", "abode-allocator", 2) &&
           Has(s, "node.reconcile", "abode-node", 2);
  });

  auto server = Named(spans, "abode.v1.MagicAddresses/CreateMagicAddress", "abode-allocator");
  ASSERT_EQ(server.size(), 1u);
  EXPECT_EQ(server[0]->parent, caller);
  EXPECT_EQ(server[0]->instance, absl::StrCat("member-", follower_ + 1));
  const std::optional<JaegerSpan> commit = CommitLinkedTo(trace_id, server[0]->span_id);
  ASSERT_TRUE(commit.has_value());
  const auto applies = AppliesOf(*commit);
  EXPECT_EQ(Instances(applies).size(), 3u);
  for (const JaegerSpan& apply : applies) {
    EXPECT_EQ(apply.StrTag("raft.index"), commit->StrTag("raft.index"));
    EXPECT_FALSE(apply.error());
  }

  // Streamed to each node, then reconciled there, with the kernel steps beneath.
  std::set<std::string> delivered_to, reconciled_on;
  for (const JaegerSpan* deliver : Named(spans, "watch.deliver", "abode-allocator")) {
    EXPECT_EQ(deliver->kind, "producer");
    // Under the call that made the change; sent by the member the node streams from (the follower).
    EXPECT_EQ(deliver->parent, server[0]->span_id);
    EXPECT_EQ(deliver->instance, absl::StrCat("member-", follower_ + 1));
    EXPECT_EQ(deliver->StrTag("abode.assignment"), "magic/metrics");
    delivered_to.insert(deliver->StrTag("abode.node"));
  }
  EXPECT_EQ(delivered_to, (std::set<std::string>{"node-0", "node-1"}));
  for (const JaegerSpan* reconcile : Named(spans, "node.reconcile", "abode-node")) {
    const JaegerSpan* deliver = ById(spans, reconcile->parent);
    ASSERT_NE(deliver, nullptr);
    EXPECT_EQ(deliver->name, "watch.deliver");
    EXPECT_EQ(deliver->StrTag("abode.node"), reconcile->instance);
    EXPECT_GE(reconcile->start_us, deliver->start_us);
    EXPECT_FALSE(reconcile->error());
    reconciled_on.insert(reconcile->instance);
    for (const JaegerSpan& step : spans) {
      if (step.parent != reconcile->span_id) continue;
      EXPECT_TRUE(step.name == "netlink" || step.name == "nftables" || step.name == "conntrack") << step.name;
      EXPECT_GE(step.start_us, reconcile->start_us);
      EXPECT_LE(step.end_us(), reconcile->end_us());
    }
  }
  EXPECT_EQ(reconciled_on, (std::set<std::string>{"node-0", "node-1"}));
}

}  // namespace
}  // namespace abode::integration

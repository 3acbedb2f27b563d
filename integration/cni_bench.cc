// abode-cni-bench: the abode IPAM plugin against Debian's host-local, side by side in one run, on equivalent
// configurations (a /16 each), with real abode processes (an allocator, two abode-node processes as two
// nodes). Root only. Reports:
//   - IPAM ADD latency p50/p99, sequential and 16 in parallel: the plugin exec'd exactly as a main plugin
//     execs it (same environment and configuration, inside the node's namespace);
//   - ADD-then-DEL throughput of the IPAM plugin, 16 in parallel on each of two nodes;
//   - the whole main plugin's ADD (Debian's bridge, a container namespace each) with either IPAM plugin.
// Every abode ADD is durable in the allocator (raft log fsync) before it answers.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "abode/v1/allocator.grpc.pb.h"
#include "abode/v1/pools.grpc.pb.h"
#include "absl/strings/str_cat.h"
#include "integration/cni_harness.h"

namespace abode::integration {
namespace {

using nlohmann::json;

struct Ipam {
  std::string name;    // "abode" or "host-local"
  std::string plugin;  // path
  json config;         // per node: the ipam section
};

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

class Bench {
 public:
  Bench(CniCluster& cluster, std::string bin_dir, std::string netns_path)
      : cluster_(cluster), bin_dir_(std::move(bin_dir)), netns_path_(std::move(netns_path)) {}

  std::string Config(const Ipam& ipam, int node, const std::string& bridge = "benchbr") const {
    json ipam_section = ipam.config;
    if (ipam.name == "abode") ipam_section["socket_path"] = cluster_.socket(node);
    if (ipam.name == "host-local") ipam_section["dataDir"] = cluster_.dir() + "/host-local-" + cluster_.node_name(node);
    return json{{"cniVersion", "1.0.0"}, {"name", "benchnet"}, {"type", "bridge"}, {"bridge", bridge},
                {"isGateway", true},      {"ipam", ipam_section}}
        .dump();
  }

  PluginExit Exec(const std::string& plugin, const std::string& command, const std::string& container, int node,
                  const std::string& config, const std::string& netns) const {
    PluginRun run;
    run.plugin = plugin;
    run.netns_path = cluster_.node_netns(node).path();
    run.env = {{"CNI_COMMAND", command}, {"CNI_CONTAINERID", container}, {"CNI_NETNS", netns},
               {"CNI_IFNAME", "eth0"},   {"CNI_PATH", bin_dir_},       {"CNI_ARGS", "IgnoreUnknown=1"}};
    run.stdin_text = config;
    return ExecPlugin(run);
  }

  // `workers` threads on each of `nodes` nodes, each doing `per_worker` ADDs (then DELs when `del`).
  // Returns per-ADD latencies, and the elapsed time of the whole.
  std::pair<std::vector<double>, double> Run(const Ipam& ipam, int nodes, int workers, int per_worker, bool del,
                                             const std::string& tag) {
    std::vector<std::vector<double>> latencies(nodes * workers);
    std::atomic<int> failures{0};
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::thread> threads;
    for (int n = 0; n < nodes; ++n) {
      for (int w = 0; w < workers; ++w) {
        threads.emplace_back([&, n, w] {
          const std::string config = Config(ipam, n);
          for (int i = 0; i < per_worker; ++i) {
            const std::string container = absl::StrCat(tag, "-", ipam.name, "-", n, "-", w, "-", i);
            PluginExit add = Exec(ipam.plugin, "ADD", container, n, config, netns_path_);
            if (add.exit_code != 0) {
              if (failures++ == 0) std::fprintf(stderr, "%s ADD failed: %s\n", ipam.name.c_str(), add.stdout_text.c_str());
              continue;
            }
            latencies[n * workers + w].push_back(add.seconds * 1000);
            if (del) Exec(ipam.plugin, "DEL", container, n, config, netns_path_);
          }
        });
      }
    }
    for (auto& t : threads) t.join();
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::vector<double> all;
    for (auto& v : latencies) all.insert(all.end(), v.begin(), v.end());
    if (failures > 0) std::fprintf(stderr, "%s: %d failed ADDs\n", ipam.name.c_str(), failures.load());
    return {all, elapsed};
  }

  // Releases what a latency run left: DEL of every container it created.
  void Clean(const Ipam& ipam, int nodes, int workers, int per_worker, const std::string& tag) {
    for (int n = 0; n < nodes; ++n) {
      const std::string config = Config(ipam, n);
      for (int w = 0; w < workers; ++w) {
        for (int i = 0; i < per_worker; ++i) {
          Exec(ipam.plugin, "DEL", absl::StrCat(tag, "-", ipam.name, "-", n, "-", w, "-", i), n, config, netns_path_);
        }
      }
    }
  }

 private:
  CniCluster& cluster_;
  const std::string bin_dir_;
  const std::string netns_path_;
};

// The allocator's own sequential Allocate latency over gRPC (ms), for reading the plugin's figures: the floor
// under every abode ADD.
// With `gap_us`, the calls are that far apart, as sequential ADDs find the allocator: on a VM whose idle
// cores halt, every thread a call wakes then costs more than back to back.
// Each run has its own pool, `tag` in 10.`octet`.0.0/16.
std::vector<double> DirectAllocations(const std::string& endpoint, int count, int gap_us, const std::string& tag,
                                      int octet) {
  auto channel = grpc::CreateChannel(endpoint, grpc::InsecureChannelCredentials());
  auto pools = v1::Pools::NewStub(channel);
  auto allocator = v1::Allocator::NewStub(channel);
  {
    grpc::ClientContext ctx;
    v1::CreatePoolRequest req;
    req.mutable_pool()->set_name("bench-" + tag);
    req.mutable_pool()->set_cidr(absl::StrCat("10.", octet, ".0.0/16"));
    v1::Pool pool;
    pools->CreatePool(&ctx, req, &pool);
  }
  std::vector<double> out;
  for (int i = 0; i < count; ++i) {
    if (gap_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(gap_us));
    grpc::ClientContext ctx;
    v1::AllocateRequest req;
    req.set_pool("bench-" + tag);
    req.set_owner(absl::StrCat("direct-", i));
    v1::Allocation a;
    const auto start = std::chrono::steady_clock::now();
    if (allocator->Allocate(&ctx, req, &a).ok()) {
      out.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    }
  }
  return out;
}

int Main(int argc, char** argv) {
  CLI::App app{"abode-cni-bench: the abode IPAM plugin against host-local, side by side"};
  std::string allocator_bin, node_bin, cni_bin, plugins = "/usr/lib/cni";
  int sequential = 200, parallel_per_worker = 20, throughput_per_worker = 25, bridge_adds = 40;
  app.add_option("--allocator-bin", allocator_bin, "abode-allocator")->required();
  app.add_option("--node-bin", node_bin, "abode-node")->required();
  app.add_option("--cni-bin", cni_bin, "the abode plugin")->required();
  app.add_option("--plugins", plugins, "folder of bridge and host-local")->capture_default_str();
  app.add_option("--sequential", sequential, "sequential ADDs per plugin")->capture_default_str();
  app.add_option("--parallel-per-worker", parallel_per_worker, "ADDs per worker, 16 workers")->capture_default_str();
  app.add_option("--throughput-per-worker", throughput_per_worker, "ADD+DEL per worker, 16 workers x 2 nodes")
      ->capture_default_str();
  app.add_option("--bridge-adds", bridge_adds, "whole bridge ADDs per IPAM plugin")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  // The binaries run from other working directories (abode-node's, the plugin's symlink in a temporary
  // folder): every path is made absolute here, and a missing one is refused by name.
  for (auto [flag, path] : {std::pair<const char*, std::string*>{"--allocator-bin", &allocator_bin},
                            {"--node-bin", &node_bin},
                            {"--cni-bin", &cni_bin},
                            {"--plugins", &plugins}}) {
    std::error_code error;
    const std::filesystem::path absolute = std::filesystem::absolute(*path, error);
    if (error || !std::filesystem::exists(absolute, error)) {
      std::fprintf(stderr, "%s: %s does not exist\n", flag, path->c_str());
      return 2;
    }
    *path = absolute.lexically_normal().string();
  }
  if (::geteuid() != 0) {
    std::fprintf(stderr, "abode-cni-bench needs root (network namespaces)\n");
    return 2;
  }
  if (absl::Status s = EnterPrivateNetworkNamespace(); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  const std::string dir = std::filesystem::temp_directory_path() / ("abode-cni-bench-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir + "/bin");
  std::filesystem::create_symlink(cni_bin, dir + "/bin/abode");
  std::filesystem::create_symlink(plugins + "/host-local", dir + "/bin/host-local");
  int rc = 0;
  {
    CniCluster cluster({allocator_bin, node_bin, dir, 2});
    if (absl::Status s = cluster.Start(); !s.ok()) {
      std::fprintf(stderr, "%s\n", s.ToString().c_str());
      return 1;
    }
    auto container = Netns::Create("benchctr");
    if (!container.ok()) return 1;
    Bench bench(cluster, dir + "/bin", (*container)->path());
    const Ipam abode{"abode", dir + "/bin/abode", {{"type", "abode"}, {"range", "10.90.0.0/16"}}};
    const Ipam host_local{"host-local", dir + "/bin/host-local",
                          {{"type", "host-local"}, {"ranges", {{{{"subnet", "10.91.0.0/16"}}}}}}};
    // Warm-up: the pool exists, the caches are hot.
    for (const Ipam* ipam : {&abode, &host_local}) bench.Run(*ipam, 2, 1, 5, true, "warm");

    json report;
    std::printf("%-44s %12s %12s %8s\n", "", "abode", "host-local", "ratio");
    auto row = [&](const std::string& what, double a, double h, const char* unit) {
      std::printf("%-44s %9.2f %s %9.2f %s %7.2fx\n", what.c_str(), a, unit, h, unit, h > 0 ? a / h : 0);
      report[what] = {{"abode", a}, {"host-local", h}};
    };
    // Sequential and 16-parallel IPAM ADD latency, alternating the plugins in rounds.
    std::vector<double> seq[2], par[2];
    for (int round = 0; round < 4; ++round) {
      for (int k = 0; k < 2; ++k) {
        const Ipam& ipam = k == 0 ? abode : host_local;
        const std::string tag = absl::StrCat("seq", round);
        auto [lat, elapsed] = bench.Run(ipam, 1, 1, sequential / 4, false, tag);
        seq[k].insert(seq[k].end(), lat.begin(), lat.end());
        bench.Clean(ipam, 1, 1, sequential / 4, tag);
        const std::string ptag = absl::StrCat("par", round);
        auto [plat, pelapsed] = bench.Run(ipam, 1, 16, std::max(1, parallel_per_worker / 4), false, ptag);
        par[k].insert(par[k].end(), plat.begin(), plat.end());
        bench.Clean(ipam, 1, 16, std::max(1, parallel_per_worker / 4), ptag);
      }
    }
    // The floor under both plugins' ADD: an exec of /bin/true, started the same way, in the same namespace.
    std::vector<double> floor;
    for (int i = 0; i < sequential; ++i) {
      PluginExit exit = bench.Exec("/bin/true", "ADD", "floor", 0, "", (*container)->path());
      if (exit.exit_code == 0) floor.push_back(exit.seconds * 1000);
    }
    std::printf("%-44s %9.2f ms (the exec under every ADD of either plugin)\n", "exec of /bin/true p50",
                Percentile(floor, 0.5));
    report["exec of /bin/true p50"] = Percentile(floor, 0.5);
    const std::vector<double> direct = DirectAllocations(cluster.endpoint(), sequential, 0, "direct", 92);
    const std::vector<double> apart = DirectAllocations(cluster.endpoint(), sequential, 1000, "apart", 93);
    std::printf("%-44s %9.2f ms (the allocator's durable commit under every abode ADD)\n",
                "allocator Allocate p50, gRPC, 1 client", Percentile(direct, 0.5));
    report["allocator Allocate p50, gRPC, 1 client"] = Percentile(direct, 0.5);
    std::printf("%-44s %9.2f ms (the same, 1 ms apart: as sequential ADDs find it)\n",
                "allocator Allocate p50, 1 client, 1 ms apart", Percentile(apart, 0.5));
    report["allocator Allocate p50, 1 client, 1 ms apart"] = Percentile(apart, 0.5);
    row("IPAM ADD p50, sequential", Percentile(seq[0], 0.5), Percentile(seq[1], 0.5), "ms");
    row("IPAM ADD p99, sequential", Percentile(seq[0], 0.99), Percentile(seq[1], 0.99), "ms");
    row("IPAM ADD p50, 16 parallel", Percentile(par[0], 0.5), Percentile(par[1], 0.5), "ms");
    row("IPAM ADD p99, 16 parallel", Percentile(par[0], 0.99), Percentile(par[1], 0.99), "ms");
    // Throughput: ADD then DEL, 16 workers on each of two nodes.
    double rate[2];
    for (int k = 0; k < 2; ++k) {
      const Ipam& ipam = k == 0 ? abode : host_local;
      auto [lat, elapsed] = bench.Run(ipam, 2, 16, throughput_per_worker, true, "tput");
      rate[k] = static_cast<double>(lat.size()) / elapsed;
    }
    row("ADD+DEL per second, 16 parallel x 2 nodes", rate[0], rate[1], "/s");
    // The whole main plugin: Debian's bridge with each IPAM plugin, a fresh container namespace per ADD.
    std::vector<double> bridge[2];
    for (int k = 0; k < 2; ++k) {
      const Ipam& ipam = k == 0 ? abode : host_local;
      const std::string config = bench.Config(ipam, 0, k == 0 ? "benchbra" : "benchbrh");
      for (int i = 0; i < bridge_adds; ++i) {
        auto ns = Netns::Create(absl::StrCat("b", k, "-", i));
        if (!ns.ok()) continue;
        const std::string id = absl::StrCat("bridge-", ipam.name, "-", i);
        PluginExit add = bench.Exec(plugins + "/bridge", "ADD", id, 0, config, (*ns)->path());
        if (add.exit_code == 0) bridge[k].push_back(add.seconds * 1000);
        bench.Exec(plugins + "/bridge", "DEL", id, 0, config, (*ns)->path());
      }
    }
    row("bridge ADD p50 (whole main plugin)", Percentile(bridge[0], 0.5), Percentile(bridge[1], 0.5), "ms");
    row("bridge ADD p99 (whole main plugin)", Percentile(bridge[0], 0.99), Percentile(bridge[1], 0.99), "ms");
    std::printf("%s\n", report.dump().c_str());
    if (seq[0].empty() || seq[1].empty()) rc = 1;
  }
  std::filesystem::remove_all(dir);
  return rc;
}

}  // namespace
}  // namespace abode::integration

int main(int argc, char** argv) { return abode::integration::Main(argc, argv); }

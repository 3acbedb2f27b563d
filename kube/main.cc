// abode-kube: keeps abode in step with the Kubernetes API (see sync.h and docs/kube.md).
#include <curl/curl.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>

#include <grpcpp/create_channel.h>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "kube/health_server.h"
#include "kube/leader_election.h"
#include "kube/sync.h"
#include "metrics/endpoint.h"
#include "metrics/family.h"
#include "spdlog/spdlog.h"

namespace abode::kube {
namespace {

struct Flags {
  std::string allocator = "127.0.0.1:7600";
  std::string kubeconfig;
  std::string context;
  std::string lease_namespace;
  std::string lease_name = "abode-kube";
  std::string identity;
  std::string listen = "0.0.0.0:9620";
  std::string health_listen = "0.0.0.0:9621";
  std::string default_pool;
  std::string port_file;
  int64_t pod_gc_grace_s = 60;
  int64_t allocation_relist_s = 300;
  bool check_config = false;
};

// What /metrics serves, read at scrape time.
class KubeMetrics final : public prometheus::Collectable {
 public:
  KubeMetrics(const Sync& sync, const LeaderElector& elector) : sync_(sync), elector_(elector) {}
  std::vector<prometheus::MetricFamily> Collect() const override {
    using metrics::Family;
    using metrics::Sample;
    using prometheus::MetricType;
    const SyncCounters& c = sync_.counters();
    auto counter = [](const char* name, const char* help, const std::atomic<uint64_t>& v) {
      return Family(name, help, MetricType::Counter, {Sample(static_cast<double>(v.load()))});
    };
    return {
        Family("abode_kube_leader", "1 while this replica leads and may write", MetricType::Gauge,
               {Sample(elector_.is_leader() ? 1 : 0)}),
        Family("abode_kube_leader_transitions_total", "times this replica became leader", MetricType::Counter,
               {Sample(static_cast<double>(elector_.transitions()))}),
        Family("abode_kube_watched_pods", "pods in the cache", MetricType::Gauge,
               {Sample(static_cast<double>(sync_.watched_pods()))}),
        Family("abode_kube_queue_length", "keys waiting to be reconciled", MetricType::Gauge,
               {Sample(static_cast<double>(sync_.queue_length()))}),
        counter("abode_kube_reconciles_total", "keys reconciled", c.reconciles),
        counter("abode_kube_reconcile_failures_total", "reconciles that failed and were retried", c.failures),
        counter("abode_kube_labels_updated_total", "UpdateLabels calls made for pods", c.labels_updated),
        counter("abode_kube_allocation_lists_total", "complete lists of abode's allocations (the pod index)",
                c.allocation_lists),
        counter("abode_kube_allocation_lookups_total", "pods looked up in abode on their node", c.allocation_lookups),
        counter("abode_kube_allocations_released_total", "allocations of deleted pods released",
                c.allocations_released),
        counter("abode_kube_external_addresses_created_total", "external addresses created for Services",
                c.externals_created),
        counter("abode_kube_external_addresses_deleted_total", "external addresses deleted for Services",
                c.externals_deleted),
        counter("abode_kube_events_total", "Kubernetes Events recorded", c.events_recorded),
        counter("abode_kube_elastic_addresses_created_total", "elastic addresses created for pods", c.elastics_created),
        counter("abode_kube_elastic_addresses_deleted_total", "elastic addresses of pods gone deleted",
                c.elastics_deleted),
        counter("abode_kube_nodes_deleted_total", "abode nodes deleted for Kubernetes Nodes deleted", c.nodes_deleted),
    };
  }

 private:
  const Sync& sync_;
  const LeaderElector& elector_;
};

absl::StatusOr<ClusterConfig> LoadConfig(const Flags& f) {
  if (!f.kubeconfig.empty()) return KubeconfigConfig(f.kubeconfig, f.context);
  return InClusterConfig([](const char* name) -> std::optional<std::string> {
    const char* v = std::getenv(name);
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  });
}

// Every check that needs no connection. Returns the config.
absl::StatusOr<ClusterConfig> Check(Flags& f) {
  auto config = LoadConfig(f);
  if (!config.ok()) return config.status();
  if (f.lease_namespace.empty()) f.lease_namespace = config->namespace_;
  if (f.lease_namespace.empty()) {
    return absl::InvalidArgumentError("--lease-namespace: not set, and the configuration names no namespace");
  }
  if (f.identity.empty()) {
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    f.identity = absl::StrCat(host, "_", ::getpid());
  }
  if (f.allocator.empty() || f.allocator.find(':') == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("--allocator: \"", f.allocator, "\" is not HOST:PORT"));
  }
  if (f.pod_gc_grace_s < 1) return absl::InvalidArgumentError("--pod-gc-grace-seconds: must be at least 1");
  if (f.allocation_relist_s < 1) return absl::InvalidArgumentError("--allocation-relist-seconds: must be at least 1");
  if (!config->token_file.empty()) {
    if (auto t = ReadFile(config->token_file); !t.ok()) return t.status();
  }
  return config;
}

int Run(Flags f) {
  auto config = Check(f);
  if (!config.ok()) {
    std::cerr << "abode-kube: " << config.status().message() << "\n";
    return 2;
  }
  if (f.check_config) {
    std::cout << "abode-kube: configuration ok (server " << config->tls.server << ", lease " << f.lease_namespace
              << "/" << f.lease_name << ", identity " << f.identity << ")\n";
    return 0;
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  replication::SystemClock clock;
  CurlTransport transport(config->tls);
  TokenSource tokens(*config, clock);
  KubeClient kube(transport, tokens);
  LeaderElector elector(kube, clock, LeaseOptions{f.lease_namespace, f.lease_name, f.identity});

  auto channel = grpc::CreateChannel(f.allocator, grpc::InsecureChannelCredentials());
  auto allocator = v1::Allocator::NewStub(channel);
  auto nodes = v1::Nodes::NewStub(channel);
  auto externals = v1::ExternalAddresses::NewStub(channel);
  auto pools = v1::Pools::NewStub(channel);
  auto elastics = v1::ElasticAddresses::NewStub(channel);
  SyncOptions options;
  options.default_external_pool = f.default_pool;
  options.pod_gc_grace_ms = f.pod_gc_grace_s * 1000;
  options.allocation_relist_ms = f.allocation_relist_s * 1000;
  Sync sync(kube, AbodeApi{allocator.get(), nodes.get(), externals.get(), pools.get(), elastics.get()}, clock, options,
            [&] { return elector.is_leader(); });

  auto endpoint = metrics::MetricsEndpoint::Start(f.listen);
  if (!endpoint.ok()) {
    std::cerr << "abode-kube: " << endpoint.status().message() << "\n";
    return 2;
  }
  auto collectable = std::make_shared<KubeMetrics>(sync, elector);
  (*endpoint)->Register(collectable);
  auto health = HealthServer::Start(
      f.health_listen, [] { return absl::OkStatus(); },
      [&]() -> absl::Status {
        if (!sync.synced()) return absl::UnavailableError("the caches have not listed yet");
        return absl::OkStatus();
      });
  if (!health.ok()) {
    std::cerr << "abode-kube: " << health.status().message() << "\n";
    return 2;
  }

  if (!f.port_file.empty()) {
    // Written whole, then renamed: a reader never sees half of it.
    const std::string tmp = f.port_file + ".tmp";
    std::ofstream(tmp) << (*endpoint)->port() << " " << (*health)->port() << "\n";
    if (std::rename(tmp.c_str(), f.port_file.c_str()) != 0) {
      std::cerr << "abode-kube: --port-file: cannot write " << f.port_file << "\n";
      return 2;
    }
  }

  StopSignal stop;
  sync.Start();
  std::thread election([&] {
    elector.Run(stop, [&](bool leading) { spdlog::info("abode-kube {}: {}", f.identity, leading ? "leading" : "following"); });
  });
  spdlog::info("abode-kube {} watching {} (allocator {})", f.identity, config->tls.server, f.allocator);
  int sig = 0;
  sigwait(&signals, &sig);
  spdlog::info("abode-kube: signal {}, stopping", sig);
  sync.Stop();
  stop.Stop();
  election.join();  // releases the Lease when leading
  curl_global_cleanup();
  return 0;
}

}  // namespace
}  // namespace abode::kube

int main(int argc, char** argv) {
  abode::kube::Flags f;
  CLI::App app{"abode-kube: Kubernetes objects drive abode (pods, Services, Nodes)"};
  app.add_option("--allocator", f.allocator, "abode allocator gRPC address HOST:PORT");
  app.add_option("--kubeconfig", f.kubeconfig, "kubeconfig file (default: in-cluster service account)");
  app.add_option("--context", f.context, "kubeconfig context (default: its current-context)");
  app.add_option("--lease-namespace", f.lease_namespace, "namespace of the leader-election Lease (default: own)");
  app.add_option("--lease-name", f.lease_name, "name of the leader-election Lease");
  app.add_option("--identity", f.identity, "holder identity in the Lease (default: hostname_pid)");
  app.add_option("--listen", f.listen, "Prometheus /metrics address IPV4:PORT");
  app.add_option("--health-listen", f.health_listen, "/healthz and /readyz address IPV4:PORT");
  app.add_option("--default-external-pool", f.default_pool, "external pool of LoadBalancer Services naming none");
  app.add_option("--pod-gc-grace-seconds", f.pod_gc_grace_s, "how long a pod must be gone before its allocations go");
  app.add_option("--allocation-relist-seconds", f.allocation_relist_s,
                 "how often the pod allocation index is listed again in full (between: lookups per pod)");
  app.add_option("--port-file", f.port_file, "write \"METRICS_PORT HEALTH_PORT\" here once both serve");
  app.add_flag("--check-config", f.check_config, "validate flags, environment and files, then exit");
  CLI11_PARSE(app, argc, argv);
  return abode::kube::Run(std::move(f));
}

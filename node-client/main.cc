// abode-node: makes the allocator's decisions for this node real in its kernel. Streams the node's assignments
// from any allocator endpoint, reconciles addresses and NAT mappings on every update and every
// --resync-interval, and reports per-assignment status. SIGTERM/SIGINT end it without removing anything: the
// next start adopts what is in the kernel.
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/un.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "assignment_stream.h"
#include "cni_node.h"
#include "ctnetlink_conntrack_flusher.h"
#include "host_requirements.h"
#include "kernel_model.h"
#include "logging/process_log.h"
#include "metrics/endpoint.h"
#include "neighbour_announcer.h"
#include "netlink_address_programmer.h"
#include "node_lease.h"
#include "node_metrics.h"
#include "nft_rule_programmer.h"
#include "reconciler.h"
#include "tracing/current_span.h"
#include "tracing/tracer.h"

namespace abode::node {
namespace {

// The node's interfaces and their addresses, as registered with the allocator.
void AddInterfaceFacts(v1::NodeSpec& spec) {
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return;
  std::map<std::string, v1::NodeInterface> interfaces;
  for (ifaddrs* it = list; it != nullptr; it = it->ifa_next) {
    if (it->ifa_name == nullptr || (it->ifa_flags & IFF_LOOPBACK) != 0) continue;
    v1::NodeInterface& interface = interfaces[it->ifa_name];
    interface.set_name(it->ifa_name);
    if (it->ifa_addr == nullptr || it->ifa_netmask == nullptr) continue;
    const int family = it->ifa_addr->sa_family;
    if (family != AF_INET && family != AF_INET6) continue;
    const uint8_t* address = family == AF_INET
                                 ? reinterpret_cast<const uint8_t*>(&reinterpret_cast<sockaddr_in*>(it->ifa_addr)->sin_addr)
                                 : reinterpret_cast<const uint8_t*>(&reinterpret_cast<sockaddr_in6*>(it->ifa_addr)->sin6_addr);
    const uint8_t* mask =
        family == AF_INET ? reinterpret_cast<const uint8_t*>(&reinterpret_cast<sockaddr_in*>(it->ifa_netmask)->sin_addr)
                          : reinterpret_cast<const uint8_t*>(&reinterpret_cast<sockaddr_in6*>(it->ifa_netmask)->sin6_addr);
    const size_t length = family == AF_INET ? 4 : 16;
    int prefix = 0;
    for (size_t i = 0; i < length; ++i) prefix += __builtin_popcount(mask[i]);
    interface.add_addresses(absl::StrCat(IpAddress::FromBytes(address, length).ToString(), "/", prefix));
  }
  ::freeifaddrs(list);
  for (auto& [name, interface] : interfaces) *spec.add_interfaces() = std::move(interface);
}

// An interface name the kernel would accept (IFNAMSIZ, no '/', ':' or blanks); `flag` names it in the error.
absl::Status CheckInterfaceName(const std::string& name, const char* flag) {
  if (name.empty()) return absl::OkStatus();  // not used
  if (name.size() >= IFNAMSIZ || name == "." || name == ".." ||
      name.find_first_of("/: \t\n") != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": \"", name, "\" is not an interface name"));
  }
  return absl::OkStatus();
}

// --check-config: what the start would refuse beyond what the parse already checked, found without binding,
// creating the socket or opening kernel interfaces. An error names the flag.
absl::Status CheckConfig(const ReconcilerOptions& reconciler, const std::string& metrics_listen,
                         const std::string& cni_socket, const std::string& sysctl_dir) {
  if (absl::Status s = CheckInterfaceName(reconciler.uplink_interface, "--uplink-interface"); !s.ok()) return s;
  if (absl::Status s = CheckInterfaceName(reconciler.magic_interface, "--magic-interface"); !s.ok()) return s;
  if (!metrics_listen.empty()) {
    if (absl::Status s = metrics::CheckMetricsListen(metrics_listen); !s.ok()) return s;
  }
  if (sysctl_dir.empty() || sysctl_dir.front() != '/') {
    return absl::InvalidArgumentError(absl::StrCat("--sysctl-dir: \"", sysctl_dir, "\" must be an absolute path"));
  }
  if (!cni_socket.empty() && (cni_socket.front() != '/' || cni_socket.back() == '/' ||
                              cni_socket.size() >= sizeof(sockaddr_un::sun_path))) {
    return absl::InvalidArgumentError(
        absl::StrCat("--cni-socket: \"", cni_socket, "\" must be an absolute file path shorter than ",
                     sizeof(sockaddr_un::sun_path), " bytes"));
  }
  return absl::OkStatus();
}

int Main(int argc, char** argv) {
  CLI::App app{"abode-node: makes abode's address assignments real in this node's kernel"};
  std::string node_name = std::getenv("NODE_NAME") != nullptr ? std::getenv("NODE_NAME") : "";
  std::string allocator = std::getenv("ABODE_ALLOCATOR") != nullptr ? std::getenv("ABODE_ALLOCATOR") : "";
  ReconcilerOptions reconciler_options;
  double resync_seconds = 30;
  std::vector<std::string> labels;
  std::string metrics_listen;
  app.add_option("--node", node_name, "this node's name (default: $NODE_NAME)");
  app.add_option("--allocator", allocator, "allocator endpoints host:port[,host:port...] (default: $ABODE_ALLOCATOR)");
  app.add_option("--uplink-interface", reconciler_options.uplink_interface,
                 "interface that carries external and elastic addresses");
  app.add_option("--magic-interface", reconciler_options.magic_interface,
                 "local interface that carries magic addresses (e.g. the pod bridge)");
  app.add_option("--resync-interval", resync_seconds, "seconds between full reconciles with the kernel")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  int64_t backstop_seconds = 600;
  app.add_option("--address-lifetime-min", backstop_seconds,
                 "seconds: the least kernel lifetime of external and elastic addresses, a backstop that removes a "
                 "dead agent's addresses (the lease silences them much sooner); at least 12 leases")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{86400}));
  app.add_option("--label", labels, "node label key=value (repeatable), matched by external node selectors");
  GrpcWatchTransportOptions transport_options;
  app.add_option("--keepalive-time-ms", transport_options.keepalive_time_ms,
                 "ping the allocator after this long without a message from it")
      ->capture_default_str()
      ->check(CLI::Range(100, 3'600'000));
  app.add_option("--keepalive-timeout-ms", transport_options.keepalive_timeout_ms,
                 "move to the next allocator when a ping is not answered within this")
      ->capture_default_str()
      ->check(CLI::Range(100, 600'000));
  app.add_option("--metrics-listen", metrics_listen,
                 "serve Prometheus metrics over HTTP at /metrics on IPV4:PORT (0.0.0.0:PORT: every address); "
                 "off by default");
  std::string cni_socket;
  app.add_option("--cni-socket", cni_socket,
                 "serve the abode CNI plugin on this root-only Unix socket (e.g. /run/abode/cni.sock); off by default");
  bool manage_sysctls = false;
  app.add_flag("--manage-sysctls", manage_sysctls,
               "set the kernel settings the assignments need (forwarding, bridge-nf-call-ip[6]tables) instead of "
               "only reporting them");
  std::string sysctl_dir = "/proc/sys";
  app.add_option("--sysctl-dir", sysctl_dir,
                 "where the kernel settings are read and set: /proc/sys, or the host's /proc/sys/net mounted "
                 "elsewhere (DIR/net/...) where the container's /proc/sys is read-only")
      ->capture_default_str();
  logging::LogFlags log_flags;
  logging::AddLogFlags(app, &log_flags);
  bool check_config = false;
  app.add_flag("--check-config", check_config,
               "validate the flags and environment, print the resulting configuration and exit (0: valid) without "
               "binding a port, creating the CNI socket or touching the kernel");
  CLI11_PARSE(app, argc, argv);

  const std::unique_ptr<logging::ProcessLog> log = logging::ProcessLog::Install(log_flags.Options("abode-node"));
  // Lines written inside a traced scope (a CNI request, a traced reconcile) name its trace and span.
  log->SetTraceContextProvider([]() -> std::optional<logging::TraceContext> {
    tracing::LogIds ids = tracing::CurrentLogIds();
    if (ids.trace_id.empty()) return std::nullopt;
    return logging::TraceContext{std::move(ids.trace_id), std::move(ids.span_id)};
  });
  // Signals are taken synchronously by the main thread (SIGUSR1 and SIGUSR2 by the log's thread), blocked
  // before any thread starts (the metrics endpoint's among the first), so every thread inherits the mask.
  if (absl::Status s = log->HandleLevelSignals(); !s.ok()) {
    spdlog::error("{}", std::string(s.message()));
    return 1;
  }
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  if (node_name.empty()) {
    std::fprintf(stderr, "abode-node: --node (or NODE_NAME) is required\n");
    return 2;
  }
  absl::StatusOr<std::vector<std::string>> endpoints = ParseEndpoints(allocator);
  if (!endpoints.ok()) {
    std::fprintf(stderr, "abode-node: --allocator (or ABODE_ALLOCATOR): %s\n",
                 std::string(endpoints.status().message()).c_str());
    return 2;
  }
  AssignmentStreamOptions stream_options;
  stream_options.endpoints = *endpoints;
  stream_options.registration.set_name(node_name);
  for (const std::string& label : labels) {
    const size_t eq = label.find('=');
    if (eq == std::string::npos || eq == 0) {
      std::fprintf(stderr, "abode-node: --label %s: want key=value\n", label.c_str());
      return 2;
    }
    (*stream_options.registration.mutable_labels())[label.substr(0, eq)] = label.substr(eq + 1);
  }
  if (check_config) {
    absl::Status s = CheckConfig(reconciler_options, metrics_listen, cni_socket, sysctl_dir);
    if (!s.ok()) {
      std::fprintf(stderr, "abode-node: %s\n", std::string(s.message()).c_str());
      return 2;
    }
    std::printf("abode-node: configuration ok: node %s, allocator %s, uplink '%s', magic interface '%s'%s%s%s%s\n",
                node_name.c_str(), absl::StrJoin(*endpoints, ",").c_str(), reconciler_options.uplink_interface.c_str(),
                reconciler_options.magic_interface.c_str(), cni_socket.empty() ? "" : ", CNI socket ",
                cni_socket.c_str(), metrics_listen.empty() ? "" : ", metrics ", metrics_listen.c_str());
    return 0;
  }
  AddInterfaceFacts(stream_options.registration);
  // Tracing from the OTEL_* variables (docs/tracing.md); a value it cannot use stops the start here.
  auto tracing_config = tracing::ConfigFromEnvironment(std::getenv, "abode-node");
  if (!tracing_config.ok()) {
    spdlog::error("{}", std::string(tracing_config.status().message()));
    return 2;
  }
  if (std::none_of(tracing_config->resource.begin(), tracing_config->resource.end(),
                   [](const auto& kv) { return kv.first == "service.instance.id"; })) {
    tracing_config->resource.emplace_back("service.instance.id", node_name);
  }
  // Outlives everything that records spans below (declared first); flushes at the end of Main.
  auto tracer = tracing::Tracer::Start(*tracing_config);
  if (!tracer.ok()) {
    spdlog::error("{}", std::string(tracer.status().message()));
    return 2;
  }
  if ((*tracer)->enabled()) {
    spdlog::info("tracing: spans of {} go to {} over OTLP/gRPC", tracing_config->service_name,
                 tracing_config->endpoint);
  }
  reconciler_options.tracer = tracer->get();
  // Bound before anything touches the kernel, so that a bad address stops the start cleanly.
  std::unique_ptr<metrics::MetricsEndpoint> metrics;
  if (!metrics_listen.empty()) {
    auto endpoint = metrics::MetricsEndpoint::Start(metrics_listen);
    if (!endpoint.ok()) {
      spdlog::error("{}", std::string(endpoint.status().message()));
      return 2;
    }
    metrics = std::move(*endpoint);
    metrics->Register((*tracer)->metrics());
  }

  // Its workers inherit the signal mask.
  std::unique_ptr<CniNode> cni;
  if (!cni_socket.empty()) {
    auto started = CniNode::Start(cni_socket, node_name, *endpoints, tracer->get());
    if (!started.ok()) {
      spdlog::error("{}", std::string(started.status().message()));
      return 2;
    }
    cni = std::move(*started);
    if (metrics != nullptr) metrics->Register(cni->metrics());
  }

  auto addresses = NetlinkAddressProgrammer::Create();
  auto rules = NftRuleProgrammer::Create();
  auto announcer = NeighbourAnnouncer::Create();
  auto conntrack = CtnetlinkConntrackFlusher::Create();
  for (const absl::Status& s : {addresses.status(), rules.status(), announcer.status(), conntrack.status()}) {
    if (!s.ok()) {
      spdlog::error("opening kernel interfaces: {}", s.ToString());
      return 1;
    }
  }
  NodeLease lease;
  reconciler_options.lease = &lease;
  reconciler_options.guard = rules->get();
  reconciler_options.backstop_minimum = std::chrono::seconds(backstop_seconds);
  ProcSysctls sysctls(sysctl_dir);
  HostRequirements host(&sysctls, manage_sysctls);
  reconciler_options.host = &host;
  stream_options.lease = &lease;
  Reconciler reconciler(reconciler_options, addresses->get(), rules->get(), announcer->get(), conntrack->get());
  std::unique_ptr<WatchTransport> transport = NewGrpcWatchTransport(transport_options);
  AssignmentStreamClient stream(stream_options, transport.get(), &reconciler);
  auto node_metrics = std::make_shared<NodeMetrics>(reconciler, stream, &host);
  if (metrics != nullptr) {
    metrics->Register(node_metrics);
    spdlog::info("Prometheus metrics at http://{}:{}/metrics", metrics_listen.substr(0, metrics_listen.rfind(':')),
                 metrics->port());
  }
  spdlog::info("abode-node {} starting: allocator {}, uplink '{}', magic interface '{}'", node_name, allocator,
               reconciler_options.uplink_interface, reconciler_options.magic_interface);
  std::thread stream_thread([&] { stream.Run(); });

  // Resyncs every --resync-interval, and at the lease's end, which withdraws external and elastic addresses.
  const auto interval = std::chrono::duration_cast<NodeLease::Clock::duration>(
      std::chrono::duration<double>(resync_seconds));
  auto next_resync = NodeLease::Clock::now() + interval;
  std::optional<NodeLease::Clock::time_point> withdrawn_at;  // a lease end already acted on
  while (true) {
    auto wake = next_resync;
    const std::optional<NodeLease::Clock::time_point> deadline = reconciler.LeaseDeadline();
    if (deadline && deadline != withdrawn_at && *deadline < wake) wake = *deadline;
    const auto wait = std::max(std::chrono::duration_cast<std::chrono::nanoseconds>(wake - NodeLease::Clock::now()),
                               std::chrono::nanoseconds(1'000'000));
    timespec timeout{static_cast<time_t>(wait.count() / 1'000'000'000),
                     static_cast<long>(wait.count() % 1'000'000'000)};
    const int signal = sigtimedwait(&signals, nullptr, &timeout);
    if (signal == SIGTERM || signal == SIGINT) {
      spdlog::info("signal {}: stopping, leaving addresses and rules in place", signal);
      break;
    }
    const auto now = NodeLease::Clock::now();
    const std::optional<NodeLease::Clock::time_point> ends = reconciler.LeaseDeadline();
    const bool lease_ended = ends && ends != withdrawn_at && now >= *ends;
    if (now >= next_resync || lease_ended) {
      // A withdrawal that did not complete (e.g. a failed removal) is retried at the next resync.
      if (lease_ended) withdrawn_at = ends;
      stream.Report(reconciler.Resync());
      next_resync = now + interval;
    }
  }
  metrics.reset();  // scrapes read the stream and the reconciler
  stream.Stop();
  stream_thread.join();
  return 0;
}

}  // namespace
}  // namespace abode::node

int main(int argc, char** argv) {
  // gRPC's "poll" engine, unless the operator chose one: each blocking call then polls its own channel's
  // socket instead of waiting for another thread (the designated poller of the default epoll1 engine) to
  // read its answer and wake it. abode-node holds a few channels, so poll's cost per file descriptor does
  // not matter, and a CNI ADD costs about 5 context switches in abode-node instead of 9. Read once, when
  // gRPC starts, so it is set before anything touches gRPC.
  ::setenv("GRPC_POLL_STRATEGY", "poll", /*overwrite=*/0);
  return abode::node::Main(argc, argv);
}

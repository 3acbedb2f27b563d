// abode-kube-bench: abode-kube against a real kube-apiserver and a real abode-allocator, both already running
// with abode-kube watching them (scripts/bench-kube.sh starts all three).
//
//  1. abode-kube's VmRSS once it leads with nothing to watch.
//  2. Setup, timed: --nodes nodes (registered in abode as their node clients do, and as Node objects), then --pods Pods spread over them, each as a kubelet and the CNI
//     plugin bring it up: the Pod created through the API, its allocation made through abode's API (owner
//     "<container>/eth0", the pod's node, the CNI plugin's labels with the pod's UID), then its status
//     (podIP, podIPs, phase Running) written through the status subresource. --parallel workers.
//  3. Convergence: until every allocation carries its pod's labels and abode-kube watches every pod; then
//     abode-kube's VmRSS again, the memory per watched pod, and the CPU time abode-kube used since step 1.
//  4. Label changes, one at a time: a merge PATCH of one pod's labels, timed until the allocation carries the
//     new label, observed by polling Allocator.GetAllocation for the pod's owner every 1 ms.
//  5. LoadBalancer Services, one at a time: created, timed until a watch on the namespace's Services
//     reports status.loadBalancer.ingress set.
//
// Exits non-zero when a step fails or a change is not observed within --timeout-seconds. Output: a table of
// the figures (markdown), then one JSON object on the last line.
#include <curl/curl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/create_channel.h>

#include "CLI/CLI.hpp"
#include "test-support/process_memory.h"
#include "abode/v1/allocator.grpc.pb.h"
#include "abode/v1/nodes.grpc.pb.h"
#include "abode/v1/pools.grpc.pb.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "kube/client.h"
#include "kube/config.h"
#include "kube/curl_transport.h"
#include "replication/clock.h"

namespace abode::kube {
namespace {

using Steady = std::chrono::steady_clock;

struct Flags {
  std::string kubeconfig;
  std::string allocator;
  int kube_pid = 0;
  std::string kube_metrics;  // http://HOST:PORT/metrics of abode-kube
  int pods = 5000;
  int nodes = 100;
  int label_changes = 200;
  int services = 100;
  int parallel = 16;
  int timeout_seconds = 30;
  std::string ns = "bench";
};

double MsSince(Steady::time_point t0) {
  return std::chrono::duration<double, std::milli>(Steady::now() - t0).count();
}

using test_support::VmRssKiB;

// The 1-minute load average; -1 when it cannot be read.
double LoadAverage() {
  std::ifstream in("/proc/loadavg");
  double one = -1;
  in >> one;
  return one;
}

// CPU time (user + system) a process has used, in seconds; -1 when it cannot be read.
double CpuSeconds(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(in, line);
  const size_t end = line.rfind(')');  // the command name may hold spaces
  if (end == std::string::npos) return -1;
  std::istringstream fields(line.substr(end + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14 || i == 15) ticks += std::strtod(field.c_str(), nullptr);  // utime, stime
  }
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

size_t AppendBody(char* data, size_t size, size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

// One sample's value from a Prometheus text page ("name value" lines); -1 when absent or unreachable.
double MetricValue(const std::string& url, const std::string& name) {
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> c(curl_easy_init(), curl_easy_cleanup);
  if (!c) return -1;
  std::string body;
  curl_easy_setopt(c.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(c.get(), CURLOPT_WRITEFUNCTION, AppendBody);
  curl_easy_setopt(c.get(), CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(c.get(), CURLOPT_TIMEOUT, 5L);
  curl_easy_setopt(c.get(), CURLOPT_NOSIGNAL, 1L);
  if (curl_easy_perform(c.get()) != CURLE_OK) return -1;
  const std::string prefix = name + " ";
  for (size_t at = 0; at < body.size();) {
    size_t nl = body.find('\n', at);
    if (nl == std::string::npos) nl = body.size();
    if (body.compare(at, prefix.size(), prefix) == 0) {
      return std::strtod(body.substr(at + prefix.size(), nl - at - prefix.size()).c_str(), nullptr);
    }
    at = nl + 1;
  }
  return -1;
}

struct Percentiles {
  double p50 = 0, p99 = 0, max = 0;
};
Percentiles Of(std::vector<double> v) {
  Percentiles p;
  if (v.empty()) return p;
  std::sort(v.begin(), v.end());
  auto at = [&](double q) { return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))]; };
  p.p50 = at(0.50);
  p.p99 = at(0.99);
  p.max = v.back();
  return p;
}

// Runs `fn(i)` for i in [0, n) on `parallel` threads; returns the first error.
absl::Status InParallel(int n, int parallel, const std::function<absl::Status(int)>& fn) {
  std::atomic<int> next{0};
  std::mutex mu;
  absl::Status first;
  std::vector<std::thread> threads;
  for (int t = 0; t < std::max(1, parallel); ++t) {
    threads.emplace_back([&] {
      for (int i = next++; i < n; i = next++) {
        absl::Status s = fn(i);
        if (s.ok()) continue;
        std::lock_guard<std::mutex> lock(mu);
        if (first.ok()) first = s;
        next = n;
      }
    });
  }
  for (auto& t : threads) t.join();
  return first;
}

std::string NodeName(int i) { return absl::StrFormat("bench-node-%03d", i); }
std::string PodName(int i) { return absl::StrFormat("bench-pod-%05d", i); }
std::string Owner(int i) { return absl::StrFormat("bench-cid-%05d/eth0", i); }

class Bench {
 public:
  Bench(const Flags& f, KubeClient& kube, std::shared_ptr<grpc::Channel> channel)
      : f_(f),
        kube_(kube),
        alloc_(v1::Allocator::NewStub(channel)),
        pools_(v1::Pools::NewStub(channel)),
        nodes_(v1::Nodes::NewStub(channel)) {}

  int Run();

 private:
  std::unique_ptr<grpc::ClientContext> Ctx() const {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return ctx;
  }
  absl::Status Fail(const std::string& what, const grpc::Status& s) const {
    return absl::UnavailableError(absl::StrCat(what, ": ", s.error_message()));
  }
  // Waits until `done` holds, checking every `every_ms`; false after the timeout.
  bool WaitFor(const std::function<bool()>& done, int every_ms = 50) const {
    const auto deadline = Steady::now() + std::chrono::seconds(f_.timeout_seconds);
    while (Steady::now() < deadline) {
      if (done()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(every_ms));
    }
    return done();
  }
  absl::Status CreatePools();
  // Registers node `name` in abode as its node client does (a WatchAssignments stream, closed after the
  // first message); the node stays registered.
  absl::Status RegisterNode(const std::string& name);
  absl::Status CreatePod(int i);
  // Allocations carrying the label every bench pod has (abode-kube copied it).
  int64_t LabelledAllocations();
  absl::Status ChangeLabels(std::vector<double>* ms);
  absl::Status CreateServices(std::vector<double>* ms);

  const Flags& f_;
  KubeClient& kube_;
  std::unique_ptr<v1::Allocator::Stub> alloc_;
  std::unique_ptr<v1::Pools::Stub> pools_;
  std::unique_ptr<v1::Nodes::Stub> nodes_;
};

absl::Status Bench::RegisterNode(const std::string& name) {
  auto ctx = Ctx();
  auto stream = nodes_->WatchAssignments(ctx.get());
  v1::WatchAssignmentsRequest start;
  start.mutable_start()->set_node(name);
  start.mutable_start()->mutable_registration()->set_name(name);
  v1::WatchAssignmentsResponse first;
  const bool ok = stream->Write(start) && stream->Read(&first);
  ctx->TryCancel();
  while (stream->Read(&first)) {
  }
  (void)stream->Finish();
  if (!ok) return absl::UnavailableError(absl::StrCat("WatchAssignments: node ", name, " not registered"));
  return absl::OkStatus();
}

absl::Status Bench::CreatePools() {
  struct P {
    const char* name;
    const char* cidr;
    v1::PoolPurpose purpose;
  };
  for (const P& p : {P{"bench-pods", "10.64.0.0/16", v1::POOL_PURPOSE_WORKLOAD},
                     P{"bench-lb", "198.18.0.0/20", v1::POOL_PURPOSE_EXTERNAL}}) {
    v1::CreatePoolRequest req;
    req.mutable_pool()->set_name(p.name);
    req.mutable_pool()->set_cidr(p.cidr);
    req.mutable_pool()->set_purpose(p.purpose);
    v1::Pool out;
    if (grpc::Status s = pools_->CreatePool(Ctx().get(), req, &out); !s.ok()) return Fail("CreatePool", s);
  }
  return absl::OkStatus();
}

absl::Status Bench::CreatePod(int i) {
  const std::string node = NodeName(i % f_.nodes);
  json pod = {{"apiVersion", "v1"},
              {"kind", "Pod"},
              {"metadata",
               {{"name", PodName(i)},
                {"namespace", f_.ns},
                {"labels", {{"app", absl::StrCat("app-", i % 50)}, {"bench", "yes"}, {"bench-rev", "0"}}}}},
              {"spec", {{"nodeName", node}, {"containers", {{{"name", "c"}, {"image", "bench"}}}}}}};
  auto created = kube_.Create(ResourcePath("v1", "pods", f_.ns), pod);
  if (!created.ok()) return created.status();
  const std::string uid = (*created)["metadata"]["uid"];
  v1::AllocateRequest req;
  req.set_pool("bench-pods");
  req.set_owner(Owner(i));
  req.set_node(node);
  (*req.mutable_labels())["k8s-pod-namespace"] = f_.ns;
  (*req.mutable_labels())["k8s-pod-name"] = PodName(i);
  (*req.mutable_labels())["k8s-pod-uid"] = uid;
  (*req.mutable_labels())["cni-network"] = "abode";
  v1::Allocation got;
  if (grpc::Status s = alloc_->Allocate(Ctx().get(), req, &got); !s.ok()) return Fail("Allocate", s);
  json status = {{"status",
                  {{"phase", "Running"}, {"podIP", got.address()}, {"podIPs", {{{"ip", got.address()}}}}}}};
  return kube_.MergePatch(ResourcePath("v1", "pods", f_.ns, PodName(i), "status"), status).status();
}

int64_t Bench::LabelledAllocations() {
  v1::ListAllocationsRequest req;
  req.set_pool("bench-pods");
  req.set_label_selector("bench=yes");
  req.set_page_size(5000);
  int64_t n = 0;
  do {
    v1::ListAllocationsResponse page;
    if (!alloc_->ListAllocations(Ctx().get(), req, &page).ok()) return -1;
    n += page.allocations_size();
    req.set_page_token(page.next_page_token());
  } while (!req.page_token().empty());
  return n;
}

absl::Status Bench::ChangeLabels(std::vector<double>* ms) {
  for (int c = 0; c < f_.label_changes; ++c) {
    const int i = static_cast<int>((static_cast<int64_t>(c) * 7919) % f_.pods);
    const std::string rev = absl::StrCat("r", c + 1);
    const auto t0 = Steady::now();
    auto patched = kube_.MergePatch(ResourcePath("v1", "pods", f_.ns, PodName(i)),
                                    {{"metadata", {{"labels", {{"bench-rev", rev}}}}}});
    if (!patched.ok()) return patched.status();
    v1::GetAllocationRequest get;
    get.set_owner(Owner(i));
    const bool seen = WaitFor(
        [&] {
          v1::GetAllocationResponse out;
          if (!alloc_->GetAllocation(Ctx().get(), get, &out).ok() || out.allocations_size() == 0) return false;
          auto it = out.allocations(0).labels().find("bench-rev");
          return it != out.allocations(0).labels().end() && it->second == rev;
        },
        1);
    if (!seen) return absl::DeadlineExceededError(absl::StrCat("label change ", c + 1, " on ", PodName(i), " not seen"));
    ms->push_back(MsSince(t0));
  }
  return absl::OkStatus();
}

absl::Status Bench::CreateServices(std::vector<double>* ms) {
  auto listed = kube_.List(ResourcePath("v1", "services", f_.ns));
  if (!listed.ok()) return listed.status();
  std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, Steady::time_point> ingress_at;  // by Service name
  std::atomic<bool> stop{false};
  std::thread watcher([&] {
    std::string rv = listed->resource_version;
    while (!stop) {
      auto next = kube_.Watch(
          ResourcePath("v1", "services", f_.ns), "", rv,
          [&](const WatchEvent& ev) {
            const json ing = ev.object.value("status", json::object()).value("loadBalancer", json::object()).value(
                "ingress", json::array());
            if (ing.is_array() && !ing.empty()) {
              std::lock_guard<std::mutex> lock(mu);
              ingress_at.emplace(ev.object["metadata"].value("name", ""), Steady::now());
              cv.notify_all();
            }
            return !stop;
          },
          [&] { return stop.load(); }, 60);
      if (next.ok()) rv = *next;
    }
  });
  absl::Status result;
  for (int s = 0; s < f_.services && result.ok(); ++s) {
    const std::string name = absl::StrFormat("bench-svc-%04d", s);
    json svc = {{"apiVersion", "v1"},
                {"kind", "Service"},
                {"metadata", {{"name", name}, {"namespace", f_.ns}, {"annotations", {{"abode.dev/pool", "bench-lb"}}}}},
                {"spec", {{"type", "LoadBalancer"}, {"ports", {{{"port", 80}, {"protocol", "TCP"}}}}}}};
    const auto t0 = Steady::now();
    if (auto created = kube_.Create(ResourcePath("v1", "services", f_.ns), svc); !created.ok()) {
      result = created.status();
      break;
    }
    std::unique_lock<std::mutex> lock(mu);
    if (!cv.wait_for(lock, std::chrono::seconds(f_.timeout_seconds), [&] { return ingress_at.count(name) > 0; })) {
      result = absl::DeadlineExceededError(absl::StrCat("Service ", name, ": no ingress"));
      break;
    }
    ms->push_back(std::chrono::duration<double, std::milli>(ingress_at[name] - t0).count());
  }
  stop = true;
  watcher.join();
  return result;
}

int Bench::Run() {
  auto fail = [](const absl::Status& s) {
    std::cerr << "abode-kube-bench: " << s << "\n";
    return 1;
  };
  // 1. abode-kube leads, with nothing to watch.
  if (!WaitFor([&] { return MetricValue(f_.kube_metrics, "abode_kube_leader") == 1; })) {
    return fail(absl::UnavailableError("abode-kube did not become leader"));
  }
  const long rss0 = VmRssKiB(f_.kube_pid);
  const double cpu0 = CpuSeconds(f_.kube_pid);
  const double pods0 = MetricValue(f_.kube_metrics, "abode_kube_watched_pods");
  if (absl::Status s = CreatePools(); !s.ok()) return fail(s);
  if (auto s = kube_.Create(ResourcePath("v1", "namespaces"),
                            {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", f_.ns}}}});
      !s.ok()) {
    return fail(s.status());
  }

  // 2. Setup.
  auto t = Steady::now();
  absl::Status s = InParallel(f_.nodes, f_.parallel, [&](int i) {
    if (absl::Status r = RegisterNode(NodeName(i)); !r.ok()) return r;
    json node = {{"apiVersion", "v1"},
                 {"kind", "Node"},
                 {"metadata", {{"name", NodeName(i)}, {"labels", {{"zone", absl::StrCat("z", i % 4)}}}}}};
    return kube_.Create(ResourcePath("v1", "nodes"), node).status();
  });
  if (!s.ok()) return fail(s);
  const double nodes_ms = MsSince(t);
  t = Steady::now();
  if (s = InParallel(f_.pods, f_.parallel, [&](int i) { return CreatePod(i); }); !s.ok()) return fail(s);
  const double pods_ms = MsSince(t);

  // 3. Convergence.
  t = Steady::now();
  if (!WaitFor([&] {
        return LabelledAllocations() == f_.pods && MetricValue(f_.kube_metrics, "abode_kube_watched_pods") == f_.pods;
      }, 500)) {
    return fail(absl::DeadlineExceededError(absl::StrCat("allocations labelled: ", LabelledAllocations(), " of ", f_.pods)));
  }
  const double converge_ms = MsSince(t);
  const long rss1 = VmRssKiB(f_.kube_pid);
  const double setup_cpu = CpuSeconds(f_.kube_pid) - cpu0;
  const double per_pod = (static_cast<double>(rss1 - rss0) * 1024.0) / f_.pods;

  // 4, 5.
  std::vector<double> label_ms, svc_ms;
  if (s = ChangeLabels(&label_ms); !s.ok()) return fail(s);
  if (s = CreateServices(&svc_ms); !s.ok()) return fail(s);
  const Percentiles lp = Of(label_ms), sp = Of(svc_ms);
  const double lookups = MetricValue(f_.kube_metrics, "abode_kube_allocation_lookups_total");
  const double lists = MetricValue(f_.kube_metrics, "abode_kube_allocation_lists_total");
  const double writes = MetricValue(f_.kube_metrics, "abode_kube_labels_updated_total");

  const double load = LoadAverage();
  std::cout << absl::StrFormat("| figure | value |\n|---|---|\n")
            << absl::StrFormat("| setup: %d nodes (abode registration, Node object) | %.1f s |\n", f_.nodes,
                               nodes_ms / 1000)
            << absl::StrFormat("| setup: %d pods (create, allocate, status; %d workers) | %.1f s (%.0f pods/s) |\n",
                               f_.pods, f_.parallel, pods_ms / 1000, f_.pods / (pods_ms / 1000))
            << absl::StrFormat("| every allocation labelled, after the last pod | %.1f s |\n", converge_ms / 1000)
            << absl::StrFormat("| label change -> allocation label, p50 / p99 / max (%d) | %.1f / %.1f / %.1f ms |\n",
                               f_.label_changes, lp.p50, lp.p99, lp.max)
            << absl::StrFormat("| LoadBalancer Service -> status ingress, p50 / p99 / max (%d) | %.1f / %.1f / %.1f ms |\n",
                               f_.services, sp.p50, sp.p99, sp.max)
            << absl::StrFormat("| abode-kube VmRSS, %.0f pods / %d pods | %.1f / %.1f MiB |\n", pods0, f_.pods,
                               rss0 / 1024.0, rss1 / 1024.0)
            << absl::StrFormat("| abode-kube memory per watched pod | %.0f bytes |\n", per_pod)
            << absl::StrFormat("| abode-kube CPU time from the first Node to convergence | %.1f s |\n", setup_cpu)
            << absl::StrFormat("| abode-kube: complete allocation lists / pod lookups / label writes | %.0f / %.0f / %.0f |\n",
                               lists, lookups, writes)
            << absl::StrFormat("| load average (1 min) at the end | %.2f |\n", load);
  json out = {{"pods", f_.pods},
              {"nodes", f_.nodes},
              {"parallel", f_.parallel},
              {"setup_nodes_s", nodes_ms / 1000},
              {"setup_pods_s", pods_ms / 1000},
              {"converge_s", converge_ms / 1000},
              {"label_changes", f_.label_changes},
              {"label_p50_ms", lp.p50},
              {"label_p99_ms", lp.p99},
              {"label_max_ms", lp.max},
              {"services", f_.services},
              {"service_p50_ms", sp.p50},
              {"service_p99_ms", sp.p99},
              {"service_max_ms", sp.max},
              {"rss_idle_kib", rss0},
              {"rss_pods_kib", rss1},
              {"bytes_per_pod", per_pod},
              {"setup_cpu_s", setup_cpu},
              {"allocation_lists", lists},
              {"allocation_lookups", lookups},
              {"label_writes", writes},
              {"load_average", load}};
  std::cout << out.dump() << "\n";
  return 0;
}

}  // namespace
}  // namespace abode::kube

int main(int argc, char** argv) {
  abode::kube::Flags f;
  CLI::App app{"abode-kube-bench: abode-kube's latencies and memory against a real kube-apiserver"};
  app.add_option("--kubeconfig", f.kubeconfig, "kubeconfig of the API server")->required();
  app.add_option("--allocator", f.allocator, "abode allocator HOST:PORT")->required();
  app.add_option("--kube-pid", f.kube_pid, "abode-kube's process id (VmRSS)")->required();
  app.add_option("--kube-metrics", f.kube_metrics, "abode-kube's metrics URL http://HOST:PORT/metrics")->required();
  app.add_option("--pods", f.pods, "pods to create")->check(CLI::Range(1, 100000));
  app.add_option("--nodes", f.nodes, "Node objects to spread them over")->check(CLI::Range(1, 5000));
  app.add_option("--label-changes", f.label_changes, "label changes to time")->check(CLI::Range(1, 100000));
  app.add_option("--services", f.services, "LoadBalancer Services to time")->check(CLI::Range(1, 4000));
  app.add_option("--parallel", f.parallel, "concurrent requests during setup")->check(CLI::Range(1, 256));
  app.add_option("--timeout-seconds", f.timeout_seconds, "longest wait for one step")->check(CLI::Range(1, 3600));
  app.add_option("--namespace", f.ns, "namespace of the pods and Services");
  CLI11_PARSE(app, argc, argv);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  auto config = abode::kube::KubeconfigConfig(f.kubeconfig);
  if (!config.ok()) {
    std::cerr << "abode-kube-bench: " << config.status() << "\n";
    return 2;
  }
  abode::replication::SystemClock clock;
  abode::kube::CurlTransport transport(config->tls);
  abode::kube::TokenSource tokens(*config, clock);
  abode::kube::KubeClient kube(transport, tokens);
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  auto channel = grpc::CreateCustomChannel(f.allocator, grpc::InsecureChannelCredentials(), args);
  const int rc = abode::kube::Bench(f, kube, channel).Run();
  curl_global_cleanup();
  return rc;
}

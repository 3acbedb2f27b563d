// abode-watch-bench: thousands of simulated node clients in one process, each registering its node and
// watching its assignments (Nodes.WatchAssignments on the callback API, spread over a few channels), then a
// series of changes, each measured from its acknowledgement to the arrival of its delta at every affected
// watcher. With --server-pid it also reads the allocator's VmRSS before and after the idle watchers connect.
//
// One round is six changes: create a magic address (every node), allocate a workload the magic address
// selects on one node (that node's magic target), create an external address (its serving node), delete the
// external address, release the workload, delete the magic address (every node).
//
// Output: figures as text, then one JSON object on the last line.
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/create_channel.h>

#include "CLI/CLI.hpp"
#include "test-support/process_memory.h"
#include "abode/v1/allocator.grpc.pb.h"
#include "abode/v1/nodes.grpc.pb.h"
#include "abode/v1/pools.grpc.pb.h"
#include "nlohmann/json.hpp"

namespace {

namespace v1 = abode::v1;
using Clock = std::chrono::steady_clock;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}

using abode::test_support::VmRssKiB;

// One change being measured: which assignment id must arrive (added/changed, or removed) and how many
// watchers must see it (any watcher counts; each once).
struct Change {
  std::string kind;
  std::string id;
  bool removal = false;
  std::string node;  // only this node is affected; empty: any node may be
  int expected = 0;
  std::vector<std::atomic<int64_t>> received_ns;  // per watcher; 0 until it arrived
  std::atomic<int> arrived{0};

  explicit Change(size_t watchers) : received_ns(watchers) {}

  bool In(const v1::WatchAssignmentsResponse& r) const {
    if (removal) return std::find(r.removed().begin(), r.removed().end(), id) != r.removed().end();
    for (const auto& a : r.assignments()) {
      if (a.id() == id) return true;
    }
    return false;
  }
};

class Bench;

// One simulated node client.
class Watcher final : public grpc::ClientBidiReactor<v1::WatchAssignmentsRequest, v1::WatchAssignmentsResponse> {
 public:
  Watcher(Bench* bench, size_t index, std::string node) : bench_(bench), index_(index), node_(std::move(node)) {}

  void Start(v1::Nodes::Stub* stub);
  void Heartbeat();
  // Ends the stream; no heartbeat may follow.
  void Close() {
    RemoveHold();
    ctx_.TryCancel();
  }
  const std::string& node() const { return node_; }

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnDone(const grpc::Status& s) override;

 private:
  Bench* bench_;
  const size_t index_;
  const std::string node_;
  grpc::ClientContext ctx_;
  v1::WatchAssignmentsRequest start_, heartbeat_;
  v1::WatchAssignmentsResponse response_;
  std::atomic<bool> writing_{false};
  bool first_ = true;  // reads are sequential
};

class Bench {
 public:
  struct Config {
    std::string server = "127.0.0.1:7443";
    int watchers = 5000;
    int channels = 2;
    int changes = 12;
    int server_pid = 0;
    std::string prefix = "bench";
    double settle_s = 2;
  };

  explicit Bench(Config c) : cfg_(std::move(c)) {}

  int Run();

  // Called by watchers.
  void OnMessage(size_t index, const v1::WatchAssignmentsResponse& r, bool first) {
    const int64_t now = NowNs();
    if (first) {
      lease_ms_.store(r.lease_ms());
      if (snapshots_.fetch_add(1) + 1 == cfg_.watchers) Wake();
    }
    std::shared_ptr<Change> c = std::atomic_load(&current_);
    if (c == nullptr || !c->In(r)) return;
    if (!c->node.empty() && watchers_[index]->node() != c->node) return;
    int64_t zero = 0;
    if (c->received_ns[index].compare_exchange_strong(zero, now)) {
      if (c->arrived.fetch_add(1) + 1 == c->expected) Wake();
    }
  }
  void OnEnded(const grpc::Status& s) {
    if (!s.ok() && !stopping_.load()) {
      std::lock_guard<std::mutex> lock(mu_);
      if (errors_++ < 5) std::fprintf(stderr, "watch stream ended: %d %s\n", s.error_code(), s.error_message().c_str());
    }
    if (ended_.fetch_add(1) + 1 == cfg_.watchers) Wake();
  }

 private:
  void Wake() {
    std::lock_guard<std::mutex> lock(mu_);
    cv_.notify_all();
  }
  template <typename Pred>
  bool WaitUntil(Pred pred, std::chrono::seconds limit) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, limit, pred);
  }
  bool Setup();
  // Runs `write` (which returns false on failure) as change `c` and records its delays.
  bool Measure(std::shared_ptr<Change> c, const std::function<bool(Change&)>& write);
  void HeartbeatLoop();

  Config cfg_;
  std::vector<std::shared_ptr<grpc::Channel>> channels_;
  std::vector<std::unique_ptr<v1::Nodes::Stub>> node_stubs_;
  std::unique_ptr<v1::Pools::Stub> pools_;
  std::unique_ptr<v1::Allocator::Stub> allocator_;
  std::unique_ptr<v1::MagicAddresses::Stub> magics_;
  std::unique_ptr<v1::ExternalAddresses::Stub> externals_;
  std::vector<std::unique_ptr<Watcher>> watchers_;

  std::atomic<int> snapshots_{0};
  std::atomic<int> ended_{0};
  std::atomic<int64_t> lease_ms_{0};
  std::atomic<bool> stopping_{false};
  std::shared_ptr<Change> current_;  // accessed with std::atomic_load/store

  std::mutex mu_;
  std::condition_variable cv_;
  int errors_ = 0;
  std::vector<double> delays_ms_;                 // every affected watcher of every change
  std::map<std::string, std::vector<double>> by_kind_;
  std::vector<std::string> failures_;
};

void Watcher::Start(v1::Nodes::Stub* stub) {
  auto* reg = start_.mutable_start()->mutable_registration();
  start_.mutable_start()->set_node(node_);
  reg->set_name(node_);
  (*reg->mutable_labels())["abode.bench"] = "true";
  auto* eth0 = reg->add_interfaces();
  eth0->set_name("eth0");
  heartbeat_.mutable_heartbeat();
  stub->async()->WatchAssignments(&ctx_, this);
  writing_ = true;
  StartWrite(&start_);
  StartRead(&response_);
  AddHold();  // heartbeats are written from the heartbeat thread, outside the reactions
  StartCall();
}

void Watcher::Heartbeat() {
  bool idle = false;
  if (!writing_.compare_exchange_strong(idle, true)) return;  // the previous write is still out: skip one
  StartWrite(&heartbeat_);
}

void Watcher::OnWriteDone(bool /*ok*/) { writing_ = false; }

void Watcher::OnReadDone(bool ok) {
  if (!ok) return;  // OnDone follows
  bench_->OnMessage(index_, response_, first_);
  first_ = false;
  StartRead(&response_);
}

void Watcher::OnDone(const grpc::Status& s) { bench_->OnEnded(s); }

bool Bench::Setup() {
  grpc::ClientContext c1, c2;
  v1::CreatePoolRequest pods;
  pods.mutable_pool()->set_name(cfg_.prefix + "-pods");
  pods.mutable_pool()->set_cidr("10.200.0.0/16");
  pods.mutable_pool()->set_purpose(v1::POOL_PURPOSE_WORKLOAD);
  v1::Pool out;
  grpc::Status s = pools_->CreatePool(&c1, pods, &out);
  if (!s.ok() && s.error_code() != grpc::StatusCode::ALREADY_EXISTS) {
    std::fprintf(stderr, "create pool %s: %s\n", pods.pool().name().c_str(), s.error_message().c_str());
    return false;
  }
  v1::CreatePoolRequest ext;
  ext.mutable_pool()->set_name(cfg_.prefix + "-ext");
  ext.mutable_pool()->set_cidr("198.18.0.0/24");
  ext.mutable_pool()->set_purpose(v1::POOL_PURPOSE_EXTERNAL);
  s = pools_->CreatePool(&c2, ext, &out);
  if (!s.ok() && s.error_code() != grpc::StatusCode::ALREADY_EXISTS) {
    std::fprintf(stderr, "create pool %s: %s\n", ext.pool().name().c_str(), s.error_message().c_str());
    return false;
  }
  return true;
}

bool Bench::Measure(std::shared_ptr<Change> c, const std::function<bool(Change&)>& write) {
  std::atomic_store(&current_, c);
  if (!write(*c)) {
    std::atomic_store(&current_, std::shared_ptr<Change>());
    return false;
  }
  const int64_t acked = NowNs();
  const bool all = WaitUntil([&] { return c->arrived.load() >= c->expected; }, std::chrono::seconds(30));
  std::atomic_store(&current_, std::shared_ptr<Change>());
  std::lock_guard<std::mutex> lock(mu_);
  if (!all) {
    failures_.push_back(c->kind + " " + c->id + ": " + std::to_string(c->arrived.load()) + " of " +
                        std::to_string(c->expected) + " watchers got it within 30 s");
  }
  for (auto& r : c->received_ns) {
    const int64_t at = r.load();
    if (at == 0) continue;
    // A delta can overtake the acknowledgement (it is sent on apply): that is a delay of 0.
    const double ms = static_cast<double>(std::max<int64_t>(0, at - acked)) / 1e6;
    delays_ms_.push_back(ms);
    by_kind_[c->kind].push_back(ms);
  }
  return all;
}

void Bench::HeartbeatLoop() {
  // Every watcher heartbeats every lease/3, spread evenly over that period.
  size_t next = 0;
  while (!stopping_.load()) {
    const int64_t period_ms = std::max<int64_t>(300, lease_ms_.load() / 3);
    const int64_t step_ms = 20;
    const size_t per_step =
        std::max<size_t>(1, watchers_.size() * static_cast<size_t>(step_ms) / static_cast<size_t>(period_ms));
    for (size_t i = 0; i < per_step; ++i) {
      watchers_[next]->Heartbeat();
      next = (next + 1) % watchers_.size();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(step_ms));
  }
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  return v[i];
}

int Bench::Run() {
  for (int i = 0; i < cfg_.channels; ++i) {
    grpc::ChannelArguments args;
    args.SetInt("abode.bench.channel", i);  // distinct args: one connection per channel
    args.SetMaxReceiveMessageSize(64 * 1024 * 1024);
    channels_.push_back(grpc::CreateCustomChannel(cfg_.server, grpc::InsecureChannelCredentials(), args));
    node_stubs_.push_back(v1::Nodes::NewStub(channels_.back()));
  }
  pools_ = v1::Pools::NewStub(channels_[0]);
  allocator_ = v1::Allocator::NewStub(channels_[0]);
  magics_ = v1::MagicAddresses::NewStub(channels_[0]);
  externals_ = v1::ExternalAddresses::NewStub(channels_[0]);
  if (!Setup()) return 1;

  const long rss_before = cfg_.server_pid > 0 ? VmRssKiB(cfg_.server_pid) : -1;
  const auto connect_start = Clock::now();
  for (int i = 0; i < cfg_.watchers; ++i) {
    char name[64];
    std::snprintf(name, sizeof(name), "%s-node-%05d", cfg_.prefix.c_str(), i);
    watchers_.push_back(std::make_unique<Watcher>(this, static_cast<size_t>(i), name));
  }
  for (int i = 0; i < cfg_.watchers; ++i) watchers_[i]->Start(node_stubs_[i % cfg_.channels].get());
  if (!WaitUntil([&] { return snapshots_.load() >= cfg_.watchers; }, std::chrono::seconds(120))) {
    std::fprintf(stderr, "only %d of %d watchers got their first message within 120 s\n", snapshots_.load(),
                 cfg_.watchers);
    stopping_ = true;
    for (auto& w : watchers_) w->Close();
    WaitUntil([&] { return ended_.load() >= cfg_.watchers; }, std::chrono::seconds(30));
    return 1;
  }
  const double connect_s = std::chrono::duration<double>(Clock::now() - connect_start).count();
  std::thread heartbeats([this] { HeartbeatLoop(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int64_t>(cfg_.settle_s * 1000)));
  const long rss_idle = cfg_.server_pid > 0 ? VmRssKiB(cfg_.server_pid) : -1;
  std::printf("%d watchers connected in %.2f s (lease %lld ms)\n", cfg_.watchers, connect_s,
              static_cast<long long>(lease_ms_.load()));

  const size_t n = watchers_.size();
  const int rounds = std::max(1, (cfg_.changes + 5) / 6);
  int measured = 0;
  for (int r = 0; r < rounds; ++r) {
    const std::string magic = cfg_.prefix + "-magic-" + std::to_string(r);
    const std::string external = cfg_.prefix + "-ext-" + std::to_string(r);
    const std::string owner = cfg_.prefix + "-pod-" + std::to_string(r);
    const std::string host = watchers_[(static_cast<size_t>(r) * 7919) % n]->node();
    const std::string label = cfg_.prefix + "-agent-" + std::to_string(r);
    auto rpc_ok = [&](const grpc::Status& s, const std::string& what) {
      if (!s.ok()) {
        std::lock_guard<std::mutex> lock(mu_);
        failures_.push_back(what + ": " + s.error_message());
      }
      return s.ok();
    };

    auto c = std::make_shared<Change>(n);
    c->kind = "magic create (every node)";
    c->id = "magic/" + magic;
    c->expected = static_cast<int>(n);
    measured += Measure(c, [&](Change&) {
      grpc::ClientContext ctx;
      v1::CreateMagicAddressRequest req;
      auto* spec = req.mutable_address();
      spec->set_name(magic);
      spec->set_address("169.254.210." + std::to_string(10 + r % 200));
      spec->set_label_selector("app=" + label);
      auto* p = spec->add_ports();
      p->set_protocol(v1::PROTOCOL_UDP);
      p->set_port(8125);
      v1::MagicAddress out;
      return rpc_ok(magics_->CreateMagicAddress(&ctx, req, &out), "create magic address");
    });

    c = std::make_shared<Change>(n);
    c->kind = "workload allocate (one node)";
    c->id = "magic/" + magic;
    c->node = host;
    c->expected = 1;
    measured += Measure(c, [&](Change&) {
      grpc::ClientContext ctx;
      v1::AllocateRequest req;
      req.set_pool(cfg_.prefix + "-pods");
      req.set_owner(owner);
      req.set_node(host);
      (*req.mutable_labels())["app"] = label;
      v1::Allocation out;
      return rpc_ok(allocator_->Allocate(&ctx, req, &out), "allocate");
    });

    c = std::make_shared<Change>(n);
    c->kind = "external create (one node)";
    c->id = "external/" + external;
    c->expected = 1;
    measured += Measure(c, [&](Change&) {
      grpc::ClientContext ctx;
      v1::CreateExternalAddressRequest req;
      req.mutable_address()->set_name(external);
      req.mutable_address()->set_pool(cfg_.prefix + "-ext");
      req.mutable_address()->set_node_selector("abode.bench=true");
      v1::ExternalAddress out;
      return rpc_ok(externals_->CreateExternalAddress(&ctx, req, &out), "create external address");
    });

    c = std::make_shared<Change>(n);
    c->kind = "external delete (one node)";
    c->id = "external/" + external;
    c->removal = true;
    c->expected = 1;
    measured += Measure(c, [&](Change&) {
      grpc::ClientContext ctx;
      v1::DeleteExternalAddressRequest req;
      req.set_name(external);
      v1::DeleteAddressResponse out;
      return rpc_ok(externals_->DeleteExternalAddress(&ctx, req, &out), "delete external address");
    });

    c = std::make_shared<Change>(n);
    c->kind = "workload release (one node)";
    c->id = "magic/" + magic;
    c->node = host;
    c->expected = 1;
    measured += Measure(c, [&](Change&) {
      grpc::ClientContext ctx;
      v1::ReleaseRequest req;
      req.set_owner(owner);
      req.set_pool(cfg_.prefix + "-pods");
      v1::ReleaseResponse out;
      return rpc_ok(allocator_->Release(&ctx, req, &out), "release");
    });

    c = std::make_shared<Change>(n);
    c->kind = "magic delete (every node)";
    c->id = "magic/" + magic;
    c->removal = true;
    c->expected = static_cast<int>(n);
    measured += Measure(c, [&](Change&) {
      grpc::ClientContext ctx;
      v1::DeleteMagicAddressRequest req;
      req.set_name(magic);
      v1::DeleteAddressResponse out;
      return rpc_ok(magics_->DeleteMagicAddress(&ctx, req, &out), "delete magic address");
    });
  }
  const long rss_end = cfg_.server_pid > 0 ? VmRssKiB(cfg_.server_pid) : -1;

  stopping_ = true;
  heartbeats.join();
  for (auto& w : watchers_) w->Close();
  WaitUntil([&] { return ended_.load() >= cfg_.watchers; }, std::chrono::seconds(30));

  std::lock_guard<std::mutex> lock(mu_);
  const double p50 = Percentile(delays_ms_, 0.50), p99 = Percentile(delays_ms_, 0.99);
  const double max = delays_ms_.empty() ? 0 : *std::max_element(delays_ms_.begin(), delays_ms_.end());
  std::printf("changes: %d measured, %zu deliveries\n", measured, delays_ms_.size());
  for (const auto& [kind, v] : by_kind_) {
    std::printf("  %-30s n=%-6zu p50 %7.1f ms  p99 %7.1f ms  max %7.1f ms\n", kind.c_str(), v.size(),
                Percentile(v, 0.5), Percentile(v, 0.99), *std::max_element(v.begin(), v.end()));
  }
  std::printf("delta delay after acknowledgement: p50 %.1f ms  p99 %.1f ms  max %.1f ms  (target p99 <= 200 ms)\n",
              p50, p99, max);
  nlohmann::json j = {{"watchers", cfg_.watchers}, {"channels", cfg_.channels}, {"changes", measured},
                      {"deliveries", delays_ms_.size()}, {"p50_ms", p50}, {"p99_ms", p99}, {"max_ms", max},
                      {"connect_s", connect_s}, {"failures", failures_}};
  if (cfg_.server_pid > 0) {
    const double per_watcher = static_cast<double>(rss_idle - rss_before) / cfg_.watchers;
    std::printf("allocator VmRSS: %ld KiB before, %ld KiB with %d idle watchers, %ld KiB after the changes: "
                "%.1f KiB per idle watcher (target <= 50)\n",
                rss_before, rss_idle, cfg_.watchers, rss_end, per_watcher);
    j["rss_before_kib"] = rss_before;
    j["rss_idle_kib"] = rss_idle;
    j["rss_end_kib"] = rss_end;
    j["kib_per_idle_watcher"] = per_watcher;
  }
  for (const auto& f : failures_) std::fprintf(stderr, "failure: %s\n", f.c_str());
  std::printf("%s\n", j.dump().c_str());
  return failures_.empty() && errors_ == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"abode-watch-bench: many node clients watching their assignments, and how fast changes reach them"};
  Bench::Config cfg;
  app.add_option("--server", cfg.server, "allocator HOST:PORT")->capture_default_str();
  app.add_option("--watchers", cfg.watchers, "simulated node clients")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--channels", cfg.channels, "gRPC channels (connections) the streams share")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--changes", cfg.changes, "changes to measure (rounded up to whole rounds of six)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--server-pid", cfg.server_pid, "the allocator's pid, to read its VmRSS");
  app.add_option("--prefix", cfg.prefix, "prefix of node, pool and address names")->capture_default_str();
  app.add_option("--settle-s", cfg.settle_s, "seconds to wait after connecting before reading VmRSS")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  // Each channel is one connection; the limit matters for the allocator more than here, but raise it anyway.
  if (rlimit lim{}; ::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &lim);
  }
  return Bench(cfg).Run();
}

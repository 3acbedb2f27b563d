// abode-bench: N concurrent gRPC clients driving Allocate (and Release) against an allocator for a duration.
// The last line of output is one JSON object: ops_per_sec, p50_ms, p99_ms, p999_ms, errors (and context).
//
// Modes:
//   allocate  every client allocates fresh owners, one after the other (pool fills up)
//   churn     every client allocates a fresh owner and releases it again; only Allocate latency counts,
//             so the pool stays at its fill level (use --prefill to measure a nearly full pool)
//
// --list-pool P adds one more client, on a connection of its own, that lists every allocation of pool P
// (linearizable ListAllocations, pages of --list-page-size) from start to end, again and again, while the
// others run: what a large read costs the writers. Its pace is reported as listed_per_sec. With
// --concurrency 0 the process is that lister alone, for --warmup and --duration: run it beside a process of
// writers, so that the two share no gRPC threads (a thread waiting on a blocking call may poll for, and
// handle, any connection of its process). In production the lister is another machine; here it shares the
// cores with the writers' clients and the allocator, so it runs at the priority --list-sched names: idle
// (SCHED_IDLE, the default: it runs only on a core that nothing else wants) or nice (nice 19). A lister-only
// process sets it for the whole process before gRPC starts a thread, so that every thread inherits it.
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/create_channel.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/support/byte_buffer.h>

#include "CLI/CLI.hpp"
#include "absl/synchronization/mutex.h"
#include "abode/v1/allocator.grpc.pb.h"
#include "abode/v1/pools.grpc.pb.h"
#include "nlohmann/json.hpp"

namespace {

using Clock = std::chrono::steady_clock;

struct Config {
  std::string server = "127.0.0.1:7443";
  std::string pool = "bench";
  std::string create_cidr;  // create the pool with this CIDR first (deleting an old one of that name)
  std::string mode = "allocate";
  int concurrency = 64;
  int channels = 1;
  bool grpc_retries = false;
  double duration_s = 5;
  double warmup_s = 1;
  double prefill = 0;       // fraction of the pool to fill before measuring
  long long count = 0;      // allocate mode: stop after this many allocations instead of after duration
  std::string owner_prefix = "bench";
  std::string list_pool;    // list this pool's allocations in a loop meanwhile (empty: no lister)
  int list_page_size = 5000;
  bool list_stale = false;  // the lister asks for this replica's state without a read fence
  std::string list_sched = "idle";  // the lister's CPU priority: idle (SCHED_IDLE) or nice (nice 19)
  int gap_us = 0;  // each client waits this long between its calls (a lone caller's latency, not a load)
};

// Gives the calling thread (and the threads it starts later) the lister's CPU priority.
void SetListerPriority(const std::string& sched) {
  if (sched == "idle") {
    struct sched_param param {};
    if (sched_setscheduler(0, SCHED_IDLE, &param) != 0) std::perror("lister: sched_setscheduler(SCHED_IDLE)");
  } else if (setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), 19) != 0) {
    std::perror("lister: setpriority");
  }
}

double ParseDuration(const std::string& s) {
  if (s.empty()) return 0;
  double v = std::stod(s);
  if (s.back() == 'm' && s.size() > 2 && s[s.size() - 2] == 'm') return v / 1000;
  if (s.back() == 'm') return v * 60;
  return v;
}

class Bench;

// One client: a chain of calls, each started from the previous one's completion.
struct Client {
  Bench* bench = nullptr;
  abode::v1::Allocator::Stub* stub = nullptr;
  grpc::GenericStub* generic = nullptr;
  int index = 0;
  long long seq = 0;
  std::unique_ptr<grpc::ClientContext> ctx;
  abode::v1::AllocateRequest alloc_req;
  abode::v1::Allocation alloc_resp;
  abode::v1::ReleaseRequest release_req;
  abode::v1::ReleaseResponse release_resp;
  grpc::ByteBuffer health_req;  // an empty grpc.health.v1.HealthCheckRequest
  grpc::ByteBuffer health_resp;
  Clock::time_point started;
  std::vector<float> latencies_ms;  // measured allocations only
};

class Bench {
 public:
  explicit Bench(Config c) : cfg_(std::move(c)) {}

  int Run() {
    for (int i = 0; i < cfg_.channels; ++i) {
      grpc::ChannelArguments args;
      args.SetInt("abode.bench.channel", i);  // distinct args: one connection per channel
      // gRPC's client retry layer keeps a copy of every call's messages in case it replays the call; the
      // bench never asks for a replay, and the layer costs ~5 us of client CPU per call (it shares the
      // allocator's 2 cores here). --grpc-retries measures with it.
      args.SetInt(GRPC_ARG_ENABLE_RETRIES, cfg_.grpc_retries ? 1 : 0);
      auto ch = grpc::CreateCustomChannel(cfg_.server, grpc::InsecureChannelCredentials(), args);
      stubs_.push_back(abode::v1::Allocator::NewStub(ch));
      generic_stubs_.push_back(std::make_unique<grpc::GenericStub>(ch));
      if (i == 0) pools_ = abode::v1::Pools::NewStub(ch);
    }
    if (!cfg_.create_cidr.empty() && !CreatePool()) return 1;
    if (cfg_.prefill > 0 && !Prefill()) return 1;

    clients_.resize(static_cast<size_t>(cfg_.concurrency));
    for (int i = 0; i < cfg_.concurrency; ++i) {
      Client& c = clients_[static_cast<size_t>(i)];
      c.bench = this;
      c.index = i;
      c.stub = stubs_[static_cast<size_t>(i % cfg_.channels)].get();
      c.generic = generic_stubs_[static_cast<size_t>(i % cfg_.channels)].get();
      grpc::Slice empty;
      c.health_req = grpc::ByteBuffer(&empty, 1);
      c.latencies_ms.reserve(200000);
    }
    const auto t0 = Clock::now();
    measure_from_ = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(cfg_.warmup_s));
    stop_at_ = measure_from_ + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(cfg_.duration_s));
    if (cfg_.count > 0) stop_at_ = Clock::time_point::max();
    outstanding_ = cfg_.concurrency;
    std::thread lister;
    if (!cfg_.list_pool.empty()) {
      grpc::ChannelArguments args;
      args.SetInt("abode.bench.lister", 1);
      args.SetMaxReceiveMessageSize(64 * 1024 * 1024);
      lister = std::thread(
          [this, stub = abode::v1::Allocator::NewStub(grpc::CreateCustomChannel(
                     cfg_.server, grpc::InsecureChannelCredentials(), args))]() { ListInALoop(*stub); });
    }
    for (auto& c : clients_) StartAllocate(c);
    if (cfg_.concurrency == 0) std::this_thread::sleep_until(stop_at_);  // the lister alone
    {
      std::unique_lock<std::mutex> lock(mu_);
      done_cv_.wait(lock, [&] { return outstanding_ == 0; });
    }
    const auto t1 = cfg_.concurrency == 0 ? stop_at_ : Clock::now();
    listing_.store(false);
    if (lister.joinable()) lister.join();
    Report(t1);
    return 0;
  }

  // The lister: whole listings of the pool, page by page, until the writers are done. It runs at the
  // --list-sched priority (the channel is made on the caller's thread).
  void ListInALoop(abode::v1::Allocator::Stub& stub) {
    SetListerPriority(cfg_.list_sched);
    std::string token;
    while (listing_.load()) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
      if (cfg_.list_stale) ctx.AddMetadata("abode-read-stale", "true");
      abode::v1::ListAllocationsRequest req;
      req.set_pool(cfg_.list_pool);
      req.set_page_size(cfg_.list_page_size);
      req.set_page_token(token);
      abode::v1::ListAllocationsResponse resp;
      const grpc::Status s = stub.ListAllocations(&ctx, req, &resp);
      if (!s.ok()) {
        list_errors_.fetch_add(1);
        token.clear();
        continue;
      }
      const auto now = Clock::now();
      if (now >= measure_from_ && now <= stop_at_) listed_.fetch_add(resp.allocations_size());
      token = resp.next_page_token();
      if (token.empty()) listings_.fetch_add(1);
    }
  }

  void StartAllocate(Client& c) {
    if (Clock::now() >= stop_at_ || (cfg_.count > 0 && issued_.fetch_add(1) >= cfg_.count)) {
      Finish();
      return;
    }
    c.ctx = std::make_unique<grpc::ClientContext>();
    c.ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    if (cfg_.mode != "health") {
      c.alloc_req.set_pool(cfg_.pool);
      c.alloc_req.set_owner(cfg_.owner_prefix + "/" + std::to_string(c.index) + "/" + std::to_string(c.seq++));
    }
    c.started = Clock::now();
    auto on_done = [this, &c](grpc::Status s) {
      const auto now = Clock::now();
      if (!s.ok()) {
        errors_.fetch_add(1);
        if (first_error_.exchange(true) == false) {
          std::fprintf(stderr, "error: %d %s\n", s.error_code(), s.error_message().c_str());
        }
      } else if (c.started >= measure_from_ && now <= stop_at_) {
        c.latencies_ms.push_back(std::chrono::duration<float, std::milli>(now - c.started).count());
      }
      completed_.fetch_add(1);
      // The wait blocks this callback thread: meant for a few clients, whose calls then find the allocator
      // idle, as a lone caller does.
      if (cfg_.gap_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(cfg_.gap_us));
      if (s.ok() && cfg_.mode == "churn") {
        StartRelease(c);
      } else {
        StartAllocate(c);
      }
    };
    if (cfg_.mode == "health") {
      // The gRPC floor: the standard health check, answered by gRPC itself, through the same client loop.
      c.generic->UnaryCall(c.ctx.get(), "/grpc.health.v1.Health/Check", grpc::StubOptions(), &c.health_req,
                           &c.health_resp, std::move(on_done));
    } else {
      c.stub->async()->Allocate(c.ctx.get(), &c.alloc_req, &c.alloc_resp, std::move(on_done));
    }
  }

  void StartRelease(Client& c) {
    c.ctx = std::make_unique<grpc::ClientContext>();
    c.ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    c.release_req.set_owner(c.alloc_req.owner());
    c.release_req.set_pool(cfg_.pool);
    c.stub->async()->Release(c.ctx.get(), &c.release_req, &c.release_resp, [this, &c](grpc::Status s) {
      if (!s.ok()) errors_.fetch_add(1);
      StartAllocate(c);
    });
  }

 private:
  void Finish() {
    std::lock_guard<std::mutex> lock(mu_);
    if (--outstanding_ == 0) done_cv_.notify_all();
  }

  bool CreatePool() {
    {
      grpc::ClientContext ctx;
      abode::v1::DeletePoolRequest req;
      req.set_name(cfg_.pool);
      req.set_force(true);
      abode::v1::DeletePoolResponse resp;
      (void)pools_->DeletePool(&ctx, req, &resp);
    }
    grpc::ClientContext ctx;
    abode::v1::CreatePoolRequest req;
    req.mutable_pool()->set_name(cfg_.pool);
    req.mutable_pool()->set_cidr(cfg_.create_cidr);
    abode::v1::Pool resp;
    auto s = pools_->CreatePool(&ctx, req, &resp);
    if (!s.ok()) {
      std::fprintf(stderr, "create pool: %s\n", s.error_message().c_str());
      return false;
    }
    pool_size_ = std::stoull(resp.size());
    return true;
  }

  // Fills the pool to the requested fraction with a separate owner prefix, using the same clients.
  bool Prefill() {
    if (pool_size_ == 0) {
      std::fprintf(stderr, "--prefill needs --create-cidr\n");
      return false;
    }
    Config fill = cfg_;
    fill.mode = "allocate";
    fill.count = static_cast<long long>(cfg_.prefill * static_cast<double>(pool_size_));
    fill.create_cidr.clear();
    fill.prefill = 0;
    fill.owner_prefix = "prefill";
    fill.list_pool.clear();
    fill.warmup_s = 0;
    std::fprintf(stderr, "prefilling %lld addresses\n", fill.count);
    Bench b(fill);
    b.quiet_ = true;
    return b.Run() == 0 && b.errors_.load() == 0;
  }

  void Report(Clock::time_point end) {
    std::vector<float> all;
    for (auto& c : clients_) all.insert(all.end(), c.latencies_ms.begin(), c.latencies_ms.end());
    std::sort(all.begin(), all.end());
    auto pct = [&](double p) -> double {
      if (all.empty()) return 0;
      size_t i = static_cast<size_t>(p * static_cast<double>(all.size() - 1));
      return all[i];
    };
    double seconds = cfg_.count > 0 ? std::chrono::duration<double>(end - measure_from_).count() : cfg_.duration_s;
    nlohmann::json j;
    j["mode"] = cfg_.mode;
    j["concurrency"] = cfg_.concurrency;
    j["channels"] = cfg_.channels;
    j["grpc_retries"] = cfg_.grpc_retries;
    j["ops"] = all.size();
    j["ops_per_sec"] = seconds > 0 ? static_cast<double>(all.size()) / seconds : 0;
    j["p50_ms"] = pct(0.50);
    j["p99_ms"] = pct(0.99);
    j["p999_ms"] = pct(0.999);
    j["errors"] = errors_.load();
    j["prefill"] = cfg_.prefill;
    // This process's CPU time so far (all threads, user and system): what the client itself took from the
    // machine, for benchmarks that put a floor of the same CPU beside the allocator.
    rusage usage{};
    if (getrusage(RUSAGE_SELF, &usage) == 0) {
      auto sec = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
      j["cpu_seconds"] = sec(usage.ru_utime) + sec(usage.ru_stime);
    }
    if (!cfg_.list_pool.empty()) {
      j["listed_per_sec"] = seconds > 0 ? static_cast<double>(listed_.load()) / seconds : 0;
      j["whole_listings"] = listings_.load();
      j["list_errors"] = list_errors_.load();
    }
    if (!quiet_) std::printf("%s\n", j.dump().c_str());
  }

  Config cfg_;
  std::vector<std::unique_ptr<abode::v1::Allocator::Stub>> stubs_;
  std::vector<std::unique_ptr<grpc::GenericStub>> generic_stubs_;
  std::unique_ptr<abode::v1::Pools::Stub> pools_;
  std::vector<Client> clients_;
  Clock::time_point measure_from_;
  Clock::time_point stop_at_;
  std::mutex mu_;
  std::condition_variable done_cv_;
  int outstanding_ = 0;
  std::atomic<long long> issued_{0};
  std::atomic<long long> completed_{0};
  std::atomic<long long> errors_{0};
  std::atomic<bool> first_error_{false};
  std::atomic<bool> listing_{true};
  std::atomic<long long> listed_{0};
  std::atomic<long long> listings_{0};
  std::atomic<long long> list_errors_{0};
  unsigned long long pool_size_ = 0;
  bool quiet_ = false;
};

}  // namespace

int main(int argc, char** argv) {
  // Mutex deadlock detection (on by default in this abseil build) costs a graph lookup on every lock that
  // gRPC takes; the process does not rely on it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  CLI::App app{"abode-bench: concurrent Allocate/Release load against an abode allocator"};
  Config c;
  std::string duration = "5s";
  std::string warmup = "1s";
  app.add_option("--server", c.server, "allocator HOST:PORT")->envname("ABODE_SERVER")->capture_default_str();
  app.add_option("--pool", c.pool, "pool to allocate from")->capture_default_str();
  app.add_option("--create-cidr", c.create_cidr, "(re)create the pool with this CIDR before the run");
  app.add_option("--mode", c.mode, "allocate | churn | health (gRPC health checks: the floor of a unary call)")
      ->check(CLI::IsMember({"allocate", "churn", "health"}))->capture_default_str();
  app.add_option("--concurrency", c.concurrency, "concurrent clients (0: only the lister of --list-pool)")
      ->check(CLI::Range(0, 100000))
      ->capture_default_str();
  app.add_option("--channels", c.channels, "gRPC connections the clients share")
      ->check(CLI::Range(1, 64))->capture_default_str();
  app.add_flag("--grpc-retries", c.grpc_retries, "keep gRPC's client retry layer on (off by default)");
  app.add_option("--duration", duration, "measured time, e.g. 5s")->capture_default_str();
  app.add_option("--warmup", warmup, "unmeasured time before it")->capture_default_str();
  app.add_option("--prefill", c.prefill, "fill this fraction of the pool first (needs --create-cidr)")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--gap-us", c.gap_us, "each client waits this many microseconds between its calls")
      ->check(CLI::Range(0, 10'000'000))
      ->capture_default_str();
  app.add_option("--count", c.count, "allocate mode: stop after this many allocations");
  app.add_option("--owner-prefix", c.owner_prefix, "owner key prefix")->capture_default_str();
  app.add_option("--list-pool", c.list_pool,
                 "one more client lists this pool's allocations, page by page, in a loop while the others run");
  app.add_flag("--list-stale", c.list_stale,
               "the lister reads without a linearizable fence (abode-read-stale), so its pages add no raft barrier");
  app.add_option("--list-sched", c.list_sched,
                 "the lister's CPU priority: idle (SCHED_IDLE: only CPU nothing else wants) or nice (nice 19)")
      ->check(CLI::IsMember({"idle", "nice"}))
      ->capture_default_str();
  app.add_option("--list-page-size", c.list_page_size, "the lister's page size")
      ->check(CLI::Range(1, 5000))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    c.duration_s = ParseDuration(duration);
    c.warmup_s = ParseDuration(warmup);
  } catch (const std::exception&) {
    std::fprintf(stderr, "--duration/--warmup: expected a number of seconds like 5s\n");
    return 2;
  }
  if (c.count > 0) c.warmup_s = 0;
  if (c.concurrency == 0) {
    if (c.list_pool.empty() || c.count > 0 || c.prefill > 0 || !c.create_cidr.empty()) {
      std::fprintf(stderr, "--concurrency 0: the process only lists, and needs --list-pool (without --count, "
                           "--prefill or --create-cidr)\n");
      return 2;
    }
    SetListerPriority(c.list_sched);  // before gRPC starts any thread: they all inherit it
  }
  c.channels = std::max(1, std::min(c.channels, c.concurrency));
  Bench b(c);
  return b.Run();
}

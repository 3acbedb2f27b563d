// abode-allocator: the address authority. One process is one replica; with no peers it is a single-voter
// cluster with its store in --data-dir. With --peers it is member --id of a replicated cluster (see
// docs/replication.md).
#include <arpa/inet.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "allocator-service/leader_link.h"
#include "allocator-service/rejoin.h"
#include "allocator-service/restore.h"
#include "allocator-service/server.h"
#include "allocator-service/thread_priority.h"
#include "logging/process_log.h"
#include "metrics/endpoint.h"
#include "replication/clock.h"
#include "replication/membership.h"
#include "replication/offline_tools.h"
#include "spdlog/spdlog.h"
#include "tracing/current_span.h"
#include "tracing/tracer.h"

namespace {

// A StatefulSet pod is named NAME-ORDINAL; its member id is ORDINAL + 1 (raft ids start at 1).
uint64_t IdFromHostname() {
  char name[256] = {};
  if (::gethostname(name, sizeof(name) - 1) != 0) return 0;
  const std::string host(name);
  const size_t dash = host.rfind('-');
  uint64_t ordinal = 0;
  if (dash == std::string::npos || !absl::SimpleAtoi(host.substr(dash + 1), &ordinal)) return 0;
  return ordinal + 1;
}

// Completes the membership options from the flags; an error names the flag.
absl::Status ConfigureMembership(const std::string& peers, bool raft_listen_given,
                                 abode::allocator::ServerOptions& options) {
  using abode::replication::SplitHostPort;
  if (peers.empty()) return absl::OkStatus();
  std::string host;
  int grpc_port = 0;
  if (absl::Status s = SplitHostPort(options.listen, "--listen", &host, &grpc_port); !s.ok()) return s;
  auto members = abode::replication::ParsePeers(peers, grpc_port);
  // Its messages start with the field, "peers: ...": say the flag.
  if (!members.ok()) return absl::InvalidArgumentError(absl::StrCat("--", members.status().message()));
  if (options.raft.id == 0) options.raft.id = IdFromHostname();
  if (options.raft.id == 0) {
    return absl::InvalidArgumentError("--id: required with --peers (or a hostname ending in -ORDINAL)");
  }
  const abode::replication::Member* self = abode::replication::FindMember(*members, options.raft.id);
  if (self == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("--peers: no entry for this member's id ", options.raft.id));
  }
  if (!raft_listen_given) {
    int raft_port = 0;
    if (absl::Status s = SplitHostPort(self->raft_address, "--peers", &host, &raft_port); !s.ok()) return s;
    options.raft.raft_address = absl::StrCat("0.0.0.0:", raft_port);
  }
  options.raft.peers = *std::move(members);
  return absl::OkStatus();
}

// --recover IDS: the members of --peers with those ids become the whole configuration.
absl::Status Recover(const std::string& ids, const abode::allocator::ServerOptions& options) {
  if (options.raft.peers.empty()) return absl::InvalidArgumentError("recover: needs --peers (the members' addresses)");
  std::vector<abode::replication::Member> keep;
  for (absl::string_view item : absl::StrSplit(ids, ',', absl::SkipWhitespace())) {
    uint64_t id = 0;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(item), &id) || id == 0) {
      return absl::InvalidArgumentError(absl::StrCat("recover: \"", item, "\" is not a member id"));
    }
    const abode::replication::Member* m = abode::replication::FindMember(options.raft.peers, id);
    if (m == nullptr) return absl::InvalidArgumentError(absl::StrCat("recover: id ", id, " is not in --peers"));
    if (abode::replication::FindMember(keep, id) != nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("recover: id ", id, " twice"));
    }
    keep.push_back(*m);
  }
  if (keep.empty()) return absl::InvalidArgumentError("recover: no member ids given");
  if (absl::Status s = abode::replication::RecoverConfiguration(options.raft.data_dir, options.raft.id, keep); !s.ok()) {
    return s;
  }
  spdlog::warn("recover: the raft configuration in {} is now {} member(s); the others must rejoin", options.raft.data_dir,
               keep.size());
  return absl::OkStatus();
}

absl::Status CheckReadCgroup(const abode::allocator::ServerOptions& options) {
  if (options.read_cgroup.empty()) return absl::OkStatus();
  absl::Status s = abode::allocator::CheckCgroup(options.read_cgroup);
  if (s.ok()) return s;
  return absl::InvalidArgumentError(absl::StrCat("--read-cgroup: ", s.message()));
}

// --check-config: what the start would refuse, found without binding a port or writing the data dir. An
// error names the flag.
absl::Status CheckConfig(const abode::allocator::ServerOptions& options) {
  using abode::replication::SplitHostPort;
  std::string host;
  int port = 0;
  if (absl::Status s = SplitHostPort(options.listen, "--listen", &host, &port); !s.ok()) return s;
  if (absl::Status s = SplitHostPort(options.raft.raft_address, "--raft-listen", &host, &port); !s.ok()) return s;
  if (in_addr a{}; ::inet_pton(AF_INET, host.c_str(), &a) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--raft-listen: \"", options.raft.raft_address, "\" needs an IPv4 address as HOST"));
  }
  if (!options.metrics_listen.empty()) {
    if (absl::Status s = abode::metrics::CheckMetricsListen(options.metrics_listen); !s.ok()) return s;
  }
  if (options.raft.data_dir.empty()) return absl::InvalidArgumentError("--data-dir: empty");
  if (struct stat st{}; ::stat(options.raft.data_dir.c_str(), &st) == 0 && !S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat("--data-dir: ", options.raft.data_dir, " is not a folder"));
  }
  if (options.raft.heartbeat_timeout_ms == 0 || options.raft.election_timeout_ms <= options.raft.heartbeat_timeout_ms) {
    return absl::InvalidArgumentError("--election-timeout-ms: must exceed --heartbeat-timeout-ms (> 0)");
  }
  return CheckReadCgroup(options);
}

constexpr int64_t kMaxRejoinWaitMs = 30'000;  // between attempts to leave or rejoin the configuration

// Waits up to `ms` for SIGINT or SIGTERM (blocked, see main); true when one came.
bool SignalWithin(const sigset_t& signals, int64_t ms) {
  timespec t{static_cast<time_t>(ms / 1000), static_cast<long>(ms % 1000) * 1'000'000};
  return sigtimedwait(&signals, nullptr, &t) > 0;
}

// A member with an empty data dir whose cluster already runs leaves the configuration before it starts, so
// that it never votes on a log it no longer holds, and is added back once serving (see rejoin.h). Returns
// false when a signal ended the wait; sets `add_self` when the member must add itself back.
bool PrepareRejoin(abode::allocator::Rejoin& rejoin, abode::allocator::ServerOptions& options,
                   const sigset_t& signals, bool* add_self) {
  using abode::allocator::Rejoin;
  const std::string& dir = options.raft.data_dir;
  *add_self = abode::allocator::RejoinPending(dir);
  if (!*add_self && abode::replication::RaftLogIsPristine(dir)) {
    std::string why;
    switch (rejoin.Probe(&why)) {
      case Rejoin::Plan::kBootstrap:
        if (options.raft.join) {
          spdlog::info("empty data dir: waiting to be added ({})", why);
        } else {
          spdlog::info("empty data dir: starting as a member of a new cluster ({})", why);
        }
        break;
      case Rejoin::Plan::kAwaitAdd:
        spdlog::warn("empty data dir and a running cluster that does not list member {} ({}): waiting to be "
                     "added (abodectl cluster add)",
                     options.raft.id, why);
        options.raft.join = true;
        break;
      case Rejoin::Plan::kRejoin: {
        spdlog::warn("empty data dir and a running cluster ({}): leaving the configuration before rejoining, "
                     "so that this member does not vote before it holds the log again",
                     why);
        for (int64_t wait_ms = 1000;; wait_ms = std::min<int64_t>(2 * wait_ms, kMaxRejoinWaitMs)) {
          absl::Status s = rejoin.TryRemoveSelf();
          if (s.ok()) break;
          spdlog::warn("rejoin: {} (retrying in {} s; the remaining voters must reach a quorum)", s.ToString(),
                       wait_ms / 1000);
          if (SignalWithin(signals, wait_ms)) return false;
        }
        if (absl::Status s = abode::allocator::MarkRejoinPending(dir); !s.ok()) {
          spdlog::error("rejoin: {}", s.ToString());
        }
        spdlog::info("member {} left the configuration; it starts empty and asks to be added back",
                     options.raft.id);
        *add_self = true;
        break;
      }
    }
  }
  if (*add_self) options.raft.join = true;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  // Mutex deadlock detection (on by default in this abseil build) costs a graph lookup on every lock that
  // gRPC takes; the process does not rely on it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  CLI::App app{"abode-allocator: cluster-wide IP address authority"};
  abode::allocator::ServerOptions options;
  std::string port_file;
  options.raft.data_dir = "./data";
  app.add_option("--listen", options.listen, "gRPC listen address HOST:PORT (port 0: any free port)")
      ->envname("ABODE_LISTEN")
      ->capture_default_str();
  app.add_option("--data-dir", options.raft.data_dir, "folder holding the raft log, snapshots and state.db")
      ->envname("ABODE_DATA_DIR")
      ->capture_default_str();
  app.add_option("--metrics-listen", options.metrics_listen,
                 "serve Prometheus metrics over HTTP at /metrics on IPV4:PORT (0.0.0.0:PORT: every address; "
                 "port 0: any free port); off by default")
      ->envname("ABODE_METRICS_LISTEN");
  app.add_option("--port-file", port_file, "write the bound gRPC port here once serving");
  auto* raft_listen =
      app.add_option("--raft-listen", options.raft.raft_address,
                     "where the raft transport listens, IPv4 HOST:PORT (with --peers: 0.0.0.0 and this member's "
                     "raft port unless given)")
          ->envname("ABODE_RAFT_LISTEN")
          ->capture_default_str();
  std::string peers;
  options.raft.id = 0;
  app.add_option("--id", options.raft.id,
                 "this member's id (> 0); with --peers and no id: the hostname's -ORDINAL suffix + 1")
      ->envname("ABODE_ID");
  app.add_option("--peers", peers,
                 "initial members, ID=RAFT_HOST:PORT[@GRPC_HOST:PORT],...; without @, a member's gRPC port is "
                 "the --listen port (empty: a single voter)")
      ->envname("ABODE_PEERS");
  app.add_flag("--join", options.raft.join, "never bootstrap: wait to be added with `abodectl cluster add`")
      ->envname("ABODE_JOIN");
  app.add_option("--election-timeout-ms", options.raft.election_timeout_ms, "raft election timeout")
      ->envname("ABODE_ELECTION_TIMEOUT_MS")
      ->capture_default_str();
  app.add_option("--heartbeat-timeout-ms", options.raft.heartbeat_timeout_ms, "raft heartbeat interval")
      ->envname("ABODE_HEARTBEAT_TIMEOUT_MS")
      ->capture_default_str();
  app.add_option("--forward-timeout-ms", options.forward_timeout_ms,
                 "how long a follower waits for the leader on a forwarded call")
      ->capture_default_str();
  app.add_option("--max-inflight-entries", options.raft.max_inflight_entries,
                 "log entries the leader keeps in flight before holding new commands for the next one (0: no limit)")
      ->capture_default_str();
  std::string read_sched = "idle";
  app.add_option("--read-sched", read_sched,
                 "how the threads that run reads (ListAllocations pages, Checksum, Backup, ...) yield the CPU to "
                 "writes: idle (SCHED_IDLE: they run only on a CPU no other thread wants, and a thread waking "
                 "up for a write takes it from them at once) or nice (the normal policy at --read-nice)")
      ->envname("ABODE_READ_SCHED")
      ->check(CLI::IsMember({"idle", "nice"}))
      ->capture_default_str();
  app.add_option("--read-cgroup", options.read_cgroup,
                 "a cgroup directory (cpu controller; cgroup v2: a threaded child of this process's cgroup) that "
                 "the read threads join; made with cpu.idle 1, their CPU time no longer counts against the "
                 "share of the allocator's own group, so that on a busy machine reads take only CPU no group wants")
      ->envname("ABODE_READ_CGROUP");
  app.add_option("--read-nice", options.read_nice,
                 "with --read-sched nice: nice value of the threads that run reads; when the cores are busy, "
                 "reads get what writes leave (0: the process's own priority)")
      ->envname("ABODE_READ_NICE")
      ->check(CLI::Range(0, 19))
      ->capture_default_str();
  app.add_option("--snapshot-trailing", options.raft.snapshot_trailing, "log entries kept after a snapshot")
      ->capture_default_str();
  app.add_option("--snapshot-threshold", options.raft.snapshot_threshold, "least log entries between snapshots")
      ->capture_default_str();
  app.add_option("--snapshot-log-ratio", options.raft.snapshot_log_ratio,
                 "log bytes between snapshots per byte of the last snapshot, so that a large state is not "
                 "serialised more often than it changes (0: exactly --snapshot-threshold entries)")
      ->check(CLI::Validator(
          [](std::string& v) -> std::string {
            double r = -1;
            try {
              r = std::stod(v);
            } catch (const std::exception&) {
            }
            return std::isfinite(r) && r >= 0 ? "" : "expected a finite number >= 0, got " + v;
          },
          "RATIO"))
      ->capture_default_str();
  app.add_option("--history-retention-hours", options.history_retention_ms,
                 "keep address history this long (0: forever)")
      ->transform([](std::string v) { return std::to_string(std::stoll(v) * 3600 * 1000); });
  app.add_option("--node-lease-ms", options.node_lease_ms,
                 "a node client not heard from for this long is marked not ready")
      ->envname("ABODE_NODE_LEASE_MS")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--reclaim-not-ready-after", options.reclaim_not_ready_after_ms,
                 "release the allocations made through a node once it has not been ready this long (e.g. 10m, "
                 "1h30m); default: never")
      ->transform([](std::string v) {
        absl::Duration d;
        if (!absl::ParseDuration(v, &d) || d <= absl::ZeroDuration() || d == absl::InfiniteDuration()) {
          throw CLI::ValidationError("--reclaim-not-ready-after", "expected a positive duration such as 10m, got " + v);
        }
        return std::to_string(absl::ToInt64Milliseconds(d));
      });
  bool log_state = false;
  app.add_flag("--log-state", log_state,
               "print this member's raft log state (term, last index and its term) as JSON and exit; the member "
               "must be stopped (to pick the survivor for --recover)");
  std::string recover;
  app.add_option("--recover", recover,
                 "disaster recovery: make the members with these ids (comma-separated, from --peers, this one "
                 "among them) the whole configuration, then exit; see docs/replication.md");
  std::string restore_from;
  app.add_option("--restore-from", restore_from,
                 "make a fresh store in the empty --data-dir from this backup file (abodectl backup), this member "
                 "alone in its configuration, then exit; see docs/replication.md");
  abode::logging::LogFlags log_flags;
  abode::logging::AddLogFlags(app, &log_flags);
  bool check_config = false;
  app.add_flag("--check-config", check_config,
               "validate the flags and environment, print the resulting configuration and exit (0: valid) without "
               "binding a port or touching the data dir");
  CLI11_PARSE(app, argc, argv);
  options.read_idle = read_sched == "idle";
  if (absl::Status s = CheckReadCgroup(options); !s.ok()) {
    std::fprintf(stderr, "abode-allocator: %s\n", std::string(s.message()).c_str());
    return 2;
  }

  const std::unique_ptr<abode::logging::ProcessLog> log =
      abode::logging::ProcessLog::Install(log_flags.Options("abode-allocator"));
  // Lines written inside a traced scope name its trace and span (tracing/current_span.h).
  log->SetTraceContextProvider([]() -> std::optional<abode::logging::TraceContext> {
    abode::tracing::LogIds ids = abode::tracing::CurrentLogIds();
    if (ids.trace_id.empty()) return std::nullopt;
    return abode::logging::TraceContext{std::move(ids.trace_id), std::move(ids.span_id)};
  });
  if (absl::Status s = ConfigureMembership(peers, raft_listen->count() > 0, options); !s.ok()) {
    std::fprintf(stderr, "abode-allocator: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  if (options.raft.id == 0) options.raft.id = 1;
  // Tracing from the OTEL_* variables (docs/tracing.md); a value it cannot use stops the start here.
  auto tracing_config = abode::tracing::ConfigFromEnvironment(std::getenv, "abode-allocator");
  if (!tracing_config.ok()) {
    std::fprintf(stderr, "abode-allocator: %s\n", std::string(tracing_config.status().message()).c_str());
    return 2;
  }
  if (std::none_of(tracing_config->resource.begin(), tracing_config->resource.end(),
                   [](const auto& kv) { return kv.first == "service.instance.id"; })) {
    tracing_config->resource.emplace_back("service.instance.id", "member-" + std::to_string(options.raft.id));
  }
  if (check_config) {
    if (absl::Status s = CheckConfig(options); !s.ok()) {
      std::fprintf(stderr, "abode-allocator: %s\n", std::string(s.message()).c_str());
      return 2;
    }
    std::printf("abode-allocator: configuration ok: member %llu of %zu, gRPC %s, raft %s, data dir %s%s%s\n",
                static_cast<unsigned long long>(options.raft.id), std::max<size_t>(1, options.raft.peers.size()),
                options.listen.c_str(), options.raft.raft_address.c_str(), options.raft.data_dir.c_str(),
                options.metrics_listen.empty() ? "" : ", metrics ", options.metrics_listen.c_str());
    return 0;
  }
  if (log_state) {
    auto st = abode::replication::ReadRaftLogState(options.raft.data_dir, options.raft.id);
    if (!st.ok()) {
      std::fprintf(stderr, "abode-allocator: %s\n", std::string(st.status().message()).c_str());
      return 1;
    }
    std::printf("{\"id\": %llu, \"term\": %llu, \"voted_for\": %llu, \"last_index\": %llu, \"last_term\": %llu, "
                "\"snapshot_index\": %llu}\n",
                static_cast<unsigned long long>(options.raft.id), static_cast<unsigned long long>(st->term),
                static_cast<unsigned long long>(st->voted_for), static_cast<unsigned long long>(st->last_index),
                static_cast<unsigned long long>(st->last_term), static_cast<unsigned long long>(st->snapshot_index));
    return 0;
  }
  if (!restore_from.empty()) {
    auto header = abode::allocator::RestoreFromBackup(restore_from, options.raft);
    if (!header.ok()) {
      std::fprintf(stderr, "abode-allocator: %s\n", std::string(header.status().message()).c_str());
      return 1;
    }
    std::printf("abode-allocator: restored %s into %s as member %llu: revision %llu, %llu allocations, checksum "
                "%016llx (taken at applied index %llu by member %llu); start the member, then add the others\n",
                restore_from.c_str(), options.raft.data_dir.c_str(), static_cast<unsigned long long>(options.raft.id),
                static_cast<unsigned long long>(header->revision()),
                static_cast<unsigned long long>(header->allocations()),
                static_cast<unsigned long long>(header->checksum()),
                static_cast<unsigned long long>(header->applied_index()),
                static_cast<unsigned long long>(header->member_id()));
    return 0;
  }
  if (!recover.empty()) {
    absl::Status s = Recover(recover, options);
    std::fprintf(s.ok() ? stdout : stderr, "abode-allocator: %s\n",
                 s.ok() ? "recovered; start this member, then add the others back (see docs/replication.md)"
                        : std::string(s.message()).c_str());
    return s.ok() ? 0 : 1;
  }
  // Signals are taken synchronously by the main thread (SIGUSR1 and SIGUSR2 by the log's thread); every other
  // thread inherits the mask.
  if (absl::Status s = log->HandleLevelSignals(); !s.ok()) {
    std::fprintf(stderr, "abode-allocator: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  // Every node client holds a connection (5,000 nodes by design): take the hard limit on open files.
  if (rlimit lim{}; ::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &lim);
  }

  std::unique_ptr<abode::allocator::GrpcLeaderLink> peer_link;
  std::unique_ptr<abode::allocator::Rejoin> rejoin;
  bool add_self = false;
  // Any member that knows others to ask, --join ones included: a wiped member that had been added with
  // --join is listed as a voter just the same.
  if (options.raft.peers.size() > 1) {
    peer_link = std::make_unique<abode::allocator::GrpcLeaderLink>(options.peer_credentials,
                                                                   options.forward_timeout_ms);
    rejoin = std::make_unique<abode::allocator::Rejoin>(
        *peer_link, abode::allocator::Rejoin::Options{.self_id = options.raft.id, .peers = options.raft.peers});
    if (!PrepareRejoin(*rejoin, options, signals, &add_self)) return 0;
  }

  abode::replication::SystemClock clock;
  options.raft.clock = &clock;
  // Declared before the server, so it outlives it and flushes its spans after the server has stopped.
  auto tracer = abode::tracing::Tracer::Start(*tracing_config);
  if (!tracer.ok()) {
    std::fprintf(stderr, "abode-allocator: %s\n", std::string(tracer.status().message()).c_str());
    return 2;
  }
  options.tracer = tracer->get();
  if ((*tracer)->enabled()) {
    spdlog::info("tracing: spans of {} go to {} over OTLP/gRPC", tracing_config->service_name,
                 tracing_config->endpoint);
  }
  auto server = abode::allocator::AllocatorServer::Start(options);
  if (!server.ok()) {
    spdlog::critical("cannot start: {}", server.status().ToString());
    std::fprintf(stderr, "abode-allocator: %s\n", std::string(server.status().message()).c_str());
    return 1;
  }
  spdlog::info("abode-allocator serving gRPC on port {} (data dir {})", (*server)->port(), options.raft.data_dir);
  if ((*server)->metrics_port() != 0) {
    spdlog::info("Prometheus metrics at http://{}:{}/metrics",
                 options.metrics_listen.substr(0, options.metrics_listen.rfind(':')), (*server)->metrics_port());
  }
  if (!port_file.empty()) {
    const std::string tmp = port_file + ".tmp";
    { std::ofstream(tmp) << (*server)->port() << "\n"; }
    std::rename(tmp.c_str(), port_file.c_str());
  }
  std::thread adder;
  if (add_self) {
    adder = std::thread([&] {
      for (int64_t wait_ms = 1000;; wait_ms = std::min<int64_t>(2 * wait_ms, kMaxRejoinWaitMs)) {
        absl::Status s = rejoin->TryAddSelf();
        if (s.ok()) {
          if (absl::Status c = abode::allocator::ClearRejoinPending(options.raft.data_dir); !c.ok()) {
            spdlog::error("rejoin: {}", c.ToString());
          }
          spdlog::info("member {} is in the cluster configuration again", options.raft.id);
          return;
        }
        if (absl::IsCancelled(s)) return;
        spdlog::warn("rejoin: {} (retrying in {} s)", s.ToString(), wait_ms / 1000);
        if (!rejoin->Pause(wait_ms)) return;
      }
    });
  }
  int sig = 0;
  sigwait(&signals, &sig);
  spdlog::info("signal {}: shutting down", sig);
  if (rejoin != nullptr) rejoin->Cancel();
  if (adder.joinable()) adder.join();
  (*server)->Shutdown();
  return 0;
}

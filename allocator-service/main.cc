// abode-allocator: the address authority. One process is one replica; with no peers it is a single-voter
// cluster with its store in --data-dir.
#include <signal.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "CLI/CLI.hpp"
#include "allocator-service/clock.h"
#include "allocator-service/server.h"
#include "spdlog/spdlog.h"

int main(int argc, char** argv) {
  CLI::App app{"abode-allocator: cluster-wide IP address authority"};
  abode::allocator::ServerOptions options;
  std::string port_file;
  std::string log_level = "info";
  options.raft.data_dir = "./data";
  app.add_option("--listen", options.listen, "gRPC listen address HOST:PORT (port 0: any free port)")
      ->envname("ABODE_LISTEN")
      ->capture_default_str();
  app.add_option("--data-dir", options.raft.data_dir, "folder holding the raft log, snapshots and state.db")
      ->envname("ABODE_DATA_DIR")
      ->capture_default_str();
  app.add_option("--port-file", port_file, "write the bound gRPC port here once serving");
  app.add_option("--raft-listen", options.raft.raft_address, "raft address HOST:PORT of this member")
      ->envname("ABODE_RAFT_LISTEN")
      ->capture_default_str();
  app.add_option("--snapshot-threshold", options.raft.snapshot_threshold, "log entries between snapshots")
      ->capture_default_str();
  app.add_option("--history-retention-hours", options.raft.history_retention_ms,
                 "keep address history this long (0: forever)")
      ->transform([](std::string v) { return std::to_string(std::stoll(v) * 3600 * 1000); });
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  spdlog::set_level(spdlog::level::from_str(log_level));
  // Signals are taken synchronously by the main thread; every other thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  abode::allocator::SystemClock clock;
  options.raft.clock = &clock;
  auto server = abode::allocator::AllocatorServer::Start(options);
  if (!server.ok()) {
    spdlog::critical("cannot start: {}", server.status().ToString());
    std::fprintf(stderr, "abode-allocator: %s\n", std::string(server.status().message()).c_str());
    return 1;
  }
  spdlog::info("abode-allocator serving gRPC on port {} (data dir {})", (*server)->port(), options.raft.data_dir);
  if (!port_file.empty()) {
    const std::string tmp = port_file + ".tmp";
    { std::ofstream(tmp) << (*server)->port() << "\n"; }
    std::rename(tmp.c_str(), port_file.c_str());
  }
  int sig = 0;
  sigwait(&signals, &sig);
  spdlog::info("signal {}: shutting down", sig);
  (*server)->Shutdown();
  return 0;
}

// Runs an abode-allocator binary as a child process for multi-process tests: start, wait until it serves,
// kill -9, restart on the same data dir. RAII: the child is killed when the handle goes away.
#ifndef ABODE_INTEGRATION_ALLOCATOR_PROCESS_H_
#define ABODE_INTEGRATION_ALLOCATOR_PROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace abode::integration {

// Starts `argv` (argv[0] a path) with stdin from /dev/null and stdout and stderr appended to `out` and
// `err` (one file when they are the same). The child dies with the calling process, also when that is
// killed before it can stop the child. Returns its pid, or -1.
pid_t SpawnProcess(const std::vector<std::string>& argv, const std::string& out, const std::string& err);

class AllocatorProcess {
 public:
  // `binary` is the abode-allocator path; `args` are extra flags after --listen/--data-dir/--port-file. It
  // listens on port 0 of `host` (an IPv4 address).
  AllocatorProcess(std::string binary, std::string data_dir, std::vector<std::string> args = {},
                   std::string host = "127.0.0.1");
  ~AllocatorProcess();
  AllocatorProcess(const AllocatorProcess&) = delete;
  AllocatorProcess& operator=(const AllocatorProcess&) = delete;

  // Starts the process and waits (bounded) until it has written its port file.
  absl::Status Start(std::chrono::milliseconds timeout = std::chrono::seconds(60));
  // SIGKILL and reap.
  void Kill();
  // SIGTERM, wait for a clean exit (bounded), SIGKILL if it does not come. True when it exited by itself
  // with status 0.
  bool Stop();
  bool running() const { return pid_ > 0; }
  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  std::string address() const { return host_ + ":" + std::to_string(port_); }
  const std::string& log_path() const { return log_path_; }

 private:
  std::string binary_;
  std::string data_dir_;
  std::vector<std::string> args_;
  std::string host_;
  std::string port_file_;
  std::string log_path_;
  pid_t pid_ = -1;
  int port_ = 0;
};

}  // namespace abode::integration

#endif  // ABODE_INTEGRATION_ALLOCATOR_PROCESS_H_

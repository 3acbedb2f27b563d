// Runs CNI plugins the way a container runtime does, against real abode processes: an abode-allocator, one
// abode-node per simulated node (each serving the plugin on its own socket), a network namespace per node
// (where the main plugin puts its bridge) and one per container. Shared by the CNI tests and abode-cni-bench.
// Needs root. The calling process first moves into a private network namespace, so that the allocator's
// listener and everything else stays out of the machine's own.
#ifndef ABODE_INTEGRATION_CNI_HARNESS_H_
#define ABODE_INTEGRATION_CNI_HARNESS_H_

#include <sys/types.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace abode::integration {

// Moves the process into a private network namespace with loopback up; once, before any thread starts.
absl::Status EnterPrivateNetworkNamespace();

// A free TCP port on 127.0.0.1 (bound and released).
int FreeLoopbackPort();

// A plugin exec'd by clone (vfork-like) + setns + execve, with exactly `env` as its environment.
struct PluginRun {
  std::string plugin;      // path
  std::string netns_path;  // namespace to run it in ("" = the caller's)
  std::map<std::string, std::string> env;
  std::string stdin_text;
};
struct PluginExit {
  int exit_code = -1;  // -signal when killed by one
  std::string stdout_text;
  double seconds = 0;  // fork to reaped
};
PluginExit ExecPlugin(const PluginRun& run);

// A named network namespace (`ip netns add`), deleted with everything in it when this goes away.
class Netns {
 public:
  static absl::StatusOr<std::unique_ptr<Netns>> Create(const std::string& name);
  ~Netns();
  const std::string& name() const { return name_; }
  std::string path() const { return "/var/run/netns/" + name_; }
  // `command` with /bin/sh inside the namespace; exit code and output.
  std::pair<int, std::string> Exec(const std::string& command) const;

 private:
  explicit Netns(std::string name) : name_(std::move(name)) {}
  std::string name_;
};

// A child process killed (SIGKILL) and reaped when the handle goes away.
class Child {
 public:
  Child() = default;
  ~Child() { Kill(); }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  absl::Status Start(const std::vector<std::string>& argv, const std::string& log);
  void Kill();
  bool running() const { return pid_ > 0; }

 private:
  pid_t pid_ = -1;
};

// An allocator and simulated nodes.
class CniCluster {
 public:
  struct Options {
    std::string allocator_bin;
    std::string node_bin;
    std::string dir;  // logs, data, sockets
    int nodes = 2;
  };
  explicit CniCluster(Options options) : options_(std::move(options)) {}

  // Starts the allocator on a fixed port, then every node's abode-node, and waits until each serves.
  absl::Status Start();
  // Stops (SIGKILL) or starts again the allocator, on the same port and data.
  void StopAllocator() { allocator_.Kill(); }
  absl::Status StartAllocator();
  // Stops (SIGKILL) node `i`'s abode-node, or starts it again; its socket file is left behind when killed,
  // as after a crash.
  void StopNode(int i) { nodes_[i]->Kill(); }
  absl::Status StartNode(int i);

  std::string endpoint() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string node_name(int i) const { return "node-" + std::string(1, static_cast<char>('a' + i)); }
  std::string socket(int i) const { return options_.dir + "/" + node_name(i) + ".sock"; }
  const Netns& node_netns(int i) const { return *node_netns_[i]; }
  const std::string& dir() const { return options_.dir; }

 private:
  absl::Status WaitServing(const std::string& socket_or_port_file);
  Options options_;
  int port_ = 0;
  Child allocator_;
  std::vector<std::unique_ptr<Child>> nodes_;
  std::vector<std::unique_ptr<Netns>> node_netns_;
};

}  // namespace abode::integration

#endif  // ABODE_INTEGRATION_CNI_HARNESS_H_

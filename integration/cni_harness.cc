#include "integration/cni_harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "integration/allocator_process.h"

namespace abode::integration {
namespace {

using Clock = std::chrono::steady_clock;

std::pair<int, std::string> Shell(const std::string& command) {
  std::string out;
  FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) return {-1, "popen failed"};
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, p)) > 0) out.append(buffer, n);
  const int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

}  // namespace

absl::Status EnterPrivateNetworkNamespace() {
  static const absl::Status status = [] {
    if (::unshare(CLONE_NEWNET) != 0) return absl::InternalError(absl::StrCat("unshare: ", std::strerror(errno)));
    auto [code, out] = Shell("ip link set lo up");
    return code == 0 ? absl::OkStatus() : absl::InternalError(out);
  }();
  return status;
}

int FreeLoopbackPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
    port = ntohs(address.sin_port);
  }
  ::close(fd);
  return port;
}

namespace {

// What the child of ExecPlugin needs, prepared before the clone: it shares the caller's memory until it execs.
struct ChildSetup {
  int netns = -1;
  int stdin_fd = -1;
  int stdout_fd = -1;
  char** argv = nullptr;
  char** envp = nullptr;
};

int ExecChild(void* arg) {
  const ChildSetup& c = *static_cast<const ChildSetup*>(arg);
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (c.netns >= 0 && ::setns(c.netns, CLONE_NEWNET) != 0) ::_exit(126);
  ::dup2(c.stdin_fd, 0);
  ::dup2(c.stdout_fd, 1);
  ::execve(c.argv[0], c.argv, c.envp);
  ::_exit(127);
}

}  // namespace

PluginExit ExecPlugin(const PluginRun& run) {
  // Everything the child needs is prepared before the clone: after it, async-signal-safe calls only.
  std::vector<std::string> env_text;
  for (const auto& [k, v] : run.env) env_text.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (std::string& e : env_text) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string plugin = run.plugin;
  char* argv[] = {plugin.data(), nullptr};
  const int netns = run.netns_path.empty() ? -1 : ::open(run.netns_path.c_str(), O_RDONLY | O_CLOEXEC);
  int in[2], out[2];
  PluginExit result;
  if (::pipe2(in, O_CLOEXEC) != 0) return result;
  if (::pipe2(out, O_CLOEXEC) != 0) {
    ::close(in[0]);
    ::close(in[1]);
    return result;
  }
  // As a runtime written in Go starts a plugin (os/exec: clone with CLONE_VM | CLONE_VFORK): the child
  // borrows this process's memory until it execs, instead of copying the page tables of a large,
  // many-threaded process for every exec, a cost that would land on both plugins' figures alike.
  ChildSetup setup{netns, in[0], out[1], argv, envp.data()};
  std::vector<char> child_stack(64 * 1024);
  const auto start = Clock::now();
  const pid_t pid = ::clone(ExecChild, child_stack.data() + child_stack.size(), CLONE_VM | CLONE_VFORK | SIGCHLD,
                            &setup);
  ::close(in[0]);
  if (pid < 0) {
    ::close(in[1]);
    ::close(out[0]);
    ::close(out[1]);
    if (netns >= 0) ::close(netns);
    return result;
  }
  ::close(out[1]);
  if (netns >= 0) ::close(netns);
  size_t written = 0;
  while (written < run.stdin_text.size()) {
    const ssize_t w = ::write(in[1], run.stdin_text.data() + written, run.stdin_text.size() - written);
    if (w <= 0) break;
    written += static_cast<size_t>(w);
  }
  ::close(in[1]);
  char buffer[8192];
  ssize_t n;
  while ((n = ::read(out[0], buffer, sizeof buffer)) > 0) result.stdout_text.append(buffer, static_cast<size_t>(n));
  ::close(out[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
  return result;
}

absl::StatusOr<std::unique_ptr<Netns>> Netns::Create(const std::string& name) {
  const std::string full = absl::StrCat("abcni", ::getpid(), "-", name);
  auto [code, out] = Shell(absl::StrCat("ip netns add ", full, " && ip -n ", full, " link set lo up"));
  if (code != 0) return absl::InternalError(absl::StrCat("ip netns add ", full, ": ", out));
  return std::unique_ptr<Netns>(new Netns(full));
}

Netns::~Netns() { Shell("ip netns del " + name_); }

std::pair<int, std::string> Netns::Exec(const std::string& command) const {
  return Shell(absl::StrCat("ip netns exec ", name_, " sh -c '", command, "'"));
}

absl::Status Child::Start(const std::vector<std::string>& argv, const std::string& log) {
  pid_ = SpawnProcess(argv, log, log);
  return pid_ > 0 ? absl::OkStatus() : absl::InternalError("fork failed");
}

void Child::Kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

absl::Status CniCluster::WaitServing(const std::string& path) {
  for (const auto deadline = Clock::now() + std::chrono::seconds(60); Clock::now() < deadline;) {
    struct stat st;
    if (::stat(path.c_str(), &st) == 0 && st.st_size >= 0) return absl::OkStatus();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return absl::DeadlineExceededError(absl::StrCat(path, " did not appear; see the logs in ", options_.dir));
}

absl::Status CniCluster::StartAllocator() {
  const std::string port_file = options_.dir + "/allocator.port";
  ::unlink(port_file.c_str());
  if (absl::Status s = allocator_.Start({options_.allocator_bin, "--listen", endpoint(), "--data-dir",
                                         options_.dir + "/data", "--port-file", port_file, "--log-level", "warn"},
                                        options_.dir + "/allocator.log");
      !s.ok()) {
    return s;
  }
  return WaitServing(port_file);
}

absl::Status CniCluster::Start() {
  port_ = FreeLoopbackPort();
  if (absl::Status s = StartAllocator(); !s.ok()) return s;
  for (int i = 0; i < options_.nodes; ++i) {
    auto ns = Netns::Create(node_name(i));
    if (!ns.ok()) return ns.status();
    node_netns_.push_back(std::move(*ns));
    nodes_.push_back(std::make_unique<Child>());
    if (absl::Status s = StartNode(i); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status CniCluster::StartNode(int i) {
  // A new abode-node replaces the old socket file; waiting for the file means waiting for the new one.
  ::unlink(socket(i).c_str());
  if (absl::Status s = nodes_[i]->Start({options_.node_bin, "--node", node_name(i), "--allocator", endpoint(),
                                         "--cni-socket", socket(i), "--log-level", "warn"},
                                        options_.dir + "/" + node_name(i) + ".log");
      !s.ok()) {
    return s;
  }
  return WaitServing(socket(i));
}

}  // namespace abode::integration

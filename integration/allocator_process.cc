#include "integration/allocator_process.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"

namespace abode::integration {

pid_t SpawnProcess(const std::vector<std::string>& argv, const std::string& out, const std::string& err) {
  std::vector<char*> raw;
  for (const auto& a : argv) raw.push_back(const_cast<char*>(a.c_str()));
  raw.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid != 0) return pid;
  // The child of a threaded process: async-signal-safe calls only until exec. It dies with the test, also
  // when the test is killed before the harness can stop it.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(127);
  const int in_fd = ::open("/dev/null", O_RDONLY);
  const int out_fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  const int err_fd = err == out ? out_fd : ::open(err.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (in_fd >= 0) ::dup2(in_fd, 0);
  if (out_fd >= 0) ::dup2(out_fd, 1);
  if (err_fd >= 0) ::dup2(err_fd, 2);
  ::execv(raw[0], raw.data());
  ::_exit(127);
}

AllocatorProcess::AllocatorProcess(std::string binary, std::string data_dir, std::vector<std::string> args,
                                   std::string host)
    : binary_(std::move(binary)), data_dir_(std::move(data_dir)), args_(std::move(args)), host_(std::move(host)) {
  port_file_ = data_dir_ + ".port";
  log_path_ = data_dir_ + ".log";
}

AllocatorProcess::~AllocatorProcess() { Kill(); }

absl::Status AllocatorProcess::Start(std::chrono::milliseconds timeout) {
  if (pid_ > 0) return absl::FailedPreconditionError("already running");
  std::filesystem::remove(port_file_);
  std::vector<std::string> argv = {binary_, "--listen", host_ + ":0", "--data-dir", data_dir_,
                                   "--port-file", port_file_};
  argv.insert(argv.end(), args_.begin(), args_.end());
  const pid_t pid = SpawnProcess(argv, log_path_, log_path_);
  if (pid < 0) return absl::InternalError("fork failed");
  pid_ = pid;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream in(port_file_);
    int port = 0;
    if (in >> port && port > 0) {
      port_ = port;
      return absl::OkStatus();
    }
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return absl::InternalError(absl::StrCat("abode-allocator exited before serving; see ", log_path_));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  Kill();
  return absl::DeadlineExceededError(absl::StrCat("abode-allocator did not serve in time; see ", log_path_));
}

void AllocatorProcess::Kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

bool AllocatorProcess::Stop() {
  if (pid_ <= 0) return false;
  ::kill(pid_, SIGTERM);
  for (int i = 0; i < 500; ++i) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return WIFEXITED(status) && WEXITSTATUS(status) == 0;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  Kill();
  return false;
}

}  // namespace abode::integration

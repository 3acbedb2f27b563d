#include "netns_testing.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <net/if.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "kernel_model.h"

namespace abode::node::testing {

namespace {

constexpr char kNamePrefix[] = "abode-t-";

// Deletes namespaces named kNamePrefix<role>-<pid>-... whose process is gone.
void SweepAbandoned() {
  DIR* dir = opendir("/run/netns");
  if (dir == nullptr) return;
  std::vector<std::string> stale;
  while (dirent* entry = readdir(dir)) {
    absl::string_view name = entry->d_name;
    if (name.substr(0, sizeof(kNamePrefix) - 1) != kNamePrefix) continue;
    std::vector<absl::string_view> parts = absl::StrSplit(name, '-');
    int pid = 0;
    if (parts.size() < 5 || !absl::SimpleAtoi(parts[3], &pid) || pid <= 0) continue;
    if (kill(pid, 0) < 0 && errno == ESRCH) stale.emplace_back(name);
  }
  closedir(dir);
  for (const std::string& name : stale) RunCommand(absl::StrCat("ip netns del ", name, " 2>/dev/null"));
}

std::string ShellQuote(const std::string& text) {
  std::string quoted = "'";
  for (char c : text) {
    if (c == '\'') {
      quoted += "'\\''";
    } else {
      quoted += c;
    }
  }
  return quoted + "'";
}

}  // namespace

absl::StatusOr<sockaddr_storage> SocketAddress(const std::string& address, uint16_t port, socklen_t* length,
                                               const char* interface) {
  absl::StatusOr<IpAddress> ip = IpAddress::Parse(address);
  if (!ip.ok()) return ip.status();
  sockaddr_storage storage = {};
  if (ip->family == IpFamily::kIpv4) {
    auto* in = reinterpret_cast<sockaddr_in*>(&storage);
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    std::memcpy(&in->sin_addr, ip->bytes.data(), 4);
    *length = sizeof(sockaddr_in);
  } else {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&storage);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    std::memcpy(&in6->sin6_addr, ip->bytes.data(), 16);
    if (interface != nullptr) in6->sin6_scope_id = if_nametoindex(interface);
    *length = sizeof(sockaddr_in6);
  }
  return storage;
}

bool KernelTestsAllowed() { return geteuid() == 0 || std::getenv("CI") != nullptr; }

CommandResult RunCommand(const std::string& command) {
  CommandResult result;
  FILE* pipe = popen(absl::StrCat(command, " 2>&1").c_str(), "r");
  if (pipe == nullptr) {
    result.output = absl::StrCat("cannot run ", command, ": ", std::strerror(errno));
    return result;
  }
  std::array<char, 4096> buffer;
  size_t n;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) result.output.append(buffer.data(), n);
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

absl::StatusOr<ScopedNetns> ScopedNetns::Create(absl::string_view role) {
  SweepAbandoned();
  const auto now = std::chrono::steady_clock::now().time_since_epoch();
  std::string name = absl::StrCat(kNamePrefix, role, "-", getpid(), "-",
                                  std::chrono::duration_cast<std::chrono::microseconds>(now).count() % 100000000);
  CommandResult added = RunCommand(absl::StrCat("ip netns add ", name));
  if (added.exit_code != 0) {
    return absl::InternalError(absl::StrCat("ip netns add ", name, " failed: ", added.output));
  }
  ScopedNetns netns(std::move(name));
  if (absl::Status s = netns.Run("ip link set lo up"); !s.ok()) return s;
  return netns;
}

ScopedNetns::ScopedNetns(ScopedNetns&& other) noexcept : name_(std::move(other.name_)) { other.name_.clear(); }

ScopedNetns::~ScopedNetns() {
  if (!name_.empty()) RunCommand(absl::StrCat("ip netns del ", name_));
}

CommandResult ScopedNetns::Exec(const std::string& command) const {
  return RunCommand(absl::StrCat("ip netns exec ", name_, " sh -c ", ShellQuote(command)));
}

absl::Status ScopedNetns::Run(const std::string& command) const {
  CommandResult result = Exec(command);
  if (result.exit_code != 0) {
    return absl::InternalError(
        absl::StrCat("in netns ", name_, ": '", command, "' exited ", result.exit_code, ": ", result.output));
  }
  return absl::OkStatus();
}

absl::Status ScopedNetns::Inside(const std::function<void()>& fn) const {
  absl::Status status;
  std::thread worker([&] {
    UniqueFd fd(open(absl::StrCat("/run/netns/", name_).c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) {
      status = absl::InternalError(absl::StrCat("cannot open netns ", name_, ": ", std::strerror(errno)));
      return;
    }
    // setns affects only this thread, which ends right after `fn`.
    if (setns(fd.get(), CLONE_NEWNET) < 0) {
      status = absl::InternalError(absl::StrCat("cannot enter netns ", name_, ": ", std::strerror(errno)));
      return;
    }
    fn();
  });
  worker.join();
  return status;
}

absl::StatusOr<UniqueFd> BindUdp(const std::string& address, uint16_t port) {
  socklen_t length = 0;
  absl::StatusOr<sockaddr_storage> local = SocketAddress(address, port, &length);
  if (!local.ok()) return local.status();
  UniqueFd fd(socket(local->ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  if (bind(fd.get(), reinterpret_cast<const sockaddr*>(&*local), length) < 0) {
    return absl::InternalError(absl::StrCat("bind ", address, ":", port, ": ", std::strerror(errno)));
  }
  return fd;
}

absl::Status SendUdp(const UniqueFd& socket, const std::string& address, uint16_t port, absl::string_view payload) {
  socklen_t length = 0;
  absl::StatusOr<sockaddr_storage> remote = SocketAddress(address, port, &length);
  if (!remote.ok()) return remote.status();
  if (sendto(socket.get(), payload.data(), payload.size(), 0, reinterpret_cast<const sockaddr*>(&*remote), length) <
      0) {
    return absl::InternalError(absl::StrCat("send to ", address, ":", port, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::StatusOr<Datagram> ReceiveUdp(const UniqueFd& socket, std::chrono::milliseconds timeout) {
  pollfd p = {socket.get(), POLLIN, 0};
  if (poll(&p, 1, static_cast<int>(timeout.count())) <= 0) {
    return absl::DeadlineExceededError("no datagram arrived");
  }
  std::array<char, 2048> buffer;
  sockaddr_storage from = {};
  socklen_t from_length = sizeof(from);
  const ssize_t n =
      recvfrom(socket.get(), buffer.data(), buffer.size(), 0, reinterpret_cast<sockaddr*>(&from), &from_length);
  if (n < 0) return absl::InternalError(absl::StrCat("recvfrom: ", std::strerror(errno)));
  Datagram datagram;
  datagram.payload.assign(buffer.data(), static_cast<size_t>(n));
  if (from.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&from);
    datagram.source_address = IpAddress::FromBytes(reinterpret_cast<const uint8_t*>(&in->sin_addr), 4).ToString();
    datagram.source_port = ntohs(in->sin_port);
  } else {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&from);
    datagram.source_address = IpAddress::FromBytes(reinterpret_cast<const uint8_t*>(&in6->sin6_addr), 16).ToString();
    datagram.source_port = ntohs(in6->sin6_port);
  }
  return datagram;
}

absl::StatusOr<Datagram> SendUntilReceived(const UniqueFd& from, const std::string& address, uint16_t port,
                                           absl::string_view payload, const UniqueFd& to) {
  absl::Status last = absl::DeadlineExceededError("nothing received");
  for (int attempt = 0; attempt < 20; ++attempt) {
    if (absl::Status s = SendUdp(from, address, port, payload); !s.ok()) return s;
    absl::StatusOr<Datagram> got = ReceiveUdp(to, std::chrono::milliseconds(250));
    if (got.ok()) return got;
    last = got.status();
  }
  return last;
}

}  // namespace abode::node::testing

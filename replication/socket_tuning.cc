#include "replication/socket_tuning.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace abode::replication {

void TuneSockets(uv_loop_t* loop, unsigned election_timeout_ms) {
  unsigned user_timeout_ms = 3 * election_timeout_ms;
  uv_walk(
      loop,
      [](uv_handle_t* h, void* arg) {
        if (h->type != UV_TCP || uv_is_closing(h)) return;
        if (const int rv = uv_tcp_nodelay(reinterpret_cast<uv_tcp_t*>(h), 1); rv != 0) {
          spdlog::warn("raft transport: cannot set TCP_NODELAY: {}", uv_strerror(rv));
        }
        uv_os_fd_t fd;
        if (uv_fileno(h, &fd) != 0) return;
        const int syn_retries = 2;
        const unsigned timeout_ms = *static_cast<const unsigned*>(arg);
        if (::setsockopt(fd, IPPROTO_TCP, TCP_SYNCNT, &syn_retries, sizeof(syn_retries)) != 0 ||
            ::setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &timeout_ms, sizeof(timeout_ms)) != 0) {
          spdlog::warn("raft transport: cannot set TCP timeouts: {}", strerror(errno));
        }
      },
      &user_timeout_ms);
}

void WidenListenBacklog(uv_loop_t* loop) {
  uv_walk(
      loop,
      [](uv_handle_t* h, void*) {
        if (h->type != UV_TCP) return;
        uv_os_fd_t fd;
        if (uv_fileno(h, &fd) != 0) return;
        int listening = 0;
        socklen_t len = sizeof(listening);
        if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || listening == 0) return;
        if (::listen(fd, SOMAXCONN) != 0) spdlog::warn("raft transport: cannot widen the listen backlog: {}", strerror(errno));
      },
      nullptr);
}

absl::Status CheckListenAddress(const std::string& address) {
  const size_t colon = address.rfind(':');
  sockaddr_in a{};
  if (colon == std::string::npos ||
      uv_ip4_addr(address.substr(0, colon).c_str(), std::atoi(address.c_str() + colon + 1), &a) != 0) {
    return absl::OkStatus();  // not IPv4 HOST:PORT: raft_uv_tcp_set_bind_address refuses those already
  }
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::OkStatus();
  const int one = 1;
  (void)::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  const int rv = ::bind(fd, reinterpret_cast<const sockaddr*>(&a), sizeof(a));
  const int err = errno;
  ::close(fd);
  if (rv == 0) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat("raft-listen: cannot listen on ", address, ": ", strerror(err)));
}

}  // namespace abode::replication

#include "kube/health_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <fcntl.h>

#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace abode::kube {
namespace {

void Answer(int fd, int code, const std::string& body) {
  const std::string text = absl::StrCat("HTTP/1.0 ", code, code == 200 ? " OK" : code == 404 ? " Not Found" : " Service Unavailable",
                                        "\r\nContent-Type: text/plain\r\nContent-Length: ", body.size(),
                                        "\r\nConnection: close\r\n\r\n", body);
  (void)!::write(fd, text.data(), text.size());
}

}  // namespace

absl::StatusOr<std::unique_ptr<HealthServer>> HealthServer::Start(const std::string& listen, Check healthy,
                                                                  Check ready) {
  const size_t colon = listen.rfind(':');
  int port = 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  if (colon == std::string::npos || !absl::SimpleAtoi(listen.substr(colon + 1), &port) || port < 0 || port > 65535 ||
      ::inet_pton(AF_INET, listen.substr(0, colon).c_str(), &addr.sin_addr) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("--health-listen: \"", listen, "\" is not IPV4:PORT"));
  }
  addr.sin_port = htons(static_cast<uint16_t>(port));
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 16) != 0) {
    const std::string why = std::strerror(errno);
    ::close(fd);
    return absl::UnavailableError(absl::StrCat("--health-listen ", listen, ": ", why));
  }
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  return std::unique_ptr<HealthServer>(new HealthServer(fd, ntohs(addr.sin_port), std::move(healthy), std::move(ready)));
}

HealthServer::HealthServer(int fd, int port, Check healthy, Check ready)
    : fd_(fd), port_(port), healthy_(std::move(healthy)), ready_(std::move(ready)) {
  if (::pipe2(wake_, O_CLOEXEC) != 0) wake_[0] = wake_[1] = -1;
  thread_ = std::thread([this] { Serve(); });
}

HealthServer::~HealthServer() {
  if (wake_[1] >= 0) (void)!::write(wake_[1], "x", 1);
  thread_.join();
  ::close(fd_);
  for (int w : wake_) {
    if (w >= 0) ::close(w);
  }
}

void HealthServer::Serve() {
  for (;;) {
    pollfd fds[2] = {{fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    if (::poll(fds, wake_[0] >= 0 ? 2 : 1, 1000) < 0 && errno != EINTR) return;
    if (fds[1].revents != 0) return;
    if ((fds[0].revents & POLLIN) == 0) continue;
    const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) continue;
    timeval tv{2, 0};
    ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[1024];
    const ssize_t n = ::read(c, buf, sizeof buf - 1);
    std::string request(buf, n > 0 ? static_cast<size_t>(n) : 0);
    const Check* check = nullptr;
    if (request.rfind("GET /healthz", 0) == 0) check = &healthy_;
    if (request.rfind("GET /readyz", 0) == 0) check = &ready_;
    if (check == nullptr) {
      Answer(c, 404, "not found\n");
    } else if (absl::Status s = (*check)(); s.ok()) {
      Answer(c, 200, "ok\n");
    } else {
      Answer(c, 503, absl::StrCat(s.message(), "\n"));
    }
    ::close(c);
  }
}

}  // namespace abode::kube

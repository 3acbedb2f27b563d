// GrpcTransport against servers that are not there: refused, or accepting TCP but never speaking HTTP/2.
#include "cli/transport.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include "cli/api_methods.h"

namespace abode::cli {
namespace {

// A loopback TCP socket bound to port 0; listening (the kernel completes handshakes, nobody answers) or not.
class LoopbackSocket {
 public:
  explicit LoopbackSocket(bool listening) : fd_(socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(address);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 || (listening && listen(fd_, 16) != 0) ||
        getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      ADD_FAILURE() << "loopback socket setup failed";
    }
    port_ = ntohs(address.sin_port);
  }
  ~LoopbackSocket() { close(fd_); }
  LoopbackSocket(const LoopbackSocket&) = delete;
  LoopbackSocket& operator=(const LoopbackSocket&) = delete;

  std::string target() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_;
  int port_ = 0;
};

TEST(GrpcTransportTest, RefusedConnectionIsUnavailable) {
  LoopbackSocket bound_not_listening(/*listening=*/false);
  auto transport = DialInsecure(bound_not_listening.target(), std::chrono::seconds(5));
  const auto start = std::chrono::steady_clock::now();
  const absl::StatusOr<v1::Pool> pool = Call(*transport, kGetPool, v1::GetPoolRequest());
  EXPECT_EQ(pool.status().code(), absl::StatusCode::kUnavailable) << pool.status();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST(GrpcTransportTest, SilentServerIsUnavailableAtTheDeadline) {
  LoopbackSocket never_answers(/*listening=*/true);
  auto transport = DialInsecure(never_answers.target(), std::chrono::milliseconds(300));
  const auto start = std::chrono::steady_clock::now();
  const absl::StatusOr<v1::Pool> pool = Call(*transport, kGetPool, v1::GetPoolRequest());
  EXPECT_EQ(pool.status().code(), absl::StatusCode::kUnavailable) << pool.status();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
}

}  // namespace
}  // namespace abode::cli

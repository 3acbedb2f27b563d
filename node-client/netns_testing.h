// Scaffolding for tests and benchmarks that program a real kernel: private network namespaces, commands run
// inside them, UDP endpoints bound inside them.
#ifndef ABODE_NODE_CLIENT_NETNS_TESTING_H_
#define ABODE_NODE_CLIENT_NETNS_TESTING_H_

#include <sys/socket.h>

#include <chrono>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "unique_fd.h"

namespace abode::node::testing {

// Kernel tests need root. They run when the process is root or when CI is set (CI runs as root, so a missing
// privilege there is a failure, not a skip).
bool KernelTestsAllowed();
inline constexpr char kKernelTestsSkipMessage[] =
    "kernel tests need root (network namespaces, netlink, raw sockets); run as root or set CI to force them";

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

// Runs `command` with /bin/sh.
CommandResult RunCommand(const std::string& command);

// A network namespace that lives as long as this object: created with `ip netns add`, deleted (with everything
// in it) by the destructor, also when a test fails. Names carry the pid, so parallel test processes never
// collide; namespaces left behind by dead test processes are swept when a new one is created.
class ScopedNetns {
 public:
  // `role` is a short word such as "node" or "peer".
  static absl::StatusOr<ScopedNetns> Create(absl::string_view role);

  ScopedNetns(ScopedNetns&& other) noexcept;
  ScopedNetns& operator=(ScopedNetns&&) = delete;
  ScopedNetns(const ScopedNetns&) = delete;
  ScopedNetns& operator=(const ScopedNetns&) = delete;
  ~ScopedNetns();

  const std::string& name() const { return name_; }

  // Runs `command` with /bin/sh inside the namespace.
  CommandResult Exec(const std::string& command) const;
  // As Exec(), but a non-zero exit is an error carrying the command and its output.
  absl::Status Run(const std::string& command) const;
  // Runs `fn` on a new thread that has entered the namespace, and waits for it. Sockets (netlink, packet, UDP)
  // opened by `fn` stay bound to the namespace and can be used from any thread afterwards.
  absl::Status Inside(const std::function<void()>& fn) const;

 private:
  explicit ScopedNetns(std::string name) : name_(std::move(name)) {}

  std::string name_;
};

// A received datagram.
struct Datagram {
  std::string payload;
  std::string source_address;
  uint16_t source_port = 0;
};

// The socket address of `address`:`port`, and its length. `interface` (may be null) names the interface of an
// IPv6 link-local address, in the namespace of the calling thread.
absl::StatusOr<sockaddr_storage> SocketAddress(const std::string& address, uint16_t port, socklen_t* length,
                                               const char* interface = nullptr);

// UDP socket bound to `address`:`port` ("0.0.0.0" or "::" for any), in the namespace of the calling thread.
absl::StatusOr<UniqueFd> BindUdp(const std::string& address, uint16_t port);
absl::Status SendUdp(const UniqueFd& socket, const std::string& address, uint16_t port, absl::string_view payload);
// Waits up to `timeout` for one datagram.
absl::StatusOr<Datagram> ReceiveUdp(const UniqueFd& socket, std::chrono::milliseconds timeout);
// Sends `payload` from `from` to `address`:`port` every 250 ms until `to` receives a datagram, for up to ~5 s:
// the first datagrams on fresh links may be lost while neighbours are resolved (UDP promises no more).
absl::StatusOr<Datagram> SendUntilReceived(const UniqueFd& from, const std::string& address, uint16_t port,
                                           absl::string_view payload, const UniqueFd& to);

}  // namespace abode::node::testing

// In a GoogleTest body or SetUp(): skips the test unless kernel tests may run here.
#define ABODE_SKIP_UNLESS_KERNEL_TESTS()                               \
  do {                                                                 \
    if (!::abode::node::testing::KernelTestsAllowed()) {               \
      GTEST_SKIP() << ::abode::node::testing::kKernelTestsSkipMessage; \
    }                                                                  \
  } while (false)

// In a GoogleTest body: asserts that an absl::Status expression is OK, printing it when not.
#define ABODE_ASSERT_OK(expr)                         \
  do {                                                \
    const ::absl::Status abode_status_ = (expr);      \
    ASSERT_TRUE(abode_status_.ok()) << abode_status_; \
  } while (false)

#endif  // ABODE_NODE_CLIENT_NETNS_TESTING_H_

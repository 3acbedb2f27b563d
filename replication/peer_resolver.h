// Turns the host names in raft member addresses into IPv4 addresses without blocking the raft loop.
//
// libraft's TCP transport connects only to IPv4 literals, but a StatefulSet's members are known by stable DNS
// names (abode-allocator-0.abode-allocator.NAMESPACE.svc) whose addresses change when a pod is rescheduled. The
// raft loop must never wait for DNS: a lookup can take seconds when the cluster DNS is slow, and a loop that
// stalls that long loses its leadership. So the loop only reads answers this resolver already has; a thread of
// its own asks the system resolver (getaddrinfo) for every name it was asked about, at once for a new name
// and again every `refresh_interval` after, so a moved pod is found again. A name not yet resolved makes the
// connection attempt fail; libraft retries it shortly. When a lookup fails, the last good answer stays in use.
#ifndef ABODE_REPLICATION_PEER_RESOLVER_H_
#define ABODE_REPLICATION_PEER_RESOLVER_H_

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace abode::replication {

class PeerResolver {
 public:
  // Host name -> IPv4 address (dotted quad). The kernel of the resolver, replaceable in tests.
  using ResolveFn = std::function<absl::StatusOr<std::string>(const std::string& host)>;
  static absl::StatusOr<std::string> SystemResolve(const std::string& host);  // getaddrinfo, AF_INET

  explicit PeerResolver(ResolveFn resolve = &PeerResolver::SystemResolve,
                        std::chrono::milliseconds refresh_interval = std::chrono::seconds(1));
  ~PeerResolver();
  PeerResolver(const PeerResolver&) = delete;
  PeerResolver& operator=(const PeerResolver&) = delete;

  // `host_port` (HOST:PORT) with HOST as an IPv4 literal, never blocking. An IPv4 literal is returned as it is;
  // a name gets its latest answer, or nothing while it has none yet (it is looked up now).
  // Thread-safe.
  std::optional<std::string> Lookup(const std::string& host_port) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Entry {
    std::optional<std::string> address;  // the last good answer
    std::string last_error;              // of the last lookup; empty when it succeeded
    bool wanted_now = true;              // look up before the next scheduled round
  };
  void Run() ABSL_LOCKS_EXCLUDED(mu_);  // the resolver's own thread
  bool AnyWantedNow() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const ResolveFn resolve_;
  const std::chrono::milliseconds refresh_interval_;
  absl::Mutex mu_;
  std::map<std::string, Entry> hosts_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace abode::replication

#endif  // ABODE_REPLICATION_PEER_RESOLVER_H_

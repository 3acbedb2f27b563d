#include "replication/peer_resolver.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "replication/membership.h"
#include "spdlog/spdlog.h"
#include <pthread.h>

namespace abode::replication {
namespace {

bool IsIpv4Literal(const std::string& host) {
  in_addr a{};
  return ::inet_pton(AF_INET, host.c_str(), &a) == 1;
}

}  // namespace

absl::StatusOr<std::string> PeerResolver::SystemResolve(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &found);
  if (rc != 0) return absl::UnavailableError(absl::StrCat("cannot resolve ", host, ": ", ::gai_strerror(rc)));
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> owned(found, &::freeaddrinfo);
  for (const addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
    if (ai->ai_family != AF_INET) continue;
    char text[INET_ADDRSTRLEN] = {};
    const auto* sin = reinterpret_cast<const sockaddr_in*>(ai->ai_addr);
    if (::inet_ntop(AF_INET, &sin->sin_addr, text, sizeof(text)) != nullptr) return std::string(text);
  }
  return absl::UnavailableError(absl::StrCat("cannot resolve ", host, ": no IPv4 address"));
}

PeerResolver::PeerResolver(ResolveFn resolve, std::chrono::milliseconds refresh_interval)
    : resolve_(std::move(resolve)), refresh_interval_(refresh_interval), thread_([this] {
        pthread_setname_np(pthread_self(), "abode-resolve");
        Run();
      }) {}

PeerResolver::~PeerResolver() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

std::optional<std::string> PeerResolver::Lookup(const std::string& host_port) {
  std::string host;
  int port = 0;
  if (!SplitHostPort(host_port, "address", &host, &port).ok()) return std::nullopt;
  if (IsIpv4Literal(host)) return host_port;
  absl::MutexLock lock(&mu_);
  auto it = hosts_.try_emplace(host).first;  // a new name wakes the resolver (AnyWantedNow)
  if (!it->second.address) return std::nullopt;
  return absl::StrCat(*it->second.address, ":", port);
}

bool PeerResolver::AnyWantedNow() const {
  for (const auto& [name, entry] : hosts_) {
    if (entry.wanted_now) return true;
  }
  return false;
}

void PeerResolver::Run() {
  absl::MutexLock lock(&mu_);
  auto next_round = std::chrono::steady_clock::now();
  while (!stopping_) {
    std::vector<std::string> names;
    const bool round = std::chrono::steady_clock::now() >= next_round;
    for (auto& [name, entry] : hosts_) {
      if (round || entry.wanted_now) names.push_back(name);
    }
    if (round) next_round = std::chrono::steady_clock::now() + refresh_interval_;
    if (names.empty()) {
      const auto wake = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || AnyWantedNow(); };
      mu_.AwaitWithTimeout(absl::Condition(&wake), absl::FromChrono(next_round - std::chrono::steady_clock::now()));
      continue;
    }
    for (const std::string& name : names) {
      mu_.Unlock();
      absl::StatusOr<std::string> answer = resolve_(name);  // may take seconds: never under the lock
      mu_.Lock();
      Entry& e = hosts_[name];
      e.wanted_now = false;
      if (answer.ok()) {
        if (e.address != *answer) spdlog::info("raft peer {} resolves to {}", name, *answer);
        e.address = *answer;
        e.last_error.clear();
      } else if (e.last_error != answer.status().message()) {
        e.last_error = std::string(answer.status().message());
        spdlog::warn("raft peer {}: {}{}", name, e.last_error,
                     e.address ? absl::StrCat(" (still using ", *e.address, ")") : std::string());
      }
      if (stopping_) return;
    }
  }
}

}  // namespace abode::replication

#include "metrics/endpoint.h"

#include <arpa/inet.h>

#include <exception>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace abode::metrics {

// IPV4:PORT: what the HTTP server can bind to.
absl::Status CheckMetricsListen(const std::string& listen) {
  const auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("--metrics-listen: \"", listen, "\" ", why));
  };
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0) return bad("is not HOST:PORT");
  int port = 0;
  if (!absl::SimpleAtoi(listen.substr(colon + 1), &port) || port < 0 || port > 65535) {
    return bad("has no port number between 0 and 65535");
  }
  std::string host = listen.substr(0, colon);
  unsigned char buf[4];
  if (!host.empty() && host.front() == '[') {
    // Debian's civetweb, which prometheus-cpp serves with, is built without IPv6.
    return bad("is IPv6; the metrics endpoint binds IPv4 addresses only (0.0.0.0:PORT for all of them)");
  }
  if (::inet_pton(AF_INET, host.c_str(), buf) == 1) return absl::OkStatus();
  return bad("needs an IPv4 address as HOST, not a name");
}

absl::StatusOr<std::unique_ptr<MetricsEndpoint>> MetricsEndpoint::Start(const std::string& listen) {
  if (absl::Status s = CheckMetricsListen(listen); !s.ok()) return s;
  std::unique_ptr<MetricsEndpoint> e(new MetricsEndpoint());
  try {
    e->exposer_ = std::make_unique<prometheus::Exposer>(listen, 1);
  } catch (const std::exception& ex) {
    return absl::UnavailableError(
        absl::StrCat("--metrics-listen: cannot serve HTTP on ", listen, ": ", ex.what()));
  }
  const std::vector<int> ports = e->exposer_->GetListeningPorts();
  if (ports.empty()) {
    return absl::UnavailableError(absl::StrCat("--metrics-listen: no port is listening on ", listen));
  }
  e->port_ = ports.front();
  return e;
}

void MetricsEndpoint::Register(const std::weak_ptr<prometheus::Collectable>& collectable) {
  exposer_->RegisterCollectable(collectable);
}

}  // namespace abode::metrics

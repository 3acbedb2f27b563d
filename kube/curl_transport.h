// Transport over libcurl: TLS against the cluster's CA (PEM in memory), optional client certificate and key
// (PEM in memory). One easy handle per exchange (RAII), so calls from several threads never share one.
#ifndef ABODE_KUBE_CURL_TRANSPORT_H_
#define ABODE_KUBE_CURL_TRANSPORT_H_

#include <string>

#include "kube/transport.h"

namespace abode::kube {

struct TlsSettings {
  std::string server;          // https://host:port (no trailing path)
  std::string ca_pem;          // empty: the system's trust store
  std::string client_cert_pem;
  std::string client_key_pem;
  bool insecure_skip_verify = false;
};

class CurlTransport final : public Transport {
 public:
  explicit CurlTransport(TlsSettings tls);
  absl::StatusOr<HttpResponse> Send(const HttpRequest& request) override;
  absl::StatusOr<HttpResponse> Stream(const HttpRequest& request,
                                      const std::function<bool(absl::string_view line)>& on_line,
                                      const std::function<bool()>& stopped) override;

 private:
  const TlsSettings tls_;
};

}  // namespace abode::kube

#endif  // ABODE_KUBE_CURL_TRANSPORT_H_

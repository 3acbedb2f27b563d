// Transport over libcurl: TLS against the cluster's CA (PEM in memory), optional client certificate and key
// (PEM in memory). Each exchange has an easy handle of its own, so calls from several threads never share
// one; the handles of finished requests are kept (up to kIdleHandles) and reused, so that their connections
// stay open and a request costs no new TLS handshake. A watch stream uses a handle of its own.
#ifndef ABODE_KUBE_CURL_TRANSPORT_H_
#define ABODE_KUBE_CURL_TRANSPORT_H_

#include <curl/curl.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
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
  static constexpr size_t kIdleHandles = 16;

  explicit CurlTransport(TlsSettings tls);
  absl::StatusOr<HttpResponse> Send(const HttpRequest& request) override;
  absl::StatusOr<HttpResponse> Stream(const HttpRequest& request,
                                      const std::function<bool(absl::string_view line)>& on_line,
                                      const std::function<bool()>& stopped) override;

 private:
  struct EasyDeleter {
    void operator()(CURL* c) const { curl_easy_cleanup(c); }
  };
  using Easy = std::unique_ptr<CURL, EasyDeleter>;

  const TlsSettings tls_;
  absl::Mutex mu_;
  std::vector<Easy> idle_ ABSL_GUARDED_BY(mu_);
};

}  // namespace abode::kube

#endif  // ABODE_KUBE_CURL_TRANSPORT_H_

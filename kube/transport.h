// HTTP to the Kubernetes API server behind an interface: CurlTransport (curl_transport.h) talks to a real
// server; unit tests script answers. Paths are absolute API paths with their query ("/api/v1/pods?limit=500").
#ifndef ABODE_KUBE_TRANSPORT_H_
#define ABODE_KUBE_TRANSPORT_H_

#include <functional>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"

namespace abode::kube {

struct HttpRequest {
  std::string method = "GET";
  std::string path;
  std::string body;
  std::string content_type;  // of body
  std::string bearer_token;  // empty: none (client certificates, or anonymous)
  int timeout_seconds = 30;  // whole exchange; a stream is bounded by the server's timeoutSeconds instead
};

struct HttpResponse {
  int status = 0;
  std::string body;
};

class Transport {
 public:
  virtual ~Transport() = default;
  // One exchange. A status other than OK means no answer came (connection, TLS, timeout): UNAVAILABLE.
  virtual absl::StatusOr<HttpResponse> Send(const HttpRequest& request) = 0;
  // A streamed answer (watch): `on_line` gets each newline-terminated line of a 2xx body as it arrives and
  // returns false to stop. A non-2xx answer is returned whole in the response, with no line delivered.
  // Returns when the server ends the stream, `on_line` stops it, or `stopped()` turns true (checked at
  // least once a second).
  virtual absl::StatusOr<HttpResponse> Stream(const HttpRequest& request,
                                              const std::function<bool(absl::string_view line)>& on_line,
                                              const std::function<bool()>& stopped) = 0;
};

}  // namespace abode::kube

#endif  // ABODE_KUBE_TRANSPORT_H_

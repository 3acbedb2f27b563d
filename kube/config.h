// Where the API server is and how to authenticate: in-cluster (the pod's service account) or a kubeconfig
// file (the subset abode-kube needs: current-context; the cluster's server, certificate-authority(-data),
// insecure-skip-tls-verify; the user's token / tokenFile, client-certificate(-data), client-key(-data)).
// Errors are INVALID_ARGUMENT (or NOT_FOUND for a missing file) naming the file and the field.
#ifndef ABODE_KUBE_CONFIG_H_
#define ABODE_KUBE_CONFIG_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "kube/curl_transport.h"
#include "replication/clock.h"

namespace abode::kube {

inline constexpr char kServiceAccountDir[] = "/var/run/secrets/kubernetes.io/serviceaccount";

struct ClusterConfig {
  TlsSettings tls;
  std::string token;       // a fixed bearer token
  std::string token_file;  // or a file holding it, re-read (projected service-account tokens rotate)
  std::string namespace_;  // the pod's namespace in-cluster; the context's namespace from a kubeconfig
};

// Reads a file whole. NOT_FOUND / PERMISSION_DENIED name the path.
absl::StatusOr<std::string> ReadFile(const std::string& path);

// In-cluster: KUBERNETES_SERVICE_HOST/PORT from `getenv`, the CA, token and namespace under `sa_dir`.
absl::StatusOr<ClusterConfig> InClusterConfig(const std::function<std::optional<std::string>(const char*)>& getenv,
                                              const std::string& sa_dir = kServiceAccountDir);

// A kubeconfig file; `context` overrides its current-context when not empty. Relative file paths in it are
// relative to the file's folder, as kubectl reads them.
absl::StatusOr<ClusterConfig> KubeconfigConfig(const std::string& path, const std::string& context = "");

// The bearer token of a config: fixed, or read from its file and re-read when older than `max_age_ms` or
// after the server refused it (Invalidate), so a rotated service-account token is picked up.
class TokenSource {
 public:
  TokenSource(const ClusterConfig& config, replication::Clock& clock, int64_t max_age_ms = 60'000)
      : fixed_(config.token), file_(config.token_file), clock_(clock), max_age_ms_(max_age_ms) {}
  absl::StatusOr<std::string> Token();
  void Invalidate();

 private:
  const std::string fixed_;
  const std::string file_;
  replication::Clock& clock_;
  const int64_t max_age_ms_;
  absl::Mutex mu_;
  std::string cached_ ABSL_GUARDED_BY(mu_);
  int64_t read_at_ms_ ABSL_GUARDED_BY(mu_) = -1;
};

}  // namespace abode::kube

#endif  // ABODE_KUBE_CONFIG_H_

// /healthz and /readyz over plain HTTP/1.0 on a loopback-or-pod address: 200 "ok" while the check holds,
// 503 with the reason otherwise. One thread, one connection at a time (probes are rare and tiny).
#ifndef ABODE_KUBE_HEALTH_SERVER_H_
#define ABODE_KUBE_HEALTH_SERVER_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace abode::kube {

class HealthServer {
 public:
  using Check = std::function<absl::Status()>;
  // `listen` is IPV4:PORT (port 0 picks one). INVALID_ARGUMENT naming --health-listen for a bad address.
  static absl::StatusOr<std::unique_ptr<HealthServer>> Start(const std::string& listen, Check healthy, Check ready);
  ~HealthServer();
  int port() const { return port_; }

 private:
  HealthServer(int fd, int port, Check healthy, Check ready);
  void Serve();

  int fd_;
  int port_;
  Check healthy_, ready_;
  int wake_[2] = {-1, -1};  // a pipe that ends Serve
  std::thread thread_;
};

}  // namespace abode::kube

#endif  // ABODE_KUBE_HEALTH_SERVER_H_

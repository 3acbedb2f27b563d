// abode-node's local CNI endpoint: a Unix stream socket that only root (or abode-node's own user) may use.
// The file is mode 0600 and every connection's peer credentials (SO_PEERCRED) are checked, so a process
// that finds a way to the path still cannot allocate. One request per connection (cni/local_protocol.h):
// the plugin's whole invocation, relayed, which abode-node answers by running the plugin's logic (so the
// plugin itself does almost nothing), or a JSON request for the allocator's part; a pool of workers serves
// connections concurrently, each bounded by the request's timeout.
#ifndef ABODE_NODE_CLIENT_CNI_SOCKET_H_
#define ABODE_NODE_CLIENT_CNI_SOCKET_H_

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "cni/local_protocol.h"
#include "unique_fd.h"

namespace abode::node {

// What the server reports per request, for metrics.
struct CniRequestRecord {
  std::string verb;  // "" for a request that could not be read
  int code = 0;      // 0 for success, else the CNI error code answered
  double node_seconds = 0;    // from reading the request to writing the answer
  double plugin_seconds = 0;  // the plugin's own start to end, 0 when it did not say
  // What the plugin's span needs (abode-node records it for the plugin): its context and parent's, its
  // times (0 when it did not say), and the answer's error text.
  std::string traceparent;
  std::string parent_traceparent;
  std::string container_id;
  std::string ifname;
  int64_t plugin_start_unix_ns = 0;
  int64_t plugin_end_unix_ns = 0;
  std::string message;
};

class CniSocketServer {
 public:
  using Handler = std::function<cni::LocalResponse(const cni::LocalRequest&)>;
  using Recorder = std::function<void(const CniRequestRecord&)>;

  // Binds `path` (replacing a stale socket file; refusing any other kind of file), makes it 0600, and starts
  // `workers` threads. `allowed_uid` is the peer user allowed besides root (normally abode-node's own).
  static absl::StatusOr<std::unique_ptr<CniSocketServer>> Start(const std::string& path, Handler handler,
                                                                Recorder recorder, int workers = 32,
                                                                uid_t allowed_uid = 0);
  // Stops accepting, lets running requests finish, removes the socket file.
  ~CniSocketServer();
  CniSocketServer(const CniSocketServer&) = delete;
  CniSocketServer& operator=(const CniSocketServer&) = delete;

 private:
  CniSocketServer(std::string path, Handler handler, Recorder recorder, uid_t allowed_uid)
      : path_(std::move(path)), handler_(std::move(handler)), recorder_(std::move(recorder)), allowed_uid_(allowed_uid) {}
  using Clock = std::chrono::steady_clock;
  void Work();
  void Serve(int fd);
  // A relayed invocation: the plugin's logic runs here, `handler_` where it would call abode-node.
  void ServeInvocation(int fd, const std::string& frame, Clock::time_point received, CniRequestRecord& record);
  // Reads the closing frame (the plugin's end time) into `record` and reports it.
  void FinishRecord(int fd, CniRequestRecord& record);

  const std::string path_;
  const Handler handler_;
  const Recorder recorder_;
  const uid_t allowed_uid_;
  UniqueFd listener_;
  UniqueFd stop_;  // eventfd, readable once stopping
  std::vector<std::thread> workers_;
};

}  // namespace abode::node

#endif  // ABODE_NODE_CLIENT_CNI_SOCKET_H_

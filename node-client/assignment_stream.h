// The node client's end of Nodes.WatchAssignments: registers the node, hands every message to an
// AssignmentSink (the reconciler), heartbeats, reports applied statuses, and reconnects with capped, jittered
// exponential backoff to the next allocator endpoint, resuming from the last applied revision.
//
// gRPC sits behind WatchTransport/WatchConnection, so the client and what it drives are testable without a server.
#ifndef ABODE_NODE_CLIENT_ASSIGNMENT_STREAM_H_
#define ABODE_NODE_CLIENT_ASSIGNMENT_STREAM_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "abode/v1/nodes.pb.h"
#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "node_lease.h"

namespace abode::node {

// One open WatchAssignments stream. Read() and Write() may run concurrently with each other (one reader, one
// writer at a time); Cancel() may be called from any thread and makes pending and later calls fail.
class WatchConnection {
 public:
  virtual ~WatchConnection() = default;
  virtual bool Write(const v1::WatchAssignmentsRequest& request) = 0;
  virtual bool Read(v1::WatchAssignmentsResponse* response) = 0;
  virtual void Cancel() = 0;
  // REQUIRES: Read() has returned false and no Write() is in flight. The stream's final status.
  virtual absl::Status Finish() = 0;
};

class WatchTransport {
 public:
  virtual ~WatchTransport() = default;
  // Opens a stream to `endpoint` (host:port).
  virtual absl::StatusOr<std::unique_ptr<WatchConnection>> Open(const std::string& endpoint) = 0;
};

// Insecure gRPC channels, one per endpoint, reconnecting quickly (200 ms .. 1 s) when an allocator comes back.
struct GrpcWatchTransportOptions {
  // HTTP/2 keepalive: ping after this long without an answer from the allocator, and give the connection up
  // (the stream fails, the client moves to the next endpoint) when a ping is not answered in time. This is
  // what finds an allocator that stopped answering while its TCP connection stays up (a frozen process, a
  // dead peer behind a stateful middlebox, a partition). gRPC also sets TCP_USER_TIMEOUT to the timeout, so
  // heartbeats left unacknowledged that long end the connection too: after a partition heals the stream
  // comes back on a fresh connection rather than behind a dead one's backed-off retransmissions.
  int keepalive_time_ms = 2'000;
  int keepalive_timeout_ms = 2'000;
  // How long Open waits for a connection to the endpoint before giving up on it (the client then moves to
  // the next one). The wait also drives the connection attempt: abode-node runs no gRPC server whose threads
  // would otherwise poll the channel's socket, and gRPC's backup poller looks only every 5 s.
  int connect_timeout_ms = 1'000;
};
std::unique_ptr<WatchTransport> NewGrpcWatchTransport(GrpcWatchTransportOptions options = {});

// What consumes the stream. Called from the stream client's thread.
class AssignmentSink {
 public:
  virtual ~AssignmentSink() = default;
  // Applies one message; returns the statuses that changed because of it.
  virtual std::vector<v1::AssignmentStatus> OnUpdate(const v1::WatchAssignmentsResponse& update) = 0;
  // Every assignment's current status: re-reported on each new stream.
  virtual std::vector<v1::AssignmentStatus> AllStatuses() = 0;
  // The last revision applied (0: none); a new stream resumes from it.
  virtual uint64_t AppliedRevision() = 0;
  // The allocator acknowledged a heartbeat: the node's lease runs longer (NodeLease). Returns the statuses that
  // changed.
  virtual std::vector<v1::AssignmentStatus> OnLeaseRenewed() = 0;
};

struct AssignmentStreamOptions {
  v1::NodeSpec registration;         // name required
  std::vector<std::string> endpoints;  // host:port, at least one
  std::chrono::milliseconds initial_backoff{200};
  std::chrono::milliseconds max_backoff{1000};
  // Heartbeat every lease_ms / heartbeats_per_lease (the server states lease_ms on its first message).
  int heartbeats_per_lease = 3;
  // Renewed from the allocator's acknowledgements (not owned; may be null). An allocator that does not
  // acknowledge heartbeats renews it from each heartbeat written.
  NodeLease* lease = nullptr;
};

// Parses "host:port[,host:port...]" into endpoints; InvalidArgument when empty or malformed.
absl::StatusOr<std::vector<std::string>> ParseEndpoints(const std::string& text);

// Thread safety: Run() on one thread; Stop() and Report() from any thread.
class AssignmentStreamClient {
 public:
  // `transport` and `sink` are not owned and must outlive the client.
  AssignmentStreamClient(AssignmentStreamOptions options, WatchTransport* transport, AssignmentSink* sink);

  // Serves streams until Stop(). Never touches what the sink applied when a stream fails.
  void Run();
  void Stop();
  // Sends statuses on the open stream (e.g. after a periodic resync). Without one they are dropped: every new
  // stream starts with AllStatuses().
  void Report(const std::vector<v1::AssignmentStatus>& statuses);

  // Streams on which the first message arrived.
  int64_t established_streams() const;
  // Whether a stream is open and its first message has arrived (the node follows an allocator now).
  bool streaming() const;

 private:
  // One stream; returns whether its first message arrived.
  bool Serve(WatchConnection& connection, const std::string& endpoint);
  // Writes on the current stream; false when there is none or it failed. Serialised by write_mu_ (gRPC allows
  // one outstanding write), never under mu_, so Stop() can always cancel a write blocked on flow control.
  bool Write(const v1::WatchAssignmentsRequest& request);
  std::chrono::milliseconds Jittered(std::chrono::milliseconds base);
  // Numbers a heartbeat (or start) of the current stream and remembers when it left.
  uint64_t NextSequence();
  // Renews the lease from an acknowledged sequence.
  void Acknowledged(uint64_t sequence);

  const AssignmentStreamOptions options_;
  WatchTransport* const transport_;
  AssignmentSink* const sink_;

  std::mutex write_mu_;  // acquired before mu_ when both are held
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  WatchConnection* current_ ABSL_GUARDED_BY(mu_) = nullptr;  // the open stream, for Stop() and Report()
  bool stream_done_ ABSL_GUARDED_BY(mu_) = false;            // ends the heartbeat loop of the current stream
  int64_t established_ ABSL_GUARDED_BY(mu_) = 0;
  bool streaming_ ABSL_GUARDED_BY(mu_) = false;
  // The current stream's heartbeats: next sequence, when the recent ones were sent, the lease it states.
  uint64_t next_sequence_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<uint64_t, std::chrono::steady_clock::time_point> sent_ ABSL_GUARDED_BY(mu_);
  std::chrono::milliseconds lease_length_ ABSL_GUARDED_BY(mu_){0};
  bool acknowledging_ ABSL_GUARDED_BY(mu_) = false;  // the allocator acknowledges heartbeats
  std::mt19937_64 random_;
};

}  // namespace abode::node

#endif  // ABODE_NODE_CLIENT_ASSIGNMENT_STREAM_H_

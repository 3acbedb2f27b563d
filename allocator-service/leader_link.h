// LeaderLink over gRPC: a follower's calls to the leader's Replica service, on channels cached per address.
//
// A silent leader (a partition, a frozen process) is noticed within a few seconds and the connection given
// up, so that calls after the partition heals go out on a fresh connection at once instead of waiting for a
// dead one's backed-off TCP retransmissions: HTTP/2 keepalive pings every kKeepaliveTimeMs, with or without
// calls, and a connection whose ping or data stays unanswered for kKeepaliveTimeoutMs is closed (gRPC also
// sets TCP_USER_TIMEOUT to that). Reconnects back off from 100 ms to at most kMaxReconnectBackoffMs.
#ifndef ABODE_ALLOCATOR_SERVICE_LEADER_LINK_H_
#define ABODE_ALLOCATOR_SERVICE_LEADER_LINK_H_

#include <map>
#include <memory>
#include <string>

#include <grpcpp/channel.h>
#include <grpcpp/security/credentials.h>

#include "abode/v1/cluster.pb.h"
#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "allocator-service/leader_channels.h"
#include "replication/leader_link.h"
#include "tracing/tracer.h"

namespace abode::allocator {

class GrpcLeaderLink final : public replication::LeaderLink, public LeaderChannels {
 public:
  static constexpr int kKeepaliveTimeMs = 1000;
  static constexpr int kKeepaliveTimeoutMs = 2000;
  static constexpr int kMaxReconnectBackoffMs = 1000;

  // `credentials` reach the other replicas (insecure when null). Calls give up after `timeout_ms`, or
  // earlier for a caller who stops waiting earlier (CallDeadline). With `tracer` (which outlives the link),
  // calls that carry a traceparent get client spans; a forwarded group carries its first command's.
  GrpcLeaderLink(std::shared_ptr<grpc::ChannelCredentials> credentials, int64_t timeout_ms,
                 tracing::Tracer* tracer = nullptr);

  void Forward(const std::string& leader_grpc_address, std::vector<v1::Command> commands,
               replication::Deadline deadline,
               absl::AnyInvocable<void(absl::StatusOr<Outcomes>) &&> done) override;
  void ReadIndex(const std::string& leader_grpc_address, replication::Deadline deadline,
                 absl::AnyInvocable<void(absl::StatusOr<uint64_t>) &&> done) override;

  // LeaderChannels. A call's deadline is `timeout_ms` from now, but ends a little before the caller's (a
  // tenth of its remaining time, at most 100 ms), so that the call's failure reaches the caller as
  // UNAVAILABLE before the caller's own deadline passes.
  replication::Deadline CallDeadline(replication::Deadline caller) const override;
  std::shared_ptr<grpc::Channel> Channel(const std::string& address) override;

  // Hands node liveness heard on this follower to the leader (Replica.RelayLiveness).
  void RelayLiveness(const std::string& leader_grpc_address, v1::RelayLivenessRequest relay,
                     absl::AnyInvocable<void(absl::Status) &&> done);


 private:
  const std::shared_ptr<grpc::ChannelCredentials> credentials_;
  const int64_t timeout_ms_;
  tracing::Tracer* const tracer_;
  absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<grpc::Channel>> channels_ ABSL_GUARDED_BY(mu_);
};

}  // namespace abode::allocator

#endif  // ABODE_ALLOCATOR_SERVICE_LEADER_LINK_H_

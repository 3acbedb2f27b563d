// LeaderLink over gRPC: a follower's calls to the leader's Replica service, on channels cached per address.
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

namespace abode::allocator {

class GrpcLeaderLink final : public replication::LeaderLink, public LeaderChannels {
 public:
  // `credentials` reach the other replicas (insecure when null). Calls give up after `timeout_ms`.
  GrpcLeaderLink(std::shared_ptr<grpc::ChannelCredentials> credentials, int64_t timeout_ms);

  void Forward(const std::string& leader_grpc_address, std::vector<v1::Command> commands,
               absl::AnyInvocable<void(absl::StatusOr<Outcomes>) &&> done) override;
  void ReadIndex(const std::string& leader_grpc_address,
                 absl::AnyInvocable<void(absl::StatusOr<uint64_t>) &&> done) override;

  // Hands node liveness heard on this follower to the leader (Replica.RelayLiveness).
  void RelayLiveness(const std::string& leader_grpc_address, v1::RelayLivenessRequest relay,
                     absl::AnyInvocable<void(absl::Status) &&> done);

  // LeaderChannels.
  std::shared_ptr<grpc::Channel> Channel(const std::string& address) override;
  int64_t timeout_ms() const override { return timeout_ms_; }

 private:
  const std::shared_ptr<grpc::ChannelCredentials> credentials_;
  const int64_t timeout_ms_;
  absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<grpc::Channel>> channels_ ABSL_GUARDED_BY(mu_);
};

}  // namespace abode::allocator

#endif  // ABODE_ALLOCATOR_SERVICE_LEADER_LINK_H_

// LeaderLink over gRPC: a follower's calls to the leader's Replica service, on channels cached per address.
#ifndef ABODE_ALLOCATOR_SERVICE_LEADER_LINK_H_
#define ABODE_ALLOCATOR_SERVICE_LEADER_LINK_H_

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include <grpcpp/channel.h>
#include <grpcpp/security/credentials.h>

#include "abode/v1/cluster.pb.h"
#include "absl/base/thread_annotations.h"
#include "allocator-service/raft_node.h"

namespace abode::allocator {

class GrpcLeaderLink final : public LeaderLink {
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

  // Thread-safe; one channel per address for the life of the link.
  std::shared_ptr<grpc::Channel> Channel(const std::string& address);
  int64_t timeout_ms() const { return timeout_ms_; }

 private:
  const std::shared_ptr<grpc::ChannelCredentials> credentials_;
  const int64_t timeout_ms_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<grpc::Channel>> channels_ ABSL_GUARDED_BY(mu_);
};

}  // namespace abode::allocator

#endif  // ABODE_ALLOCATOR_SERVICE_LEADER_LINK_H_

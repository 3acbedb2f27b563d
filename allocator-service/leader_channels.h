// gRPC channels to the other replicas, for calls a follower passes on to the leader (membership changes,
// node reads). Implemented by GrpcLeaderLink (leader_link.h).
#ifndef ABODE_ALLOCATOR_SERVICE_LEADER_CHANNELS_H_
#define ABODE_ALLOCATOR_SERVICE_LEADER_CHANNELS_H_

#include <memory>
#include <string>

#include <grpcpp/channel.h>

#include "replication/deadline.h"

namespace abode::allocator {

class LeaderChannels {
 public:
  virtual ~LeaderChannels() = default;
  // Thread-safe; one channel per address for the life of the object.
  virtual std::shared_ptr<grpc::Channel> Channel(const std::string& address) = 0;
  // The deadline of a call passed on to the leader for a caller who waits until `caller`.
  virtual replication::Deadline CallDeadline(replication::Deadline caller) const = 0;
};

}  // namespace abode::allocator

#endif  // ABODE_ALLOCATOR_SERVICE_LEADER_CHANNELS_H_

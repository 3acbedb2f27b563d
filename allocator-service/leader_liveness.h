// Who leads, and how a follower reaches the leader with what its node streams heard: what the node registry
// needs of replication. Implemented over the raft node and the Replica service (server.cc); a single voter
// needs none (it always leads).
#ifndef ABODE_ALLOCATOR_SERVICE_LEADER_LIVENESS_H_
#define ABODE_ALLOCATOR_SERVICE_LEADER_LIVENESS_H_

#include <cstdint>
#include <string>

#include "abode/v1/cluster.pb.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"

namespace abode::allocator {

class LeaderLiveness {
 public:
  struct Leader {
    bool self = false;    // this replica leads (and has applied its term's first entry)
    std::string address;  // the leader's gRPC address when another replica leads; empty when unknown
    uint64_t member_id = 0;  // this replica's id
  };
  virtual ~LeaderLiveness() = default;
  virtual Leader Current() = 0;  // thread-safe
  // Sends `relay` to the leader at `address`; `done` runs once, on any thread, and must not block.
  virtual void Relay(const std::string& address, v1::RelayLivenessRequest relay,
                     absl::AnyInvocable<void(absl::Status) &&> done) = 0;
};

}  // namespace abode::allocator

#endif  // ABODE_ALLOCATOR_SERVICE_LEADER_LIVENESS_H_

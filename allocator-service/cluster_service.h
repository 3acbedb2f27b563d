// The Cluster service (status, membership, leadership, checksums) and the replica-to-replica Replica
// service (forwarded writes, read indexes, relayed node liveness), over one RaftNode.
#ifndef ABODE_ALLOCATOR_SERVICE_CLUSTER_SERVICE_H_
#define ABODE_ALLOCATOR_SERVICE_CLUSTER_SERVICE_H_

#include "abode/v1/cluster.grpc.pb.h"
#include "allocator-service/leader_channels.h"
#include "allocator-service/node_registry.h"
#include "allocator-service/service_calls.h"
#include "allocator-service/store_state_machine.h"
#include "replication/raft_node.h"

namespace abode::allocator {

class ClusterService final : public v1::Cluster::CallbackService {
 public:
  // `link` reaches the leader for membership changes sent to a follower; null for a single voter. Checksums
  // pin `store` between two applies and serialise it on `reads`. All outlive the service.
  ClusterService(replication::RaftNode& node, StoreStateMachine& store, ReadExecutor& reads, LeaderChannels* link)
      : node_(node), store_(store), reads_(reads), link_(link) {}

  grpc::ServerUnaryReactor* Status(grpc::CallbackServerContext* ctx, const v1::ClusterStatusRequest* req,
                                   v1::ClusterStatus* resp) override;
  grpc::ServerUnaryReactor* AddMember(grpc::CallbackServerContext* ctx, const v1::AddMemberRequest* req,
                                      v1::ClusterStatus* resp) override;
  grpc::ServerUnaryReactor* RemoveMember(grpc::CallbackServerContext* ctx, const v1::RemoveMemberRequest* req,
                                         v1::ClusterStatus* resp) override;
  grpc::ServerUnaryReactor* TransferLeadership(grpc::CallbackServerContext* ctx,
                                               const v1::TransferLeadershipRequest* req,
                                               v1::ClusterStatus* resp) override;
  grpc::ServerUnaryReactor* Checksum(grpc::CallbackServerContext* ctx, const v1::ChecksumRequest* req,
                                     v1::ChecksumResponse* resp) override;
  // Linearizable: waits for a read index confirmed through the leader, then pins and serialises the state
  // like Checksum and streams it.
  grpc::ServerWriteReactor<v1::BackupChunk>* Backup(grpc::CallbackServerContext* ctx,
                                                    const v1::BackupRequest* req) override;

 private:
  // Runs `change` here when this replica leads, else passes the call on to the leader via `proxy`.
  template <typename Request, typename Change, typename Proxy>
  grpc::ServerUnaryReactor* AtLeader(grpc::CallbackServerContext* ctx, const Request* req,
                                     v1::ClusterStatus* resp, Change change, Proxy proxy);
  void FillStatus(v1::ClusterStatus* out);

  replication::RaftNode& node_;
  StoreStateMachine& store_;
  ReadExecutor& reads_;
  LeaderChannels* link_;
};

class ReplicaService final : public v1::Replica::CallbackService {
 public:
  // `registry` takes the node liveness followers relay; it outlives the service.
  ReplicaService(replication::RaftNode& node, NodeRegistry& registry) : node_(node), registry_(registry) {}

  grpc::ServerUnaryReactor* Forward(grpc::CallbackServerContext* ctx, const v1::ForwardRequest* req,
                                    v1::ForwardResponse* resp) override;
  grpc::ServerUnaryReactor* ReadIndex(grpc::CallbackServerContext* ctx, const v1::ReadIndexRequest* req,
                                      v1::ReadIndexResponse* resp) override;
  grpc::ServerUnaryReactor* RelayLiveness(grpc::CallbackServerContext* ctx, const v1::RelayLivenessRequest* req,
                                          v1::RelayLivenessResponse* resp) override;

 private:
  replication::RaftNode& node_;
  NodeRegistry& registry_;
};

}  // namespace abode::allocator

#endif  // ABODE_ALLOCATOR_SERVICE_CLUSTER_SERVICE_H_

// gRPC services for nodes and the addresses they carry: Nodes (the WatchAssignments stream, GetNode,
// ListNodes, DeleteNode), ExternalAddresses, ElasticAddresses and MagicAddresses. Writes are commands proposed to the
// CommandLog; reads come from the published view of nodes (the watch hub's, as a NodeViewSource), so every
// replica can answer them.
#ifndef ABODE_ALLOCATOR_SERVICE_NODE_SERVICES_H_
#define ABODE_ALLOCATOR_SERVICE_NODE_SERVICES_H_

#include "abode/v1/nodes.grpc.pb.h"
#include "allocator-service/assignment_feed.h"
#include "allocator-service/leader_channels.h"
#include "allocator-service/node_liveness.h"
#include "allocator-service/node_view_source.h"
#include "replication/command_log.h"
#include "tracing/tracer.h"

namespace abode::allocator {

// GetNode/ListNodes on a follower are passed to the leader, which knows every node's liveness (unless the
// call carries "abode-read-stale: true": then the follower answers with what its own streams heard).
class NodesService final : public v1::Nodes::CallbackService {
 public:
  // `link` reaches the leader from a follower; null for a single voter. With `tracer` (outliving the
  // service), every changed assignment streamed to a node gets a "watch.deliver" span under the command that
  // changed it, and the node hears that span's context as the assignment's traceparent.
  // `feed` (the watch hub) serves the streams and the view; `liveness` (the node registry) hears them.
  NodesService(replication::CommandLog& log, AssignmentFeed& feed, NodeLiveness& liveness,
               LeaderChannels* link = nullptr, tracing::Tracer* tracer = nullptr)
      : log_(log), feed_(feed), liveness_(liveness), link_(link), tracer_(tracer) {}

  grpc::ServerBidiReactor<v1::WatchAssignmentsRequest, v1::WatchAssignmentsResponse>* WatchAssignments(
      grpc::CallbackServerContext* ctx) override;
  grpc::ServerUnaryReactor* GetNode(grpc::CallbackServerContext* ctx, const v1::GetNodeRequest* req,
                                    v1::Node* resp) override;
  grpc::ServerUnaryReactor* ListNodes(grpc::CallbackServerContext* ctx, const v1::ListNodesRequest* req,
                                      v1::ListNodesResponse* resp) override;
  grpc::ServerUnaryReactor* SetNodeLabels(grpc::CallbackServerContext* ctx, const v1::SetNodeLabelsRequest* req,
                                          v1::Node* resp) override;
  // Without force, the leader (which knows every stream) refuses a connected node: a follower passes the
  // call there.
  grpc::ServerUnaryReactor* DeleteNode(grpc::CallbackServerContext* ctx, const v1::DeleteNodeRequest* req,
                                       v1::DeleteNodeResponse* resp) override;

 private:
  v1::Node Describe(const v1::Node& stored);
  // The leader's gRPC address when this call must be answered there; empty to answer here.
  absl::StatusOr<std::string> LeaderFor(grpc::CallbackServerContext* ctx);

  replication::CommandLog& log_;
  AssignmentFeed& feed_;
  NodeLiveness& liveness_;
  LeaderChannels* link_;
  tracing::Tracer* tracer_;
};

class ExternalAddressesService final : public v1::ExternalAddresses::CallbackService {
 public:
  ExternalAddressesService(replication::CommandLog& log, NodeViewSource& views) : log_(log), views_(views) {}

  grpc::ServerUnaryReactor* CreateExternalAddress(grpc::CallbackServerContext* ctx,
                                                  const v1::CreateExternalAddressRequest* req,
                                                  v1::ExternalAddress* resp) override;
  grpc::ServerUnaryReactor* GetExternalAddress(grpc::CallbackServerContext* ctx,
                                               const v1::GetExternalAddressRequest* req,
                                               v1::ExternalAddress* resp) override;
  grpc::ServerUnaryReactor* ListExternalAddresses(grpc::CallbackServerContext* ctx,
                                                  const v1::ListExternalAddressesRequest* req,
                                                  v1::ListExternalAddressesResponse* resp) override;
  grpc::ServerUnaryReactor* DeleteExternalAddress(grpc::CallbackServerContext* ctx,
                                                  const v1::DeleteExternalAddressRequest* req,
                                                  v1::DeleteAddressResponse* resp) override;

 private:
  replication::CommandLog& log_;
  NodeViewSource& views_;
};

class ElasticAddressesService final : public v1::ElasticAddresses::CallbackService {
 public:
  ElasticAddressesService(replication::CommandLog& log, NodeViewSource& views) : log_(log), views_(views) {}

  grpc::ServerUnaryReactor* CreateElasticAddress(grpc::CallbackServerContext* ctx,
                                                 const v1::CreateElasticAddressRequest* req,
                                                 v1::ElasticAddress* resp) override;
  grpc::ServerUnaryReactor* GetElasticAddress(grpc::CallbackServerContext* ctx,
                                              const v1::GetElasticAddressRequest* req,
                                              v1::ElasticAddress* resp) override;
  grpc::ServerUnaryReactor* ListElasticAddresses(grpc::CallbackServerContext* ctx,
                                                 const v1::ListElasticAddressesRequest* req,
                                                 v1::ListElasticAddressesResponse* resp) override;
  grpc::ServerUnaryReactor* DeleteElasticAddress(grpc::CallbackServerContext* ctx,
                                                 const v1::DeleteElasticAddressRequest* req,
                                                 v1::DeleteAddressResponse* resp) override;
  grpc::ServerUnaryReactor* AssociateElasticAddress(grpc::CallbackServerContext* ctx,
                                                    const v1::AssociateElasticAddressRequest* req,
                                                    v1::ElasticAddress* resp) override;
  grpc::ServerUnaryReactor* DisassociateElasticAddress(grpc::CallbackServerContext* ctx,
                                                       const v1::DisassociateElasticAddressRequest* req,
                                                       v1::ElasticAddress* resp) override;

 private:
  replication::CommandLog& log_;
  NodeViewSource& views_;
};

class MagicAddressesService final : public v1::MagicAddresses::CallbackService {
 public:
  MagicAddressesService(replication::CommandLog& log, NodeViewSource& views) : log_(log), views_(views) {}

  grpc::ServerUnaryReactor* CreateMagicAddress(grpc::CallbackServerContext* ctx,
                                               const v1::CreateMagicAddressRequest* req,
                                               v1::MagicAddress* resp) override;
  grpc::ServerUnaryReactor* GetMagicAddress(grpc::CallbackServerContext* ctx, const v1::GetMagicAddressRequest* req,
                                            v1::MagicAddress* resp) override;
  grpc::ServerUnaryReactor* ListMagicAddresses(grpc::CallbackServerContext* ctx,
                                               const v1::ListMagicAddressesRequest* req,
                                               v1::ListMagicAddressesResponse* resp) override;
  grpc::ServerUnaryReactor* DeleteMagicAddress(grpc::CallbackServerContext* ctx,
                                               const v1::DeleteMagicAddressRequest* req,
                                               v1::DeleteAddressResponse* resp) override;

 private:
  replication::CommandLog& log_;
  NodeViewSource& views_;
};

}  // namespace abode::allocator

#endif  // ABODE_ALLOCATOR_SERVICE_NODE_SERVICES_H_

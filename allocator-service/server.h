// An allocator replica, assembled: the data dir's lock, the store (StoreStateMachine over storage) with its
// reader, the raft node over the store, the housekeeper, the watch hub and node registry, the read
// executor, and the gRPC server in front of them.
//
// The path of one Allocate: AllocatorService::Allocate (a gRPC callback thread) validates and builds a
// Command → ProposeAndFinish → RaftNode::Propose (replication/raft_node.h) → the raft loop batches it,
// c-raft commits it → StoreStateMachine::Apply → storage::StateMachine::Apply → the outcome travels to
// ProposalQueue::AnswerProposers → a completion thread runs the call's reply, which finishes the reactor.
#ifndef ABODE_ALLOCATOR_SERVICE_SERVER_H_
#define ABODE_ALLOCATOR_SERVICE_SERVER_H_

#include <functional>
#include <memory>
#include <string>

#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>

#include "absl/status/statusor.h"
#include "allocator-service/cluster_service.h"
#include "allocator-service/command_gate.h"
#include "allocator-service/housekeeper.h"
#include "allocator-service/leader_link.h"
#include "allocator-service/metrics.h"
#include "allocator-service/node_registry.h"
#include "allocator-service/node_services.h"
#include "allocator-service/service_calls.h"
#include "allocator-service/services.h"
#include "allocator-service/store_state_machine.h"
#include "allocator-service/timers.h"
#include "allocator-service/watch_hub.h"
#include "metrics/endpoint.h"
#include "replication/data_dir.h"
#include "replication/raft_node.h"
#include "storage/state_reader.h"
#include "tracing/tracer.h"

namespace abode::allocator {

struct ServerOptions {
  std::string listen = "127.0.0.1:7443";  // HOST:PORT; port 0 picks a free port (see AllocatorServer::port)
  replication::RaftNodeOptions raft;  // raft.data_dir also holds state.db
  int64_t housekeeping_interval_ms = 1000;  // how often the leader looks for expired allocations
  int64_t history_retention_ms = int64_t{30} * 24 * 3600 * 1000;  // 0 keeps history forever
  Timers* timers = nullptr;  // the housekeeper's and the node registry's; null: real time. Outlives the server.
  size_t read_threads = 2;   // the read executor's threads
  // How the read threads yield the CPU to writes (see read_executor.h): SCHED_IDLE (read_idle), or else
  // the nice value read_nice (0..19; 0: the process's own priority).
  bool read_idle = true;
  int read_nice = 19;
  // A cgroup the read threads join (see thread_priority.h: made with cpu.idle 1, their CPU time no longer
  // counts against the writers' share); empty: the process's own.
  std::string read_cgroup;
  std::function<void()> read_observer;  // runs on the read thread before every read (see read_executor.h)
  // Transport security; insecure by default. Pluggable so mTLS can be configured by the caller.
  std::shared_ptr<grpc::ServerCredentials> credentials;
  // How this replica reaches the others' gRPC servers (forwarded writes, read indexes); insecure when null.
  std::shared_ptr<grpc::ChannelCredentials> peer_credentials;
  int64_t forward_timeout_ms = 5000;  // a forwarded write or read index waits this long for the leader
  // Node leases: a node not heard from for node_lease_ms is marked not ready (checked every
  // node_sweep_interval_ms against raft.clock).
  int64_t node_lease_ms = 5000;
  int64_t node_sweep_interval_ms = 200;
  int64_t reclaim_not_ready_after_ms = 0;  // release a lost node's allocations after this long; 0: never
  // Prometheus metrics over HTTP at /metrics on HOST:PORT (port 0: any free port, see metrics_port());
  // empty: no metrics endpoint and no per-call accounting. See docs/metrics.md.
  std::string metrics_listen;
  // Spans for every gRPC call, forwarded write, log entry and applied command (docs/tracing.md); null or
  // disabled: none. Outlives the server.
  tracing::Tracer* tracer = nullptr;
};

class AllocatorServer {
 public:
  // Restores state, then starts serving. Returns once the server accepts calls.
  static absl::StatusOr<std::unique_ptr<AllocatorServer>> Start(ServerOptions options);
  ~AllocatorServer();  // Shutdown()

  int port() const { return port_; }
  int metrics_port() const { return metrics_ != nullptr ? metrics_->port() : 0; }  // 0: no metrics endpoint
  replication::RaftNode& node() { return *node_; }
  storage::StateReader& reader() { return *reader_; }
  WatchHub& watch_hub() { return *hub_; }
  NodeRegistry& node_registry() { return *registry_; }
  // Stops accepting calls, lets in-flight calls finish (up to a short grace period), stops raft.
  void Shutdown();
  void Wait() { server_->Wait(); }

 private:
  AllocatorServer() = default;

  std::shared_ptr<prometheus::Registry> metrics_registry_;
  std::unique_ptr<RpcMetrics> rpc_metrics_;  // outlives server_ (its interceptors count into it)
  std::unique_ptr<GrpcLeaderLink> link_;  // outlives node_
  std::unique_ptr<WatchHub> hub_;  // outlives store_, node_ and every stream
  replication::DirLock data_dir_lock_;  // held from before the store opens until everything is gone
  std::unique_ptr<StoreStateMachine> store_;  // outlives node_
  std::unique_ptr<ThreadTimers> own_timers_;  // when options.timers is null
  std::unique_ptr<HousekeepingHost> housekeeping_host_;
  std::unique_ptr<Housekeeper> housekeeper_;  // stopped before node_ goes; destroyed after it
  std::unique_ptr<replication::RaftNode> node_;
  std::unique_ptr<GatedCommandLog> log_;  // the services' and the registry's way to node_
  std::unique_ptr<storage::StateReader> reader_;
  std::unique_ptr<ReadExecutor> reads_;  // its threads finish their reads (of reader_) before reader_ goes
  std::unique_ptr<LeaderLiveness> leadership_;  // with peers; outlives registry_
  std::unique_ptr<NodeRegistry> registry_;
  std::unique_ptr<NodesService> nodes_;
  std::unique_ptr<ExternalAddressesService> externals_;
  std::unique_ptr<ElasticAddressesService> elastics_;
  std::unique_ptr<MagicAddressesService> magics_;
  std::unique_ptr<PoolsService> pools_;
  std::unique_ptr<AllocatorService> allocator_;
  std::unique_ptr<ClusterService> cluster_;
  std::unique_ptr<ReplicaService> replica_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<ReplicaMetrics> replica_metrics_;  // reads node_ and reader_
  std::unique_ptr<metrics::MetricsEndpoint> metrics_;  // stops serving first
  int port_ = 0;
  bool shut_down_ = false;
};

}  // namespace abode::allocator

#endif  // ABODE_ALLOCATOR_SERVICE_SERVER_H_

#include "allocator-service/server.h"

#include "allocator-service/thread_priority.h"
#include "tracing/grpc_tracing.h"

#include <chrono>
#include <thread>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/server_builder.h>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace abode::allocator {
namespace {

// Leadership as the raft node sees it; relays go over the Replica service.
class RaftLeaderLiveness final : public LeaderLiveness {
 public:
  RaftLeaderLiveness(replication::ReplicaStatus& node, GrpcLeaderLink& link) : node_(node), link_(link) {}

  Leader Current() override {
    const replication::ClusterView v = node_.view();
    Leader out;
    out.member_id = v.id;
    out.self = v.role == replication::RaftRole::kLeader && v.ready;
    if (v.leader_id != 0 && v.leader_id != v.id) out.address = v.leader_grpc_address;
    return out;
  }
  void Relay(const std::string& address, v1::RelayLivenessRequest relay,
             absl::AnyInvocable<void(absl::Status) &&> done) override {
    link_.RelayLiveness(address, std::move(relay), std::move(done));
  }

 private:
  replication::ReplicaStatus& node_;
  GrpcLeaderLink& link_;
};

// The housekeeper's view of this replica: the raft node, and the store read between two applies.
class ReplicaHousekeepingHost final : public HousekeepingHost {
 public:
  // Both outlive the host; `node` is set once it runs.
  explicit ReplicaHousekeepingHost(StoreStateMachine& store) : store_(store) {}
  void Attach(replication::RaftNode* node) { node_ = node; }

  bool Leads() override { return node_->view().role == replication::RaftRole::kLeader; }
  void EarliestExpiry(ExpiryDone done) override {
    node_->BetweenApplies([this, done = std::move(done)](absl::StatusOr<uint64_t> applied) mutable {
      if (!applied.ok()) {
        std::move(done)(applied.status());
        return;
      }
      std::move(done)(store_.EarliestExpiry());
    });
  }
  void ProposeHere(v1::Command command, replication::CommandLog::Done done) override {
    std::vector<v1::Command> commands;
    commands.push_back(std::move(command));
    std::vector<replication::CommandLog::Done> dones;
    dones.push_back(std::move(done));
    node_->ProposeLocal(std::move(commands), std::move(dones));
  }

 private:
  StoreStateMachine& store_;
  replication::RaftNode* node_ = nullptr;
};

}  // namespace

absl::StatusOr<std::unique_ptr<AllocatorServer>> AllocatorServer::Start(ServerOptions options) {
  if (options.read_nice < 0 || options.read_nice > kMaxNice) {
    return absl::InvalidArgumentError(
        absl::StrCat("read_nice: ", options.read_nice, " is outside 0..", kMaxNice, " (reads never outrank writes)"));
  }
  if (!options.read_cgroup.empty()) {
    if (absl::Status c = CheckCgroup(options.read_cgroup); !c.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("read_cgroup: ", c.message()));
    }
  }
  std::unique_ptr<AllocatorServer> s(new AllocatorServer());
  if (options.raft.command_format_version == 0) options.raft.command_format_version = storage::kCommandFormatVersion;
  // Bound first, so that a metrics address that cannot be served stops the start before raft runs.
  if (!options.metrics_listen.empty()) {
    auto metrics = metrics::MetricsEndpoint::Start(options.metrics_listen);
    if (!metrics.ok()) return metrics.status();
    s->metrics_ = std::move(*metrics);
    s->metrics_registry_ = std::make_shared<prometheus::Registry>();
    s->rpc_metrics_ = std::make_unique<RpcMetrics>(*s->metrics_registry_);
  }
  if (!options.raft.peers.empty()) {
    s->link_ = std::make_unique<GrpcLeaderLink>(options.peer_credentials, options.forward_timeout_ms, options.tracer);
    options.raft.leader_link = s->link_.get();
  }
  if (options.tracer != nullptr && options.tracer->enabled()) options.raft.tracer = options.tracer;
  if (absl::Status st = replication::RaftNode::CheckOptions(options.raft); !st.ok()) return st;
  s->hub_ = std::make_unique<WatchHub>();

  // The data dir is locked before the store opens, so two processes never share one store or raft log.
  const std::string& data_dir = options.raft.data_dir;
  if (absl::Status st = replication::MakeDir(data_dir); !st.ok()) return st;
  if (absl::Status st = s->data_dir_lock_.Acquire(data_dir); !st.ok()) return st;
  if (absl::Status st = replication::MakeDir(data_dir + "/raft"); !st.ok()) return st;
  // A database is only as good as the log it was built from: reuse it only next to a raft log that has
  // been started before (a wiped or new raft dir rebuilds it from scratch).
  auto store = StoreStateMachine::Open(data_dir + "/state.db", !replication::RaftLogIsPristine(data_dir),
                                       s->hub_.get());
  if (!store.ok()) return store.status();
  s->store_ = std::move(*store);
  s->store_->set_tracer(options.raft.tracer);
  s->store_->PublishNodeState();  // what a reopened database already holds

  if (options.timers == nullptr) {
    s->own_timers_ = std::make_unique<ThreadTimers>();
    options.timers = s->own_timers_.get();
  }
  auto host = std::make_unique<ReplicaHousekeepingHost>(*s->store_);
  ReplicaHousekeepingHost* host_ptr = host.get();
  s->housekeeping_host_ = std::move(host);

  auto node = replication::RaftNode::Start(options.raft, s->store_.get());
  if (!node.ok()) return node.status();
  s->node_ = std::move(*node);
  host_ptr->Attach(s->node_.get());
  s->housekeeper_ = std::make_unique<Housekeeper>(
      *s->housekeeping_host_, HousekeeperOptions{.interval_ms = options.housekeeping_interval_ms,
                                                 .history_retention_ms = options.history_retention_ms,
                                                 .clock = options.raft.clock,
                                                 .timers = options.timers});
  auto reader = storage::StateReader::Open(s->store_->db_path(), s->store_->owner_index());
  if (!reader.ok()) return reader.status();
  s->reader_ = std::move(*reader);
  s->reads_ =
      std::make_unique<ReadExecutor>(std::max<size_t>(options.read_threads, 1), "abode-read",
                                     ThreadPriority{.idle = options.read_idle, .nice = options.read_nice,
                                                    .cgroup = options.read_cgroup},
                                     options.read_observer);

  replication::RaftNode* raft = s->node_.get();
  s->log_ = std::make_unique<GatedCommandLog>(
      *raft, CommandGateOptions{.view = [raft] { return raft->view(); },
                                .channels = s->link_.get(),
                                .clock = options.raft.clock});
  if (s->link_ != nullptr) s->leadership_ = std::make_unique<RaftLeaderLiveness>(*s->node_, *s->link_);
  s->registry_ = std::make_unique<NodeRegistry>(
      *s->log_, *s->hub_,
      NodeRegistryOptions{.lease_ms = options.node_lease_ms,
                          .sweep_interval_ms = options.node_sweep_interval_ms,
                          .clock = options.raft.clock,
                          .timers = options.timers,
                          .reclaim_not_ready_after_ms = options.reclaim_not_ready_after_ms,
                          .leadership = s->leadership_.get()});
  s->nodes_ = std::make_unique<NodesService>(*s->log_, *s->hub_, *s->registry_, s->link_.get(), options.tracer);
  s->externals_ = std::make_unique<ExternalAddressesService>(*s->log_, *s->hub_);
  s->elastics_ = std::make_unique<ElasticAddressesService>(*s->log_, *s->hub_);
  s->magics_ = std::make_unique<MagicAddressesService>(*s->log_, *s->hub_);
  s->pools_ = std::make_unique<PoolsService>(*s->log_, *s->reader_, s->node_.get(), s->reads_.get());
  s->allocator_ = std::make_unique<AllocatorService>(*s->log_, *s->reader_, s->node_.get(), s->reads_.get());
  s->cluster_ = std::make_unique<ClusterService>(*s->node_, *s->store_, *s->reads_, s->link_.get());
  s->replica_ = std::make_unique<ReplicaService>(*s->node_, *s->registry_);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  auto creds = options.credentials ? options.credentials : grpc::InsecureServerCredentials();
  builder.AddListeningPort(options.listen, creds, &s->port_);
  builder.RegisterService(s->pools_.get());
  builder.RegisterService(s->allocator_.get());
  builder.RegisterService(s->nodes_.get());
  builder.RegisterService(s->externals_.get());
  builder.RegisterService(s->elastics_.get());
  builder.RegisterService(s->magics_.get());
  builder.RegisterService(s->cluster_.get());
  builder.RegisterService(s->replica_.get());
  builder.SetMaxReceiveMessageSize(16 * 1024 * 1024);
  // Node clients hold long-lived streams and ping (HTTP/2 keepalive) to find out an allocator that stopped
  // answering while its TCP connection stays up. Accept their pings, also between messages, without
  // counting them as abuse; ping node clients too, so streams of vanished nodes are closed.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 100);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 30'000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10'000);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  if (s->rpc_metrics_ != nullptr) interceptors.push_back(s->rpc_metrics_->InterceptorFactory());
  if (options.tracer != nullptr && options.tracer->enabled()) {
    interceptors.push_back(tracing::ServerInterceptorFactory(*options.tracer));
  }
  if (!interceptors.empty()) builder.experimental().SetInterceptorCreators(std::move(interceptors));
  s->server_ = builder.BuildAndStart();
  if (s->server_ == nullptr || s->port_ == 0) {
    return absl::FailedPreconditionError(absl::StrCat("listen: cannot serve gRPC on ", options.listen));
  }
  s->server_->GetHealthCheckService()->SetServingStatus(true);
  if (s->metrics_ != nullptr) {
    s->replica_metrics_ = std::make_shared<ReplicaMetrics>(*s->node_, *s->reader_);
    s->metrics_->Register(s->metrics_registry_);
    s->metrics_->Register(s->replica_metrics_);
    if (options.tracer != nullptr) s->metrics_->Register(options.tracer->metrics());
  }
  return s;
}

AllocatorServer::~AllocatorServer() { Shutdown(); }

void AllocatorServer::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  // The node goes away below; civetweb takes up to 2 s to stop, so it stops meanwhile.
  if (replica_metrics_ != nullptr) replica_metrics_->Detach();
  std::thread stop_metrics([m = std::move(metrics_)]() mutable { m.reset(); });
  if (server_) {
    server_->GetHealthCheckService()->SetServingStatus(false);
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  }
  if (registry_) registry_->Stop();
  if (housekeeper_) housekeeper_->Stop();
  log_.reset();  // waits for its questions to the members, which may still propose to node_
  node_.reset();
  stop_metrics.join();
}

}  // namespace abode::allocator

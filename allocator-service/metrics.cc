#include "allocator-service/metrics.h"

#include <algorithm>

#include <chrono>
#include <cstdlib>
#include <utility>

#include <google/protobuf/descriptor.h>

#include "abode/v1/pools.pb.h"
#include "absl/strings/str_cat.h"
#include "metrics/family.h"

namespace abode::allocator {
namespace {

using metrics::Family;
using metrics::Sample;

// From 100 µs (a read served locally) to 10 s (a forwarded write that timed out); streams, which last as long
// as their client stays, land in the last bucket.
const prometheus::Histogram::BucketBoundaries kHandlingBuckets = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

constexpr const char* kCodeNames[17] = {
    "OK",          "CANCELLED",          "UNKNOWN",           "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
    "NOT_FOUND",   "ALREADY_EXISTS",     "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED",     "OUT_OF_RANGE",       "UNIMPLEMENTED",     "INTERNAL",         "UNAVAILABLE",
    "DATA_LOSS",   "UNAUTHENTICATED"};

const char* TypeName(grpc::experimental::ServerRpcInfo::Type type) {
  using Type = grpc::experimental::ServerRpcInfo::Type;
  switch (type) {
    case Type::UNARY: return "unary";
    case Type::CLIENT_STREAMING: return "client_stream";
    case Type::SERVER_STREAMING: return "server_stream";
    case Type::BIDI_STREAMING: return "bidi_stream";
  }
  return "unknown";
}

// One call: started when gRPC creates it, handled when the status goes out (or, if none ever does, when
// the call ends: CANCELLED).
class RpcInterceptor final : public grpc::experimental::Interceptor {
 public:
  RpcInterceptor(RpcMetrics& metrics, RpcMetrics::Method& method)
      : metrics_(metrics), method_(method), start_(std::chrono::steady_clock::now()) {
    method_.started->Increment();
  }
  ~RpcInterceptor() override {
    if (!done_) Record(grpc::StatusCode::CANCELLED);
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (!done_ && methods->QueryInterceptionHookPoint(
                      grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      Record(methods->GetSendStatus().error_code());
    }
    methods->Proceed();
  }

 private:
  void Record(int code) {
    done_ = true;
    metrics_.Handled(method_, code,
                     std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
  }

  RpcMetrics& metrics_;
  RpcMetrics::Method& method_;
  const std::chrono::steady_clock::time_point start_;
  bool done_ = false;
};

class RpcInterceptorFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit RpcInterceptorFactory(RpcMetrics& metrics) : metrics_(metrics) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(grpc::experimental::ServerRpcInfo* info) override {
    return new RpcInterceptor(metrics_, metrics_.ForMethod(info->method(), info->type()));
  }

 private:
  RpcMetrics& metrics_;
};

// Pool sizes are decimal strings (an IPv6 pool may exceed 2^64); a gauge is a double either way.
double Count(const std::string& decimal) { return std::strtod(decimal.c_str(), nullptr); }

}  // namespace

RpcMetrics::RpcMetrics(prometheus::Registry& registry)
    : started_(prometheus::BuildCounter()
                   .Name("grpc_server_started_total")
                   .Help("gRPC calls started on this replica")
                   .Register(registry)),
      handled_(prometheus::BuildCounter()
                   .Name("grpc_server_handled_total")
                   .Help("gRPC calls completed on this replica, by status code")
                   .Register(registry)),
      handling_(prometheus::BuildHistogram()
                    .Name("grpc_server_handling_seconds")
                    .Help("Time from a gRPC call's start to its status, in seconds")
                    .Register(registry)) {}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> RpcMetrics::InterceptorFactory() {
  return std::make_unique<RpcInterceptorFactory>(*this);
}

RpcMetrics::Method& RpcMetrics::ForMethod(const char* full_name, grpc::experimental::ServerRpcInfo::Type type) {
  const absl::string_view name = full_name != nullptr ? full_name : "";
  {
    absl::ReaderMutexLock lock(&mu_);
    if (auto it = by_name_.find(name); it != by_name_.end()) return *it->second;
  }
  // "/abode.v1.Allocator/Allocate" -> service abode.v1.Allocator, method Allocate, if a service linked into
  // this binary defines it (the health service's methods are not in the generated pool).
  std::string service = "unknown", method = "unknown";
  const size_t slash = name.rfind('/');
  if (name.size() > 1 && name[0] == '/' && slash != absl::string_view::npos && slash > 1) {
    const std::string s(name.substr(1, slash - 1)), m(name.substr(slash + 1));
    if (s == "grpc.health.v1.Health" ||
        google::protobuf::DescriptorPool::generated_pool()->FindMethodByName(absl::StrCat(s, ".", m)) != nullptr) {
      service = s;
      method = m;
    }
  }
  const std::string key = service == "unknown" ? std::string() : std::string(name);
  absl::MutexLock lock(&mu_);
  auto& slot = by_name_[key];
  if (slot != nullptr) return *slot;
  slot = std::make_unique<Method>();
  slot->service = std::move(service);
  slot->method = std::move(method);
  slot->type = key.empty() ? "unknown" : TypeName(type);
  const prometheus::Labels labels = {
      {"grpc_service", slot->service}, {"grpc_method", slot->method}, {"grpc_type", slot->type}};
  slot->started = &started_.Add(labels);
  slot->handling = &handling_.Add(labels, kHandlingBuckets);
  return *slot;
}

void RpcMetrics::Handled(Method& m, int code, double seconds) {
  if (code < 0 || code >= static_cast<int>(m.handled.size())) code = grpc::StatusCode::UNKNOWN;
  prometheus::Counter* c = m.handled[code].load(std::memory_order_acquire);
  if (c == nullptr) {
    // Family::Add returns the existing series for the same labels, so a race here only looks it up twice.
    c = &handled_.Add({{"grpc_service", m.service},
                       {"grpc_method", m.method},
                       {"grpc_type", m.type},
                       {"grpc_code", kCodeNames[code]}});
    m.handled[code].store(c, std::memory_order_release);
  }
  c->Increment();
  m.handling->Observe(seconds);
}

void ReplicaMetrics::Detach() {
  absl::MutexLock lock(&mu_);
  node_ = nullptr;
  pools_ = nullptr;
}

std::vector<prometheus::MetricFamily> ReplicaMetrics::Collect() const {
  using prometheus::MetricType;
  std::vector<prometheus::MetricFamily> out;
  absl::MutexLock lock(&mu_);
  if (node_ == nullptr) return out;
  const replication::ClusterView v = node_->view();
  const replication::ReplicationStats s = node_->stats();

  out.push_back(Family("abode_ready", "1 once this replica serves requests (it knows a leader and has caught up)",
                       MetricType::Gauge, {Sample(v.ready ? 1 : 0)}));
  std::vector<prometheus::ClientMetric> roles;
  for (const replication::RaftRole role : replication::kRaftRoles) {
    roles.push_back(Sample(v.role == role ? 1 : 0, {{"role", std::string(replication::RoleName(role))}}));
  }
  out.push_back(Family("abode_raft_role", "1 for this replica's raft role, 0 for the others", MetricType::Gauge,
                       std::move(roles)));
  out.push_back(Family("abode_raft_term", "This replica's raft term", MetricType::Gauge,
                       {Sample(static_cast<double>(v.term))}));
  out.push_back(Family("abode_raft_leader_id", "The raft id of the leader this replica knows; 0: none",
                       MetricType::Gauge, {Sample(static_cast<double>(v.leader_id))}));
  out.push_back(Family("abode_raft_commit_index", "The newest raft log index this replica knows committed",
                       MetricType::Gauge, {Sample(static_cast<double>(v.commit_index))}));
  out.push_back(Family("abode_raft_applied_index", "The newest raft log index applied to this replica's state",
                       MetricType::Gauge, {Sample(static_cast<double>(v.applied_index))}));
  out.push_back(Family("abode_state_revision", "The revision of this replica's state (bumped by every change)",
                       MetricType::Gauge, {Sample(static_cast<double>(v.revision))}));
  std::vector<prometheus::ClientMetric> members;
  for (const replication::MemberRole role : replication::kMemberRoles) {
    const auto n = std::count_if(v.members.begin(), v.members.end(),
                                 [role](const replication::Member& m) { return m.role == role; });
    members.push_back(Sample(static_cast<double>(n), {{"role", std::string(replication::RoleName(role))}}));
  }
  out.push_back(Family("abode_raft_members", "Members of the raft configuration this replica knows, by role",
                       MetricType::Gauge, std::move(members)));
  out.push_back(Family("abode_raft_entries_proposed_total",
                       "Raft log entries this replica proposed as leader (each carries a batch of commands)",
                       MetricType::Counter, {Sample(static_cast<double>(s.entries))}));
  out.push_back(Family("abode_raft_commands_proposed_total", "Commands inside the entries this replica proposed",
                       MetricType::Counter, {Sample(static_cast<double>(s.commands))}));

  // Pools as this replica's state holds them. On a replica that is catching up they lag the leader's.
  auto pools = pools_->ListPools(v1::ListPoolsRequest());
  std::vector<prometheus::ClientMetric> size, used;
  if (pools.ok()) {
    for (const v1::Pool& p : pools->pools()) {
      const std::vector<prometheus::ClientMetric::Label> labels = {
          {"pool", p.spec().name()},
          {"network", p.spec().network()},
          {"family", p.spec().cidr().find(':') == std::string::npos ? "ipv4" : "ipv6"}};
      size.push_back(Sample(Count(p.size()), labels));
      used.push_back(Sample(static_cast<double>(p.used()), labels));
    }
  }
  out.push_back(Family("abode_pool_addresses", "Addresses a pool can hand out (excluded ones not counted)",
                       MetricType::Gauge, std::move(size)));
  out.push_back(Family("abode_pool_allocated_addresses", "Live allocations in a pool", MetricType::Gauge,
                       std::move(used)));
  out.push_back(Family("abode_pool_scrape_ok", "1 if the pools could be read for this scrape", MetricType::Gauge,
                       {Sample(pools.ok() ? 1 : 0)}));
  return out;
}

}  // namespace abode::allocator

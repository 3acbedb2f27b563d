#include "allocator-service/leader_link.h"

#include <algorithm>
#include <chrono>

#include <grpcpp/create_channel.h>

#include "abode/v1/cluster.grpc.pb.h"
#include "absl/strings/str_cat.h"
#include "tracing/grpc_tracing.h"

namespace abode::allocator {
namespace {

// A failed call to the leader. A write whose call timed out may still have been committed; every write
// abode accepts is safe to retry (Allocate is idempotent per owner), so the caller hears UNAVAILABLE.
absl::Status LinkError(const grpc::Status& s, const std::string& address, absl::string_view what) {
  return absl::UnavailableError(
      absl::StrCat(what, " via the leader at ", address, " failed (", s.error_message(), "); retry"));
}

template <typename Request, typename Response, typename Done>
struct Call {
  grpc::ClientContext ctx;
  Request req;
  Response resp;
  Done done;
};

}  // namespace

GrpcLeaderLink::GrpcLeaderLink(std::shared_ptr<grpc::ChannelCredentials> credentials, int64_t timeout_ms,
                               tracing::Tracer* tracer)
    : credentials_(credentials ? std::move(credentials) : grpc::InsecureChannelCredentials()),
      timeout_ms_(timeout_ms),
      tracer_(tracer) {}

std::shared_ptr<grpc::Channel> GrpcLeaderLink::Channel(const std::string& address) {
  absl::MutexLock lock(&mu_);
  auto& ch = channels_[address];
  if (ch == nullptr) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, kMaxReconnectBackoffMs);
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, kKeepaliveTimeMs);
    args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, kKeepaliveTimeoutMs);
    args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
    args.SetMaxReceiveMessageSize(64 * 1024 * 1024);
    ch = tracing::CreateTracedChannel(address, credentials_, args, tracer_);
  }
  return ch;
}

replication::Deadline GrpcLeaderLink::CallDeadline(replication::Deadline caller) const {
  const replication::Deadline now = std::chrono::system_clock::now();
  const replication::Deadline own = now + std::chrono::milliseconds(timeout_ms_);
  if (caller >= own) return own;
  const auto margin = std::min<std::chrono::system_clock::duration>(std::chrono::milliseconds(100), (caller - now) / 10);
  return std::max(now, caller - margin);
}

void GrpcLeaderLink::Forward(const std::string& leader_grpc_address, std::vector<v1::Command> commands,
                             replication::Deadline deadline, absl::AnyInvocable<void(absl::StatusOr<Outcomes>) &&> done) {
  using ForwardCall = Call<v1::ForwardRequest, v1::ForwardResponse,
                           absl::AnyInvocable<void(absl::StatusOr<Outcomes>) &&>>;
  auto* call = new ForwardCall();
  call->done = std::move(done);
  call->ctx.set_deadline(CallDeadline(deadline));
  const size_t n = commands.size();
  // The client span of the forward continues the first command's trace; the leader's raft.commit span
  // links to every command's.
  if (n > 0 && !commands[0].traceparent().empty()) call->ctx.AddMetadata("traceparent", commands[0].traceparent());
  for (auto& c : commands) *call->req.add_commands() = std::move(c);
  std::shared_ptr<v1::Replica::Stub> stub = v1::Replica::NewStub(Channel(leader_grpc_address));
  stub->async()->Forward(&call->ctx, &call->req, &call->resp,
                         [call, n, leader_grpc_address, stub](grpc::Status s) {
                           if (!s.ok()) {
                             std::move(call->done)(LinkError(s, leader_grpc_address, "write"));
                           } else if (static_cast<size_t>(call->resp.outcomes_size()) != n) {
                             std::move(call->done)(absl::InternalError("the leader answered a different number of outcomes"));
                           } else {
                             Outcomes out;
                             out.reserve(n);
                             for (auto& o : *call->resp.mutable_outcomes()) {
                               if (o.code() == 0) {
                                 out.emplace_back(std::move(*o.mutable_result()));
                               } else {
                                 out.emplace_back(absl::Status(static_cast<absl::StatusCode>(o.code()), o.message()));
                               }
                             }
                             std::move(call->done)(std::move(out));
                           }
                           delete call;
                         });
}

void GrpcLeaderLink::ReadIndex(const std::string& leader_grpc_address, replication::Deadline deadline,
                               absl::AnyInvocable<void(absl::StatusOr<uint64_t>) &&> done) {
  using ReadIndexCall = Call<v1::ReadIndexRequest, v1::ReadIndexResponse,
                             absl::AnyInvocable<void(absl::StatusOr<uint64_t>) &&>>;
  auto* call = new ReadIndexCall();
  call->done = std::move(done);
  call->ctx.set_deadline(CallDeadline(deadline));
  std::shared_ptr<v1::Replica::Stub> stub = v1::Replica::NewStub(Channel(leader_grpc_address));
  stub->async()->ReadIndex(&call->ctx, &call->req, &call->resp, [call, leader_grpc_address, stub](grpc::Status s) {
    if (!s.ok()) {
      std::move(call->done)(LinkError(s, leader_grpc_address, "read index"));
    } else {
      std::move(call->done)(call->resp.index());
    }
    delete call;
  });
}

void GrpcLeaderLink::RelayLiveness(const std::string& leader_grpc_address, v1::RelayLivenessRequest relay,
                                   absl::AnyInvocable<void(absl::Status) &&> done) {
  using RelayCall = Call<v1::RelayLivenessRequest, v1::RelayLivenessResponse, absl::AnyInvocable<void(absl::Status) &&>>;
  auto* call = new RelayCall();
  call->done = std::move(done);
  call->req = std::move(relay);
  call->ctx.set_deadline(CallDeadline(replication::kNoDeadline));
  std::shared_ptr<v1::Replica::Stub> stub = v1::Replica::NewStub(Channel(leader_grpc_address));
  stub->async()->RelayLiveness(&call->ctx, &call->req, &call->resp, [call, leader_grpc_address, stub](grpc::Status s) {
    std::move(call->done)(s.ok() ? absl::OkStatus() : LinkError(s, leader_grpc_address, "node liveness relay"));
    delete call;
  });
}

}  // namespace abode::allocator

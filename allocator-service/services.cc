#include "allocator-service/services.h"

#include <utility>

#include "allocator-service/grpc_status.h"
#include "domain/address.h"
#include "domain/pool_layout.h"
#include "domain/validation.h"

namespace abode::allocator {
namespace {

// W3C trace context of the call, from the request field or the gRPC metadata.
std::string TraceParent(grpc::CallbackServerContext* ctx, const std::string& from_request) {
  if (!from_request.empty()) return from_request;
  const auto& md = ctx->client_metadata();
  auto it = md.find("traceparent");
  if (it == md.end()) return {};
  return std::string(it->second.data(), it->second.size());
}

grpc::ServerUnaryReactor* Finish(grpc::CallbackServerContext* ctx, const absl::Status& s) {
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpcStatus(s));
  return reactor;
}

// Proposes a command and finishes the call with `fill(result, resp)` once it is applied.
template <typename Response, typename Fill>
grpc::ServerUnaryReactor* Propose(grpc::CallbackServerContext* ctx, CommandLog& log, v1::Command command,
                                  Response* resp, Fill fill) {
  auto* reactor = ctx->DefaultReactor();
  log.Propose(std::move(command), ctx->deadline(), [reactor, resp, fill = std::move(fill)](storage::CommandOutcome outcome) mutable {
    if (!outcome.ok()) {
      reactor->Finish(ToGrpcStatus(outcome.status()));
      return;
    }
    fill(std::move(*outcome), resp);
    reactor->Finish(grpc::Status::OK);
  });
  return reactor;
}

ReadConsistency RequestedConsistency(grpc::CallbackServerContext* ctx) {
  const auto& md = ctx->client_metadata();
  auto it = md.find("abode-read-stale");
  if (it != md.end() && absl::string_view(it->second.data(), it->second.size()) == "true") {
    return ReadConsistency::kStale;
  }
  return ReadConsistency::kLinearizable;
}

// Answers a read from the reader once the fence allows it. `read` must not refer to the handler's locals.
template <typename Response, typename Read>
grpc::ServerUnaryReactor* Answer(grpc::CallbackServerContext* ctx, ReadFence* fence, Response* resp, Read read) {
  auto* reactor = ctx->DefaultReactor();
  auto answer = [reactor, resp, read = std::move(read)](absl::Status fenced) mutable {
    if (!fenced.ok()) {
      reactor->Finish(ToGrpcStatus(fenced));
      return;
    }
    auto result = read();
    if (result.ok()) *resp = std::move(*result);
    reactor->Finish(ToGrpcStatus(result.status()));
  };
  if (fence == nullptr) {
    answer(absl::OkStatus());
  } else {
    fence->Await(RequestedConsistency(ctx), ctx->deadline(), std::move(answer));
  }
  return reactor;
}

absl::Status CheckAllocate(const v1::AllocateRequest& req) {
  if (absl::Status s = domain::ValidateName(req.pool(), "pool", false); !s.ok()) return s;
  if (absl::Status s = domain::ValidateOwner(req.owner(), "owner"); !s.ok()) return s;
  if (absl::Status s = domain::ValidateNodeName(req.node(), "node"); !s.ok()) return s;
  if (absl::Status s = domain::ValidateLabels(req.labels(), "labels"); !s.ok()) return s;
  if (!req.address().empty()) {
    if (auto a = domain::IpAddress::Parse(req.address(), "address"); !a.ok()) return a.status();
  }
  if (req.ttl_seconds() < 0) return absl::InvalidArgumentError("ttl_seconds: must not be negative");
  return absl::OkStatus();
}

absl::Status CheckRelease(const v1::ReleaseRequest& req) {
  if (req.owner().empty() == req.address().empty()) {
    return absl::InvalidArgumentError("owner, address: set exactly one of owner or address");
  }
  if (!req.owner().empty()) {
    if (absl::Status s = domain::ValidateOwner(req.owner(), "owner"); !s.ok()) return s;
  } else if (auto a = domain::IpAddress::Parse(req.address(), "address"); !a.ok()) {
    return a.status();
  }
  if (absl::Status s = domain::ValidateName(req.pool(), "pool", true); !s.ok()) return s;
  return domain::ValidateName(req.network(), "network", true);
}

}  // namespace

grpc::ServerUnaryReactor* PoolsService::CreatePool(grpc::CallbackServerContext* ctx,
                                                   const v1::CreatePoolRequest* req, v1::Pool* resp) {
  if (auto layout = domain::PoolLayout::FromSpec(req->pool()); !layout.ok()) return Finish(ctx, layout.status());
  v1::Command cmd;
  cmd.set_traceparent(TraceParent(ctx, ""));
  *cmd.mutable_create_pool() = *req;
  return Propose(ctx, log_, std::move(cmd), resp,
                 [](v1::CommandResult r, v1::Pool* out) { *out = std::move(*r.mutable_pool()); });
}

grpc::ServerUnaryReactor* PoolsService::GetPool(grpc::CallbackServerContext* ctx, const v1::GetPoolRequest* req,
                                                v1::Pool* resp) {
  return Answer(ctx, fence_, resp, [this, req] { return reader_.GetPool(*req); });
}

grpc::ServerUnaryReactor* PoolsService::ListPools(grpc::CallbackServerContext* ctx, const v1::ListPoolsRequest* req,
                                                  v1::ListPoolsResponse* resp) {
  return Answer(ctx, fence_, resp, [this, req] { return reader_.ListPools(*req); });
}

grpc::ServerUnaryReactor* PoolsService::DeletePool(grpc::CallbackServerContext* ctx,
                                                   const v1::DeletePoolRequest* req, v1::DeletePoolResponse* resp) {
  if (absl::Status s = domain::ValidateName(req->name(), "name", false); !s.ok()) return Finish(ctx, s);
  v1::Command cmd;
  cmd.set_traceparent(TraceParent(ctx, ""));
  *cmd.mutable_delete_pool() = *req;
  return Propose(ctx, log_, std::move(cmd), resp, [](v1::CommandResult r, v1::DeletePoolResponse* out) {
    *out = std::move(*r.mutable_delete_pool());
  });
}

grpc::ServerUnaryReactor* AllocatorService::Allocate(grpc::CallbackServerContext* ctx, const v1::AllocateRequest* req,
                                                     v1::Allocation* resp) {
  if (absl::Status s = CheckAllocate(*req); !s.ok()) return Finish(ctx, s);
  v1::Command cmd;
  cmd.set_traceparent(TraceParent(ctx, req->traceparent()));
  *cmd.mutable_allocate() = *req;
  cmd.mutable_allocate()->clear_traceparent();
  return Propose(ctx, log_, std::move(cmd), resp,
                 [](v1::CommandResult r, v1::Allocation* out) { *out = std::move(*r.mutable_allocation()); });
}

grpc::ServerUnaryReactor* AllocatorService::Release(grpc::CallbackServerContext* ctx, const v1::ReleaseRequest* req,
                                                    v1::ReleaseResponse* resp) {
  if (absl::Status s = CheckRelease(*req); !s.ok()) return Finish(ctx, s);
  v1::Command cmd;
  cmd.set_traceparent(TraceParent(ctx, ""));
  *cmd.mutable_release() = *req;
  return Propose(ctx, log_, std::move(cmd), resp,
                 [](v1::CommandResult r, v1::ReleaseResponse* out) { *out = std::move(*r.mutable_release()); });
}

grpc::ServerUnaryReactor* AllocatorService::Renew(grpc::CallbackServerContext* ctx, const v1::RenewRequest* req,
                                                  v1::RenewResponse* resp) {
  if (absl::Status s = domain::ValidateOwner(req->owner(), "owner"); !s.ok()) return Finish(ctx, s);
  if (req->ttl_seconds() < 0) return Finish(ctx, absl::InvalidArgumentError("ttl_seconds: must not be negative"));
  v1::Command cmd;
  cmd.set_traceparent(TraceParent(ctx, ""));
  *cmd.mutable_renew() = *req;
  return Propose(ctx, log_, std::move(cmd), resp,
                 [](v1::CommandResult r, v1::RenewResponse* out) { *out = std::move(*r.mutable_renew()); });
}

grpc::ServerUnaryReactor* AllocatorService::GetAllocation(grpc::CallbackServerContext* ctx,
                                                          const v1::GetAllocationRequest* req,
                                                          v1::GetAllocationResponse* resp) {
  return Answer(ctx, fence_, resp, [this, req] { return reader_.GetAllocation(*req); });
}

grpc::ServerUnaryReactor* AllocatorService::ListAllocations(grpc::CallbackServerContext* ctx,
                                                            const v1::ListAllocationsRequest* req,
                                                            v1::ListAllocationsResponse* resp) {
  return Answer(ctx, fence_, resp, [this, req] { return reader_.ListAllocations(*req); });
}

grpc::ServerUnaryReactor* AllocatorService::GetHistory(grpc::CallbackServerContext* ctx,
                                                       const v1::GetHistoryRequest* req, v1::GetHistoryResponse* resp) {
  return Answer(ctx, fence_, resp, [this, req] { return reader_.GetHistory(*req); });
}

}  // namespace abode::allocator

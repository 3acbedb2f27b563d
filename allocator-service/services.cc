#include "allocator-service/services.h"

#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "google/protobuf/arena.h"
#include "domain/address.h"
#include "domain/allocation_commands.h"
#include "domain/pool_layout.h"
#include "domain/validation.h"

namespace abode::allocator {
namespace {

// The checks of a pool and a requested address; `field` prefixes the names ("" or "items[i].").
absl::Status CheckItem(const std::string& pool, const std::string& address, const std::string& field) {
  if (absl::Status s = domain::ValidateName(pool, field + "pool", false); !s.ok()) return s;
  if (!address.empty()) {
    if (auto a = domain::IpAddress::Parse(address, field + "address"); !a.ok()) return a.status();
  }
  return absl::OkStatus();
}

template <typename Request>
absl::Status CheckHolder(const Request& req) {
  if (absl::Status s = domain::ValidateOwner(req.owner(), "owner"); !s.ok()) return s;
  if (absl::Status s = domain::ValidateNodeName(req.node(), "node"); !s.ok()) return s;
  if (absl::Status s = domain::ValidateLabels(req.labels(), "labels"); !s.ok()) return s;
  if (req.ttl_seconds() < 0) return absl::InvalidArgumentError("ttl_seconds: must not be negative");
  return absl::OkStatus();
}

absl::Status CheckAllocate(const v1::AllocateRequest& req) {
  if (absl::Status s = CheckItem(req.pool(), req.address(), ""); !s.ok()) return s;
  return CheckHolder(req);
}

absl::Status CheckAllocateMany(const v1::AllocateManyRequest& req) {
  if (req.items().empty()) return absl::InvalidArgumentError("items: at least one item is required");
  if (req.items_size() > domain::kMaxAllocateItems) {
    return absl::InvalidArgumentError(absl::StrCat("items: ", req.items_size(), " items; at most ",
                                                   domain::kMaxAllocateItems, " are allowed"));
  }
  for (int i = 0; i < req.items_size(); ++i) {
    const std::string field = absl::StrCat("items[", i, "].");
    if (absl::Status s = CheckItem(req.items(i).pool(), req.items(i).address(), field); !s.ok()) return s;
  }
  return CheckHolder(req);
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
  if (auto layout = domain::PoolLayout::FromSpec(req->pool()); !layout.ok()) return FinishNow(ctx, layout.status());
  return Write(ctx, log_, *req, &v1::Command::mutable_create_pool, &v1::CommandResult::mutable_pool, resp);
}

grpc::ServerUnaryReactor* PoolsService::GetPool(grpc::CallbackServerContext* ctx, const v1::GetPoolRequest* req,
                                                v1::Pool* resp) {
  return ReadAndFinish(ctx, fence_, reads_, resp, [this, req] { return reader_.GetPool(*req); });
}

grpc::ServerUnaryReactor* PoolsService::ListPools(grpc::CallbackServerContext* ctx, const v1::ListPoolsRequest* req,
                                                  v1::ListPoolsResponse* resp) {
  return ReadAndFinish(ctx, fence_, reads_, resp, [this, req] { return reader_.ListPools(*req); });
}

grpc::ServerUnaryReactor* PoolsService::DeletePool(grpc::CallbackServerContext* ctx,
                                                   const v1::DeletePoolRequest* req, v1::DeletePoolResponse* resp) {
  if (absl::Status s = domain::ValidateName(req->name(), "name", false); !s.ok()) return FinishNow(ctx, s);
  return Write(ctx, log_, *req, &v1::Command::mutable_delete_pool, &v1::CommandResult::mutable_delete_pool, resp);
}

grpc::ServerUnaryReactor* AllocatorService::Allocate(grpc::CallbackServerContext* ctx, const v1::AllocateRequest* req,
                                                     v1::Allocation* resp) {
  if (absl::Status s = CheckAllocate(*req); !s.ok()) return FinishNow(ctx, s);
  v1::Command cmd;
  cmd.set_traceparent(TraceParent(ctx, req->traceparent()));
  *cmd.mutable_allocate() = *req;
  cmd.mutable_allocate()->clear_traceparent();
  return ProposeAndFinish(ctx, log_, std::move(cmd), &v1::CommandResult::mutable_allocation, resp);
}

grpc::ServerUnaryReactor* AllocatorService::AllocateMany(grpc::CallbackServerContext* ctx,
                                                         const v1::AllocateManyRequest* req,
                                                         v1::AllocateManyResponse* resp) {
  if (absl::Status s = CheckAllocateMany(*req); !s.ok()) return FinishNow(ctx, s);
  v1::Command cmd;
  cmd.set_traceparent(TraceParent(ctx, req->traceparent()));
  *cmd.mutable_allocate_many() = *req;
  cmd.mutable_allocate_many()->clear_traceparent();
  return ProposeAndFinish(ctx, log_, std::move(cmd), &v1::CommandResult::mutable_allocate_many, resp);
}

grpc::ServerUnaryReactor* AllocatorService::Release(grpc::CallbackServerContext* ctx, const v1::ReleaseRequest* req,
                                                    v1::ReleaseResponse* resp) {
  if (absl::Status s = CheckRelease(*req); !s.ok()) return FinishNow(ctx, s);
  return Write(ctx, log_, *req, &v1::Command::mutable_release, &v1::CommandResult::mutable_release, resp);
}

grpc::ServerUnaryReactor* AllocatorService::Renew(grpc::CallbackServerContext* ctx, const v1::RenewRequest* req,
                                                  v1::RenewResponse* resp) {
  if (absl::Status s = domain::ValidateOwner(req->owner(), "owner"); !s.ok()) return FinishNow(ctx, s);
  if (req->ttl_seconds() < 0) return FinishNow(ctx, absl::InvalidArgumentError("ttl_seconds: must not be negative"));
  return Write(ctx, log_, *req, &v1::Command::mutable_renew, &v1::CommandResult::mutable_renew, resp);
}

grpc::ServerUnaryReactor* AllocatorService::UpdateLabels(grpc::CallbackServerContext* ctx,
                                                         const v1::UpdateLabelsRequest* req,
                                                         v1::UpdateLabelsResponse* resp) {
  if (absl::Status s = domain::CheckUpdateLabelsRequest(*req); !s.ok()) return FinishNow(ctx, s);
  v1::Command cmd;
  cmd.set_traceparent(TraceParent(ctx, req->traceparent()));
  *cmd.mutable_update_labels() = *req;
  cmd.mutable_update_labels()->clear_traceparent();
  return ProposeAndFinish(ctx, log_, std::move(cmd), &v1::CommandResult::mutable_update_labels, resp);
}

grpc::ServerUnaryReactor* AllocatorService::GetAllocation(grpc::CallbackServerContext* ctx,
                                                          const v1::GetAllocationRequest* req,
                                                          v1::GetAllocationResponse* resp) {
  return ReadAndFinish(ctx, fence_, reads_, resp, [this, req] { return reader_.GetAllocation(*req); });
}

grpc::ServerUnaryReactor* AllocatorService::ListAllocations(grpc::CallbackServerContext* ctx,
                                                            const grpc::ByteBuffer* req, grpc::ByteBuffer* resp) {
  auto request = std::make_shared<v1::ListAllocationsRequest>();
  grpc::ByteBuffer bytes(*req);
  if (!grpc::SerializationTraits<v1::ListAllocationsRequest>::Deserialize(&bytes, request.get()).ok()) {
    return FinishNow(ctx, absl::InvalidArgumentError("request: not a ListAllocationsRequest"));
  }
  return ReadAndFinish(ctx, fence_, reads_, resp, [this, request]() -> absl::StatusOr<grpc::ByteBuffer> {
    // The page's messages and strings live on an arena: built and freed without a heap allocation each
    // (malloc and free were a third of the read thread's time on pages of 5,000).
    google::protobuf::ArenaOptions options;
    options.start_block_size = 64 << 10;
    options.max_block_size = 1 << 20;
    google::protobuf::Arena arena(options);
    auto* page = google::protobuf::Arena::CreateMessage<v1::ListAllocationsResponse>(&arena);
    if (absl::Status s = reader_.ListAllocationsInto(*request, page); !s.ok()) return s;
    grpc::ByteBuffer out;
    bool own = false;
    if (grpc::Status s = grpc::SerializationTraits<v1::ListAllocationsResponse>::Serialize(*page, &out, &own);
        !s.ok()) {
      return absl::InternalError(absl::StrCat("the page could not be serialised: ", s.error_message()));
    }
    return out;  // the arena and the page's messages are freed here, on the read thread
  });
}

grpc::ServerUnaryReactor* AllocatorService::GetHistory(grpc::CallbackServerContext* ctx,
                                                       const v1::GetHistoryRequest* req, v1::GetHistoryResponse* resp) {
  return ReadAndFinish(ctx, fence_, reads_, resp, [this, req] { return reader_.GetHistory(*req); });
}

}  // namespace abode::allocator

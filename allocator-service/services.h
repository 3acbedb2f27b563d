// gRPC services of the allocator: the Pools and Allocator APIs on the callback API. Writes become commands
// proposed to the CommandLog and finish when their outcome comes back; nothing blocks a reactor. Reads
// run on the StateReader's own SQLite connections, on the read executor, once the ReadFence lets them
// (linearizable by default; gRPC metadata "abode-read-stale: true" asks for this replica's possibly stale
// state). Without a fence, reads go straight to the reader (see service_calls.h).
#ifndef ABODE_ALLOCATOR_SERVICE_SERVICES_H_
#define ABODE_ALLOCATOR_SERVICE_SERVICES_H_

#include <grpcpp/support/byte_buffer.h>

#include "abode/v1/allocator.grpc.pb.h"
#include "abode/v1/pools.grpc.pb.h"
#include "allocator-service/service_calls.h"
#include "replication/command_log.h"
#include "replication/read_fence.h"
#include "storage/state_reader.h"

namespace abode::allocator {

class PoolsService final : public v1::Pools::CallbackService {
 public:
  // `fence` and `reads` may be null (see ReadAndFinish); all outlive the service.
  PoolsService(replication::CommandLog& log, storage::StateReader& reader, replication::ReadFence* fence = nullptr,
               ReadExecutor* reads = nullptr)
      : log_(log), reader_(reader), fence_(fence), reads_(reads) {}

  grpc::ServerUnaryReactor* CreatePool(grpc::CallbackServerContext* ctx, const v1::CreatePoolRequest* req,
                                       v1::Pool* resp) override;
  grpc::ServerUnaryReactor* GetPool(grpc::CallbackServerContext* ctx, const v1::GetPoolRequest* req,
                                    v1::Pool* resp) override;
  grpc::ServerUnaryReactor* ListPools(grpc::CallbackServerContext* ctx, const v1::ListPoolsRequest* req,
                                      v1::ListPoolsResponse* resp) override;
  grpc::ServerUnaryReactor* DeletePool(grpc::CallbackServerContext* ctx, const v1::DeletePoolRequest* req,
                                       v1::DeletePoolResponse* resp) override;

 private:
  replication::CommandLog& log_;
  storage::StateReader& reader_;
  replication::ReadFence* fence_;
  ReadExecutor* reads_;
};

// ListAllocations is a raw method: a page (up to 5,000 allocations, ~0.5 MB) is built, serialised and freed on
// a read thread, and gRPC's threads, which carry writes too, only send its bytes.
// Every method of v1.Allocator on the callback API, ListAllocations raw (a method left out of this list would
// answer UNIMPLEMENTED).
using AllocatorCallbackService = v1::Allocator::WithCallbackMethod_Allocate<
    v1::Allocator::WithCallbackMethod_AllocateMany<v1::Allocator::WithCallbackMethod_Release<
        v1::Allocator::WithCallbackMethod_Renew<v1::Allocator::WithCallbackMethod_UpdateLabels<
            v1::Allocator::WithCallbackMethod_GetAllocation<v1::Allocator::WithRawCallbackMethod_ListAllocations<
                v1::Allocator::WithCallbackMethod_GetHistory<v1::Allocator::Service>>>>>>>>;

class AllocatorService final : public AllocatorCallbackService {
 public:
  using AllocatorCallbackService::ListAllocations;  // the synchronous one stays visible (and unused)

  // `fence` and `reads` may be null (see ReadAndFinish); all outlive the service.
  AllocatorService(replication::CommandLog& log, storage::StateReader& reader, replication::ReadFence* fence = nullptr,
                   ReadExecutor* reads = nullptr)
      : log_(log), reader_(reader), fence_(fence), reads_(reads) {}

  grpc::ServerUnaryReactor* Allocate(grpc::CallbackServerContext* ctx, const v1::AllocateRequest* req,
                                     v1::Allocation* resp) override;
  grpc::ServerUnaryReactor* AllocateMany(grpc::CallbackServerContext* ctx, const v1::AllocateManyRequest* req,
                                         v1::AllocateManyResponse* resp) override;
  grpc::ServerUnaryReactor* Release(grpc::CallbackServerContext* ctx, const v1::ReleaseRequest* req,
                                    v1::ReleaseResponse* resp) override;
  grpc::ServerUnaryReactor* Renew(grpc::CallbackServerContext* ctx, const v1::RenewRequest* req,
                                  v1::RenewResponse* resp) override;
  grpc::ServerUnaryReactor* UpdateLabels(grpc::CallbackServerContext* ctx, const v1::UpdateLabelsRequest* req,
                                         v1::UpdateLabelsResponse* resp) override;
  grpc::ServerUnaryReactor* GetAllocation(grpc::CallbackServerContext* ctx, const v1::GetAllocationRequest* req,
                                          v1::GetAllocationResponse* resp) override;
  // A v1.ListAllocationsRequest in, a v1.ListAllocationsResponse out, serialised.
  grpc::ServerUnaryReactor* ListAllocations(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* req,
                                            grpc::ByteBuffer* resp) override;
  grpc::ServerUnaryReactor* GetHistory(grpc::CallbackServerContext* ctx, const v1::GetHistoryRequest* req,
                                       v1::GetHistoryResponse* resp) override;

 private:
  replication::CommandLog& log_;
  storage::StateReader& reader_;
  replication::ReadFence* fence_;
  ReadExecutor* reads_;
};

}  // namespace abode::allocator

#endif  // ABODE_ALLOCATOR_SERVICE_SERVICES_H_

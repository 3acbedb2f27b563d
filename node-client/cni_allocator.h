// What abode-node's CNI service needs from the allocator, behind an interface: the gRPC implementation holds
// one warm channel per allocator endpoint; tests substitute an in-memory allocator.
#ifndef ABODE_NODE_CLIENT_CNI_ALLOCATOR_H_
#define ABODE_NODE_CLIENT_CNI_ALLOCATOR_H_

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tracing/tracer.h"
#include "abode/v1/allocator.pb.h"
#include "abode/v1/pools.pb.h"

namespace abode::node {

// Each call is bounded by `deadline` and carries `traceparent` (W3C) to the allocator.
struct CallContext {
  std::chrono::system_clock::time_point deadline;
  std::string traceparent;
};

class CniAllocator {
 public:
  virtual ~CniAllocator() = default;
  // Thread-safe. Errors are the allocator's codes; UNAVAILABLE or DEADLINE_EXCEEDED when it cannot be
  // reached in time.
  virtual absl::StatusOr<v1::Pool> GetPool(const std::string& name, const CallContext& ctx) = 0;
  virtual absl::StatusOr<v1::Pool> CreatePool(const v1::PoolSpec& spec, const CallContext& ctx) = 0;
  virtual absl::StatusOr<v1::Allocation> Allocate(const v1::AllocateRequest& request, const CallContext& ctx) = 0;
  // All the items or none, by one replicated command.
  virtual absl::StatusOr<v1::AllocateManyResponse> AllocateMany(const v1::AllocateManyRequest& request,
                                                                const CallContext& ctx) = 0;
  virtual absl::StatusOr<v1::ReleaseResponse> Release(const v1::ReleaseRequest& request, const CallContext& ctx) = 0;
  virtual absl::StatusOr<v1::GetAllocationResponse> GetAllocation(const v1::GetAllocationRequest& request,
                                                                  const CallContext& ctx) = 0;
  virtual absl::StatusOr<v1::ListAllocationsResponse> ListAllocations(const v1::ListAllocationsRequest& request,
                                                                      const CallContext& ctx) = 0;
};

// Over gRPC to `endpoints` (host:port). A call that finds its endpoint unavailable moves on to the next one
// until its deadline; channels reconnect within a second of an allocator coming back.
// With `tracer` (outliving the allocator), each call gets a client span under the caller's traceparent.
std::unique_ptr<CniAllocator> NewGrpcCniAllocator(const std::vector<std::string>& endpoints,
                                                  tracing::Tracer* tracer = nullptr);

}  // namespace abode::node

#endif  // ABODE_NODE_CLIENT_CNI_ALLOCATOR_H_

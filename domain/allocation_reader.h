// The domain's view of the stored allocations: what the command handlers read, implemented by the engine
// over its store (storage/) and by an in-memory fake in the domain's tests.
#ifndef ABODE_DOMAIN_ALLOCATION_READER_H_
#define ABODE_DOMAIN_ALLOCATION_READER_H_

#include <cstdint>
#include <vector>

#include "abode/v1/allocator.pb.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "domain/address.h"

namespace abode::domain {

// A stored allocation and its row id.
struct StoredAllocation {
  int64_t row_id = 0;
  v1::Allocation allocation;
};
using StoredAllocations = std::vector<StoredAllocation>;

// What the allocation commands read of the stored allocations. Every allocation comes with its pool's name,
// prefix length and gateway.
class AllocationReader {
 public:
  virtual ~AllocationReader() = default;
  // The allocations of `owner` (only in pool `pool_id`, if not 0), by pool id, then row id.
  virtual absl::StatusOr<StoredAllocations> OfOwner(absl::string_view owner, int64_t pool_id) = 0;
  // The allocations of `address` in `network` (at most one while the store is sound).
  virtual absl::StatusOr<StoredAllocations> AtAddress(absl::string_view network, const IpAddress& address) = 0;
  // The allocations of pool `pool_id`, by row id.
  virtual absl::StatusOr<StoredAllocations> InPool(int64_t pool_id) = 0;
  // The allocations made through `node`, by row id.
  virtual absl::StatusOr<StoredAllocations> OnNode(absl::string_view node) = 0;
  // Up to `limit` allocations whose lease ended at or before `time_ms`, by expiry, then row id.
  virtual absl::StatusOr<StoredAllocations> ExpiredAt(int64_t time_ms, int limit) = 0;
};

// What the node commands read of the stored allocations.
class AllocationScan {
 public:
  virtual ~AllocationScan() = default;
  // Visits the stored allocations of `owner`, or every one when `owner` is empty, each with its pool's name.
  virtual absl::Status ForEach(absl::string_view owner, absl::FunctionRef<void(v1::Allocation)> visit) = 0;
};

}  // namespace abode::domain

#endif  // ABODE_DOMAIN_ALLOCATION_READER_H_

// The pools as a replica's state holds them, listed: what a reader of pool figures (the metrics) needs of
// the read side. Implemented by StateReader (state_reader.h) and by fakes in tests.
#ifndef ABODE_STORAGE_POOL_LISTING_H_
#define ABODE_STORAGE_POOL_LISTING_H_

#include "abode/v1/pools.pb.h"
#include "absl/status/statusor.h"

namespace abode::storage {

class PoolListing {
 public:
  virtual ~PoolListing() = default;
  // Thread-safe.
  virtual absl::StatusOr<v1::ListPoolsResponse> ListPools(const v1::ListPoolsRequest& req) = 0;
};

}  // namespace abode::storage

#endif  // ABODE_STORAGE_POOL_LISTING_H_

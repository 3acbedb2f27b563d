// Read-only queries over the materialised state, on connections of their own so that readers never wait
// for the writer (WAL). Of the state machine's memory they use only the owner index, to find an owner's rows
// (see owner_index.h). Thread-safe.
#ifndef ABODE_STORAGE_STATE_READER_H_
#define ABODE_STORAGE_STATE_READER_H_

#include <memory>
#include <string>
#include <vector>

#include "abode/v1/allocator.pb.h"
#include "abode/v1/pools.pb.h"
#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "storage/owner_index.h"
#include "storage/pool_listing.h"
#include "storage/sqlite.h"

namespace abode::storage {

class StateReader final : public PoolListing {
 public:
  // REQUIRES: the state machine has created the database at db_path.
  // `owners` is the state machine's owner index (StateMachine::owner_index()).
  static absl::StatusOr<std::unique_ptr<StateReader>> Open(const std::string& db_path,
                                                           std::shared_ptr<OwnerIndex> owners);

  absl::StatusOr<v1::Pool> GetPool(const v1::GetPoolRequest& req);
  absl::StatusOr<v1::ListPoolsResponse> ListPools(const v1::ListPoolsRequest& req) override;
  absl::StatusOr<v1::GetAllocationResponse> GetAllocation(const v1::GetAllocationRequest& req);
  absl::StatusOr<v1::ListAllocationsResponse> ListAllocations(const v1::ListAllocationsRequest& req);
  // The same page, built into `out` (empty), which may live on a protobuf arena: a page of 5,000
  // allocations is then built and freed without a heap allocation per message and string.
  absl::Status ListAllocationsInto(const v1::ListAllocationsRequest& req, v1::ListAllocationsResponse* out);
  absl::StatusOr<v1::GetHistoryResponse> GetHistory(const v1::GetHistoryRequest& req);
  absl::StatusOr<uint64_t> Revision();

 private:
  class Lease;  // a pooled connection, returned on destruction

  StateReader(std::string db_path, std::shared_ptr<OwnerIndex> owners)
      : db_path_(std::move(db_path)), owners_(std::move(owners)) {}
  absl::StatusOr<std::unique_ptr<Database>> Acquire();
  void Return(std::unique_ptr<Database> db);

  const std::string db_path_;
  const std::shared_ptr<OwnerIndex> owners_;
  absl::Mutex mu_;
  std::vector<std::unique_ptr<Database>> idle_ ABSL_GUARDED_BY(mu_);
};

}  // namespace abode::storage

#endif  // ABODE_STORAGE_STATE_READER_H_

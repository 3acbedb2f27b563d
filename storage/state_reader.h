// Read-only queries over the materialised state, on connections of their own so that readers never wait
// for the writer (WAL) and never touch the state machine's memory. Thread-safe.
#ifndef ABODE_STORAGE_STATE_READER_H_
#define ABODE_STORAGE_STATE_READER_H_

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "abode/v1/allocator.pb.h"
#include "abode/v1/pools.pb.h"
#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "storage/sqlite.h"

namespace abode::storage {

class StateReader {
 public:
  // REQUIRES: the state machine has created the database at db_path.
  static absl::StatusOr<std::unique_ptr<StateReader>> Open(const std::string& db_path);

  absl::StatusOr<v1::Pool> GetPool(const v1::GetPoolRequest& req);
  absl::StatusOr<v1::ListPoolsResponse> ListPools(const v1::ListPoolsRequest& req);
  absl::StatusOr<v1::GetAllocationResponse> GetAllocation(const v1::GetAllocationRequest& req);
  absl::StatusOr<v1::ListAllocationsResponse> ListAllocations(const v1::ListAllocationsRequest& req);
  absl::StatusOr<v1::GetHistoryResponse> GetHistory(const v1::GetHistoryRequest& req);
  absl::StatusOr<uint64_t> Revision();

 private:
  class Lease;  // a pooled connection, returned on destruction

  explicit StateReader(std::string db_path) : db_path_(std::move(db_path)) {}
  absl::StatusOr<std::unique_ptr<Database>> Acquire();
  void Return(std::unique_ptr<Database> db);

  const std::string db_path_;
  std::mutex mu_;
  std::vector<std::unique_ptr<Database>> idle_ ABSL_GUARDED_BY(mu_);
};

}  // namespace abode::storage

#endif  // ABODE_STORAGE_STATE_READER_H_

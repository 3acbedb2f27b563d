// Decoding of database rows into API messages, shared by the state machine and the readers.
#ifndef ABODE_STORAGE_ROWS_H_
#define ABODE_STORAGE_ROWS_H_

#include <cstdint>
#include <string>

#include "abode/v1/allocator.pb.h"
#include "storage/sqlite.h"

namespace abode::storage {

// What an allocation message needs from its pool.
struct PoolFacts {
  std::string name;
  int prefix_length = 0;
  std::string gateway;
};

// Reads kAllocationColumns starting at column `first`.
void AllocationFromRow(const Statement& row, int first, const PoolFacts& pool, v1::Allocation* out);
// Reads kHistoryColumns starting at column `first`.
void HistoryFromRow(const Statement& row, int first, v1::HistoryEntry* out);

inline int64_t RowId(const Statement& row, int first) { return row.Int(first); }
inline int64_t RowPoolId(const Statement& row, int first) { return row.Int(first + 1); }

}  // namespace abode::storage

#endif  // ABODE_STORAGE_ROWS_H_

// When a caller stops waiting for an answer.
#ifndef ABODE_REPLICATION_DEADLINE_H_
#define ABODE_REPLICATION_DEADLINE_H_

#include <chrono>

namespace abode::replication {

// gRPC's clock: the system clock. kNoDeadline: never.
using Deadline = std::chrono::system_clock::time_point;
inline constexpr Deadline kNoDeadline = Deadline::max();

}  // namespace abode::replication

#endif  // ABODE_REPLICATION_DEADLINE_H_

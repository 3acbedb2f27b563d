// What the leader's housekeeper (housekeeper.h) needs of its replica: whether it leads, the earliest
// expiry, and a way to propose here. Implemented over the raft node and the store (server.cc), and by a fake
// in the housekeeper's tests.
#ifndef ABODE_ALLOCATOR_SERVICE_HOUSEKEEPING_HOST_H_
#define ABODE_ALLOCATOR_SERVICE_HOUSEKEEPING_HOST_H_

#include <cstdint>
#include <optional>

#include "abode/v1/commands.pb.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "replication/command_log.h"

namespace abode::allocator {

class HousekeepingHost {
 public:
  using ExpiryDone = absl::AnyInvocable<void(absl::StatusOr<std::optional<int64_t>>) &&>;
  virtual ~HousekeepingHost() = default;
  virtual bool Leads() = 0;
  // The earliest expiry among allocations with a TTL (nullopt: none). `done` runs once, on any thread.
  virtual void EarliestExpiry(ExpiryDone done) = 0;
  // Proposes at this replica only (never forwarded): UNAVAILABLE when it no longer leads.
  virtual void ProposeHere(v1::Command command, replication::CommandLog::Done done) = 0;
};

}  // namespace abode::allocator

#endif  // ABODE_ALLOCATOR_SERVICE_HOUSEKEEPING_HOST_H_

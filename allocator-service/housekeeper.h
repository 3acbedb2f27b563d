// The leader's domain housekeeping: reclaiming expired allocations and pruning old history. Neither touches
// the state directly: the leader proposes ExpireAllocations and PruneHistory through the command log like
// any other change, stamped with the leader's time, so every replica applies the same thing.
//
// Every interval_ms (an injected timer) the housekeeper, when this replica leads: reads the earliest expiry
// (between two applies) and proposes ExpireAllocations once it is due, never a second one while one is in
// flight; and, every prune_interval_ms of the injected clock, proposes PruneHistory of what ended more than
// history_retention_ms ago.
//
// Threading: thread-safe. Ticks run on the timer's thread; the host's callbacks on whichever thread the
// host runs them (the raft loop, a completion thread). `mu_` is taken last: nothing is called while it is
// held.
#ifndef ABODE_ALLOCATOR_SERVICE_HOUSEKEEPER_H_
#define ABODE_ALLOCATOR_SERVICE_HOUSEKEEPER_H_

#include <cstdint>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "allocator-service/housekeeping_host.h"
#include "allocator-service/timers.h"
#include "replication/clock.h"

namespace abode::allocator {

struct HousekeeperOptions {
  int64_t interval_ms = 1000;     // how often the leader looks for expired allocations
  int64_t history_retention_ms = int64_t{30} * 24 * 3600 * 1000;  // 0 keeps history forever
  int64_t prune_interval_ms = 60'000;
  replication::Clock* clock = nullptr;  // required; outlives the housekeeper
  Timers* timers = nullptr;             // required; outlives the housekeeper
};

class Housekeeper {
 public:
  // Starts the timer. `host` outlives the housekeeper.
  Housekeeper(HousekeepingHost& host, HousekeeperOptions options);
  Housekeeper(const Housekeeper&) = delete;
  Housekeeper& operator=(const Housekeeper&) = delete;
  // Stops the timer. REQUIRES: no host callback is still to come (stop the host first).
  ~Housekeeper() = default;

  // Stops the timer; once it returns no tick runs. Idempotent.
  void Stop();
  // One round, as the timer runs it.
  void Tick();

 private:
  void ProposeExpiry() ABSL_LOCKS_EXCLUDED(mu_);

  HousekeepingHost& host_;
  const HousekeeperOptions options_;
  absl::Mutex mu_;
  bool expire_pending_ ABSL_GUARDED_BY(mu_) = false;  // an expiry check or proposal is under way
  int64_t last_prune_ms_ ABSL_GUARDED_BY(mu_) = 0;
  std::unique_ptr<PeriodicTimer> timer_;  // last: stops first
};

}  // namespace abode::allocator

#endif  // ABODE_ALLOCATOR_SERVICE_HOUSEKEEPER_H_

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
#include <optional>

#include "abode/v1/commands.pb.h"
#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "allocator-service/timers.h"
#include "replication/clock.h"
#include "replication/command_log.h"

namespace abode::allocator {

// What the housekeeper needs of the replica; implemented over the raft node and the store (server.cc).
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

#include "allocator-service/housekeeper.h"

#include <utility>

#include "spdlog/spdlog.h"

namespace abode::allocator {

Housekeeper::Housekeeper(HousekeepingHost& host, HousekeeperOptions options)
    : host_(host), options_(std::move(options)) {
  timer_ = options_.timers->Every(options_.interval_ms, [this] { Tick(); });
}

void Housekeeper::Stop() { timer_.reset(); }

void Housekeeper::Tick() {
  if (!host_.Leads()) return;
  const int64_t now = options_.clock->NowUnixMs();
  bool check_expiry = false;
  bool prune = false;
  {
    absl::MutexLock lock(&mu_);
    if (!expire_pending_) {
      expire_pending_ = true;
      check_expiry = true;
    }
    if (options_.history_retention_ms > 0 && now - last_prune_ms_ >= options_.prune_interval_ms) {
      last_prune_ms_ = now;
      prune = true;
    }
  }
  if (check_expiry) {
    host_.EarliestExpiry([this, now](absl::StatusOr<std::optional<int64_t>> next) {
      if (next.ok() && next->has_value() && **next <= now) {
        ProposeExpiry();
        return;
      }
      absl::MutexLock lock(&mu_);
      expire_pending_ = false;
    });
  }
  if (prune) {
    v1::Command command;
    command.mutable_prune_history()->set_older_than_unix_ms(now - options_.history_retention_ms);
    host_.ProposeHere(std::move(command), [](replication::CommandOutcome) {});
  }
}

void Housekeeper::ProposeExpiry() {
  v1::Command command;
  command.mutable_expire_allocations();
  host_.ProposeHere(std::move(command), [this](replication::CommandOutcome o) {
    if (o.ok() && o->changed() > 0) spdlog::info("reclaimed {} expired allocations", o->changed());
    absl::MutexLock lock(&mu_);
    expire_pending_ = false;
  });
}

}  // namespace abode::allocator

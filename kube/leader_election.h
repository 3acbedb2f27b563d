// Leader election on a coordination.k8s.io/v1 Lease, as client-go does it: the holder renews renewTime
// every retry period; another candidate takes the Lease over only when it has seen the same record unchanged
// for leaseDurationSeconds on its own clock (never by comparing clocks across machines); every write is a
// create or a PUT carrying the resourceVersion it read, so two candidates never both win (the loser gets
// 409 and stays a follower).
//
// A leader that has not renewed successfully within the renew deadline stops being leader at once, before
// the Lease can expire for the others, so two abode-kube processes never write at once.
//
// Thread safety: TryAcquireOrRenew / Run / Release on one thread; is_leader from any thread.
#ifndef ABODE_KUBE_LEADER_ELECTION_H_
#define ABODE_KUBE_LEADER_ELECTION_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "kube/client.h"
#include "kube/stop_signal.h"
#include "replication/clock.h"

namespace abode::kube {

struct LeaseOptions {
  std::string lease_namespace;
  std::string lease_name;
  std::string identity;
  int64_t lease_duration_ms = 15'000;
  int64_t renew_deadline_ms = 10'000;  // < lease_duration_ms
  int64_t retry_period_ms = 2'000;
};

// "2026-12-06T01:02:03.456789Z" (metav1.MicroTime) and back (0 when unreadable).
std::string MicroTime(int64_t unix_ms);
int64_t ParseMicroTime(const std::string& text);

class LeaderElector {
 public:
  // `client` and `clock` outlive this.
  LeaderElector(KubeClient& client, replication::Clock& clock, LeaseOptions options);

  // One round: read the Lease; create it, renew it (when held), or take it over (when expired); returns
  // whether this candidate leads afterwards. Errors reaching the server count as not renewed.
  absl::StatusOr<bool> TryAcquireOrRenew();
  // Rounds every retry period until stopped; `on_change(leading)` on every transition. Releases the Lease
  // on the way out when leading, so a successor need not wait for it to expire.
  void Run(const StopSignal& stop, const std::function<void(bool leading)>& on_change);
  // Gives the Lease up (holder cleared) if this candidate holds it.
  absl::Status Release();

  // Leading, and renewed within the renew deadline (by the injected clock).
  bool is_leader() const;
  uint64_t transitions() const { return transitions_.load(); }
  // Changes whenever this candidate takes the Lease (created, or taken from another holder or from none),
  // and not when it renews its own record, also after a lapse (an API server out for longer than the renew
  // deadline): the same epoch means nobody else can have led in between.
  uint64_t epoch() const { return epoch_.load(); }

 private:
  json LeaseBody(const json& previous, bool take_over) const;

  KubeClient& client_;
  replication::Clock& clock_;
  const LeaseOptions options_;
  const std::string path_;
  const std::string collection_;

  // What this candidate saw of the record, and when (its own clock): the basis of expiry.
  std::string observed_holder_;
  std::string observed_renew_;
  int64_t observed_at_ms_ = 0;

  std::atomic<bool> leading_{false};
  std::atomic<int64_t> renewed_at_ms_{0};
  std::atomic<uint64_t> transitions_{0};
  std::atomic<uint64_t> epoch_{0};
};

}  // namespace abode::kube

#endif  // ABODE_KUBE_LEADER_ELECTION_H_

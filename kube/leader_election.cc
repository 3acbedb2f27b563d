#include "kube/leader_election.h"

#include <cstdio>
#include <ctime>

#include "absl/strings/str_cat.h"

namespace abode::kube {

std::string MicroTime(int64_t unix_ms) {
  const std::time_t secs = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(unix_ms % 1000) * 1000);
  return buf;
}

int64_t ParseMicroTime(const std::string& text) {
  std::tm tm{};
  int micros = 0;
  char z = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d.%6d%c", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                  &tm.tm_min, &tm.tm_sec, &micros, &z) != 8 || z != 'Z') {
    if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                    &tm.tm_min, &tm.tm_sec) != 6) {
      return 0;
    }
    micros = 0;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<int64_t>(timegm(&tm)) * 1000 + micros / 1000;
}

LeaderElector::LeaderElector(KubeClient& client, replication::Clock& clock, LeaseOptions options)
    : client_(client),
      clock_(clock),
      options_(std::move(options)),
      path_(ResourcePath("coordination.k8s.io/v1", "leases", options_.lease_namespace, options_.lease_name)),
      collection_(ResourcePath("coordination.k8s.io/v1", "leases", options_.lease_namespace)) {}

json LeaderElector::LeaseBody(const json& previous, bool take_over) const {
  json lease = previous.is_object() ? previous : json::object();
  lease["apiVersion"] = "coordination.k8s.io/v1";
  lease["kind"] = "Lease";
  lease["metadata"]["name"] = options_.lease_name;
  lease["metadata"]["namespace"] = options_.lease_namespace;
  json& spec = lease["spec"];
  const std::string now = MicroTime(clock_.NowUnixMs());
  if (take_over || !spec.contains("acquireTime")) {
    spec["acquireTime"] = now;
    spec["leaseTransitions"] = spec.value("leaseTransitions", 0) + (previous.is_object() ? 1 : 0);
  }
  spec["holderIdentity"] = options_.identity;
  spec["leaseDurationSeconds"] = (options_.lease_duration_ms + 999) / 1000;
  spec["renewTime"] = now;
  return lease;
}

absl::StatusOr<bool> LeaderElector::TryAcquireOrRenew() {
  const int64_t now = clock_.NowUnixMs();
  auto current = client_.Get(path_);
  absl::Status wrote;
  bool taken = true;  // from nobody or from another holder, rather than our own record renewed
  if (current.status().code() == absl::StatusCode::kNotFound) {
    wrote = client_.Create(collection_, LeaseBody(json(), true)).status();
  } else if (!current.ok()) {
    wrote = current.status();
  } else {
    const json spec = current->value("spec", json::object());
    const std::string holder = spec.value("holderIdentity", std::string());
    const std::string renew = spec.value("renewTime", std::string());
    if (holder != observed_holder_ || renew != observed_renew_ || observed_at_ms_ == 0) {
      observed_holder_ = holder;
      observed_renew_ = renew;
      observed_at_ms_ = now;
    }
    const int64_t duration_ms = spec.value("leaseDurationSeconds", 15) * int64_t{1000};
    const bool mine = holder == options_.identity;
    const bool free = holder.empty() || now - observed_at_ms_ >= duration_ms;
    if (!mine && !free) {
      leading_ = false;
      return false;
    }
    // The PUT carries the resourceVersion read: a concurrent writer makes it 409 ABORTED.
    wrote = client_.Replace(path_, LeaseBody(*current, !mine)).status();
    taken = !mine;
  }
  if (!wrote.ok()) {
    // Not renewed this round: still leading only while the last renewal is within the deadline.
    if (leading_ && now - renewed_at_ms_.load() >= options_.renew_deadline_ms) leading_ = false;
    if (wrote.code() == absl::StatusCode::kAborted || wrote.code() == absl::StatusCode::kAlreadyExists) return false;
    return wrote;
  }
  if (!leading_) transitions_.fetch_add(1);
  if (taken) epoch_.fetch_add(1);
  renewed_at_ms_ = now;
  leading_ = true;
  observed_holder_ = options_.identity;
  observed_at_ms_ = now;
  return true;
}

bool LeaderElector::is_leader() const {
  return leading_.load() && clock_.NowUnixMs() - renewed_at_ms_.load() < options_.renew_deadline_ms;
}

absl::Status LeaderElector::Release() {
  if (!leading_) return absl::OkStatus();
  leading_ = false;
  auto current = client_.Get(path_);
  if (!current.ok()) return current.status();
  if ((*current)["spec"].value("holderIdentity", std::string()) != options_.identity) return absl::OkStatus();
  (*current)["spec"]["holderIdentity"] = "";
  (*current)["spec"]["leaseDurationSeconds"] = 1;
  return client_.Replace(path_, *current).status();
}

void LeaderElector::Run(const StopSignal& stop, const std::function<void(bool leading)>& on_change) {
  bool was = false;
  while (!stop.stopped()) {
    (void)TryAcquireOrRenew();
    const bool now = is_leader();
    if (now != was && on_change) on_change(now);
    was = now;
    if (stop.Sleep(options_.retry_period_ms)) break;
  }
  if (was) {
    (void)Release();
    if (on_change) on_change(false);
  }
}

}  // namespace abode::kube

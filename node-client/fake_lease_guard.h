// In-memory twin of LeaseGuard, for tests of code that drives it.
#ifndef ABODE_NODE_CLIENT_FAKE_LEASE_GUARD_H_
#define ABODE_NODE_CLIENT_FAKE_LEASE_GUARD_H_

#include <chrono>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include "lease_guard.h"

namespace abode::node {

class FakeLeaseGuard final : public LeaseGuard {
 public:
  absl::StatusOr<bool> Guard(const std::set<std::string>& guarded, std::chrono::milliseconds lease_left) override {
    if (!fail_.ok()) return std::exchange(fail_, absl::OkStatus());
    if (guarded_ == guarded) return false;
    guarded_ = guarded;
    ++batches_;
    lease_left_ = lease_left;
    return true;
  }
  absl::Status Renew(std::chrono::milliseconds lease_left) override {
    if (!fail_.ok()) return std::exchange(fail_, absl::OkStatus());
    if (!guarded_) return absl::FailedPreconditionError("never guarded");
    ++batches_;
    ++renewals_;
    lease_left_ = lease_left;
    return absl::OkStatus();
  }

  // As the kernel would hold after an earlier process: the next Guard() of exactly this set sends nothing.
  void SetKernelState(std::set<std::string> guarded) { guarded_ = std::move(guarded); }
  // The next call returns `status` and changes nothing.
  void FailNext(absl::Status status) { fail_ = std::move(status); }

  const std::optional<std::set<std::string>>& guarded() const { return guarded_; }
  int batches() const { return batches_; }    // batches sent (Guard changes and renewals)
  int renewals() const { return renewals_; }  // Renew() calls that succeeded
  std::chrono::milliseconds lease_left() const { return lease_left_; }  // of the last batch

 private:
  std::optional<std::set<std::string>> guarded_;
  absl::Status fail_;
  int batches_ = 0;
  int renewals_ = 0;
  std::chrono::milliseconds lease_left_{0};
};

}  // namespace abode::node

#endif  // ABODE_NODE_CLIENT_FAKE_LEASE_GUARD_H_

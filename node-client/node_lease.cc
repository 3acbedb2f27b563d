#include "node_lease.h"

#include <utility>

namespace abode::node {

NodeLease::NodeLease(std::function<Clock::time_point()> now) : now_(std::move(now)) {}

void NodeLease::Renew(Clock::time_point sent_at, std::chrono::milliseconds lease) {
  std::lock_guard<std::mutex> lock(mu_);
  length_ = lease;
  const Clock::time_point until = sent_at + lease;
  if (!until_ || until > *until_) until_ = until;
}

std::optional<NodeLease::Clock::time_point> NodeLease::Until() const {
  std::lock_guard<std::mutex> lock(mu_);
  return until_;
}

bool NodeLease::Valid() const {
  std::optional<Clock::time_point> until = Until();
  return until && now_() < *until;
}

std::chrono::milliseconds NodeLease::length() const {
  std::lock_guard<std::mutex> lock(mu_);
  return length_;
}

}  // namespace abode::node

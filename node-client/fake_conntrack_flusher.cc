#include "fake_conntrack_flusher.h"

#include <utility>

namespace abode::node {

absl::StatusOr<int> FakeConntrackFlusher::Flush(const std::vector<ConntrackFilter>& filters) {
  if (absl::Status s = std::exchange(fail_flush_, absl::OkStatus()); !s.ok()) return s;
  ++calls_;
  flushed_.insert(flushed_.end(), filters.begin(), filters.end());
  return 0;
}

}  // namespace abode::node

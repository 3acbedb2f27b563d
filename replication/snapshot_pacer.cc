#include "replication/snapshot_pacer.h"

#include <algorithm>
#include <limits>

namespace abode::replication {

namespace {
// Weight of each new entry in the running mean: about the last thousand entries count.
constexpr double kMeanWeight = 1.0 / 1024;
}  // namespace

void SnapshotPacer::OnEntry(size_t bytes) {
  const double b = static_cast<double>(bytes);
  mean_entry_bytes_ = mean_entry_bytes_ == 0 ? b : mean_entry_bytes_ + (b - mean_entry_bytes_) * kMeanWeight;
}

unsigned SnapshotPacer::threshold() const {
  // Written so that a ratio that is not a positive number (NaN included) keeps the minimum.
  double entries = static_cast<double>(min_entries_);
  if (log_ratio_ > 0 && snapshot_bytes_ != 0 && mean_entry_bytes_ >= 1) {
    entries = std::max(entries, static_cast<double>(snapshot_bytes_) * log_ratio_ / mean_entry_bytes_);
  }
  if (stagger_ > 0) entries *= 1 + stagger_;
  constexpr unsigned kMost = std::numeric_limits<unsigned>::max();
  if (!(entries < static_cast<double>(kMost))) return kMost;
  return static_cast<unsigned>(entries);
}

}  // namespace abode::replication

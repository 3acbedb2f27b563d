// How many raft log entries go between snapshots.
//
// A snapshot serialises the whole state (~1 us per stored row here). With a fixed number of entries between
// snapshots, that cost per command grows with the state: at 1,000,000 allocations a snapshot every 8,192
// entries (~150,000 allocations at 64 clients) costs each replica about as much CPU as applying the
// allocations themselves. The pacer instead lets the log since the last snapshot grow to a fixed fraction
// of that snapshot's size in bytes, so the snapshot cost per command stays bounded whatever the size of the
// state, and the log kept in memory between snapshots stays a fraction of the state. It never goes below
// the configured minimum, which is all a small state gets. Replicas stagger their thresholds a little, so
// that they do not all serialise the same state at the same index, at the same moment.
#ifndef ABODE_REPLICATION_SNAPSHOT_PACER_H_
#define ABODE_REPLICATION_SNAPSHOT_PACER_H_

#include <cstddef>
#include <cstdint>

namespace abode::replication {

class SnapshotPacer {
 public:
  // `log_ratio`: log bytes between snapshots per byte of the last snapshot; 0 keeps `min_entries` always.
  // `stagger`: this replica's thresholds are (1 + stagger) times the others' (see StaggerFor).
  SnapshotPacer(unsigned min_entries, double log_ratio, double stagger = 0)
      : min_entries_(min_entries), log_ratio_(log_ratio), stagger_(stagger) {}

  // 0, 0.1, ... 0.4 for raft ids 1, 2, ... 5: up to five replicas take their snapshots at different indices.
  static double StaggerFor(uint64_t raft_id) { return static_cast<double>((raft_id + 4) % 5) / 10; }

  // An entry of `bytes` was applied: a running mean of entry sizes (recent entries weigh more).
  void OnEntry(size_t bytes);
  // A snapshot of `bytes` was taken, installed or loaded at start-up.
  void OnSnapshot(size_t bytes) { snapshot_bytes_ = bytes; }

  // Log entries between snapshots, from what it has seen so far.
  unsigned threshold() const;
  double mean_entry_bytes() const { return mean_entry_bytes_; }

 private:
  const unsigned min_entries_;
  const double log_ratio_;
  const double stagger_;
  double mean_entry_bytes_ = 0;  // 0 until the first entry
  size_t snapshot_bytes_ = 0;
};

}  // namespace abode::replication

#endif  // ABODE_REPLICATION_SNAPSHOT_PACER_H_

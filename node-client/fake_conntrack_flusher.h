// In-memory twin of ConntrackFlusher, for tests of code that drives it.
#ifndef ABODE_NODE_CLIENT_FAKE_CONNTRACK_FLUSHER_H_
#define ABODE_NODE_CLIENT_FAKE_CONNTRACK_FLUSHER_H_

#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "conntrack_flusher.h"

namespace abode::node {

class FakeConntrackFlusher final : public ConntrackFlusher {
 public:
  // Records the filters; deletes nothing (there are no entries) and returns 0.
  absl::StatusOr<int> Flush(const std::vector<ConntrackFilter>& filters) override;

  // The next Flush() returns `status` and records nothing.
  void FailNextFlush(absl::Status status) { fail_flush_ = std::move(status); }

  // Every filter of every successful Flush(), in call order.
  const std::vector<ConntrackFilter>& flushed() const { return flushed_; }
  int calls() const { return calls_; }  // successful Flush() calls
  void Clear() { flushed_.clear(); }

 private:
  absl::Status fail_flush_;
  std::vector<ConntrackFilter> flushed_;
  int calls_ = 0;
};

}  // namespace abode::node

#endif  // ABODE_NODE_CLIENT_FAKE_CONNTRACK_FLUSHER_H_

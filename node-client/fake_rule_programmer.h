// In-memory twin of RuleProgrammer, for tests of code that drives it.
#ifndef ABODE_NODE_CLIENT_FAKE_RULE_PROGRAMMER_H_
#define ABODE_NODE_CLIENT_FAKE_RULE_PROGRAMMER_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kernel_model.h"
#include "rule_programmer.h"

namespace abode::node {

class FakeRuleProgrammer final : public RuleProgrammer {
 public:
  absl::StatusOr<NatRuleset> Read() override;
  absl::Status Apply(const NatRuleset& desired) override;

  // The next call of that kind returns `status` and changes nothing.
  void FailNextRead(absl::Status status) { fail_read_ = std::move(status); }
  void FailNextApply(absl::Status status) { fail_apply_ = std::move(status); }
  // Replaces the "kernel" state, as someone else editing the rules would.
  void SetKernelState(NatRuleset state) { state_ = std::move(state); }

  const NatRuleset& state() const { return state_; }
  int applies() const { return applies_; }  // successful Apply() calls
  int batches() const { return batches_; }  // Apply() calls that changed something
  int mappings_added() const { return mappings_added_; }
  int mappings_removed() const { return mappings_removed_; }

 private:
  NatRuleset state_;
  absl::Status fail_read_;
  absl::Status fail_apply_;
  int applies_ = 0;
  int batches_ = 0;
  int mappings_added_ = 0;
  int mappings_removed_ = 0;
};

}  // namespace abode::node

#endif  // ABODE_NODE_CLIENT_FAKE_RULE_PROGRAMMER_H_

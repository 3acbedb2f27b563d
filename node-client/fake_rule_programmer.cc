#include "fake_rule_programmer.h"

#include <utility>

namespace abode::node {

absl::StatusOr<NatRuleset> FakeRuleProgrammer::Read() {
  if (absl::Status s = std::exchange(fail_read_, absl::OkStatus()); !s.ok()) return s;
  return state_;
}

absl::Status FakeRuleProgrammer::Apply(const NatRuleset& desired) {
  if (absl::Status s = std::exchange(fail_apply_, absl::OkStatus()); !s.ok()) return s;
  if (absl::Status s = ValidateNatRuleset(desired); !s.ok()) return s;
  const NatRulesetDiff diff = Diff(state_, desired);
  ++applies_;
  if (diff.empty()) return absl::OkStatus();
  ++batches_;
  mappings_added_ += static_cast<int>(diff.magic_dnat.to_add.size() + diff.elastic_nat.to_add.size() +
                                     diff.magic_drop.to_add.size());
  mappings_removed_ += static_cast<int>(diff.magic_dnat.to_remove.size() + diff.elastic_nat.to_remove.size() +
                                       diff.magic_drop.to_remove.size());
  state_ = desired;
  return absl::OkStatus();
}

}  // namespace abode::node

// Interface between abode-node's reconciler and the kernel's NAT state. The real implementation is
// NftRuleProgrammer (nft_rule_programmer.h); the in-memory twin is FakeRuleProgrammer.
#ifndef ABODE_NODE_CLIENT_RULE_PROGRAMMER_H_
#define ABODE_NODE_CLIENT_RULE_PROGRAMMER_H_

#include <chrono>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kernel_model.h"

namespace abode::node {

// Thread safety: an instance is used by one thread at a time.
class RuleProgrammer {
 public:
  virtual ~RuleProgrammer() = default;

  // The NAT mappings currently in the kernel (empty when abode's rules are absent). Aborted if others kept
  // changing the kernel's rules while they were read: retry.
  virtual absl::StatusOr<NatRuleset> Read() = 0;

  // Makes the kernel hold exactly `desired`: reads the kernel, computes the difference and commits it in one
  // atomic step, so packets see either the old or the new ruleset. Applying the state already in the kernel
  // changes nothing. InvalidArgument if `desired` fails ValidateNatRuleset; the kernel is then untouched.
  // Aborted if others kept changing the kernel's rules while this was planned: nothing was applied; retry.
  virtual absl::Status Apply(const NatRuleset& desired) = 0;
};

}  // namespace abode::node

#endif  // ABODE_NODE_CLIENT_RULE_PROGRAMMER_H_

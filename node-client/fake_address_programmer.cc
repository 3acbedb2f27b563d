#include "fake_address_programmer.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace abode::node {

namespace {

// Returns the injected failure once, leaving OK behind.
absl::Status TakeFailure(absl::Status& failure) { return std::exchange(failure, absl::OkStatus()); }

}  // namespace

absl::StatusOr<std::vector<OwnedAddress>> FakeAddressProgrammer::ListOwned() {
  if (absl::Status s = TakeFailure(fail_list_); !s.ok()) return s;
  return std::vector<OwnedAddress>(owned_.begin(), owned_.end());
}

absl::Status FakeAddressProgrammer::Add(const OwnedAddress& address) {
  if (absl::Status s = TakeFailure(fail_add_); !s.ok()) return s;
  if (absl::Status s = ValidateOwnedAddress(address); !s.ok()) return s;
  if (interfaces_.count(address.interface) == 0) {
    return absl::NotFoundError(absl::StrCat("interface ", address.interface, " does not exist"));
  }
  for (const OwnedAddress& f : foreign_) {
    if (f.address == address.address) {
      return absl::FailedPreconditionError(absl::StrCat("address ", address.address, " is already held on interface ",
                                                        f.interface, " by another owner; not adding it to ",
                                                        address.interface));
    }
  }
  if (owned_.insert(address).second) ++adds_;
  return absl::OkStatus();
}

absl::Status FakeAddressProgrammer::Add(const OwnedAddress& address, std::chrono::seconds valid_for) {
  const bool present = owned_.count(address) > 0;
  if (absl::Status s = Add(address); !s.ok()) return s;
  if (!present) lifetimes_[address] = valid_for;  // as the kernel: Add of a present address changes nothing
  return absl::OkStatus();
}

absl::Status FakeAddressProgrammer::Renew(const std::vector<OwnedAddress>& addresses, std::chrono::seconds valid_for) {
  ++renewals_;
  for (const OwnedAddress& address : addresses) {
    if (owned_.count(address) > 0) lifetimes_[address] = valid_for;
  }
  return absl::OkStatus();
}

absl::Status FakeAddressProgrammer::Remove(const OwnedAddress& address) {
  if (absl::Status s = TakeFailure(fail_remove_); !s.ok()) return s;
  if (absl::Status s = ValidateOwnedAddress(address); !s.ok()) return s;
  if (foreign_.count(address) != 0) {
    return absl::FailedPreconditionError(absl::StrCat("address ", address.address, " on interface ", address.interface,
                                                      " belongs to another owner; not removing it"));
  }
  if (owned_.erase(address) != 0) ++removes_;
  lifetimes_.erase(address);
  return absl::OkStatus();
}

absl::Status FakeAnnouncer::Announce(const OwnedAddress& address) {
  if (absl::Status s = TakeFailure(fail_); !s.ok()) return s;
  if (absl::Status s = ValidateOwnedAddress(address); !s.ok()) return s;
  announced_.push_back(address);
  return absl::OkStatus();
}

}  // namespace abode::node

// In-memory twins of AddressProgrammer and Announcer, for tests of code that drives them.
#ifndef ABODE_NODE_CLIENT_FAKE_ADDRESS_PROGRAMMER_H_
#define ABODE_NODE_CLIENT_FAKE_ADDRESS_PROGRAMMER_H_

#include <chrono>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "address_programmer.h"
#include "kernel_model.h"

namespace abode::node {

// Behaves like NetlinkAddressProgrammer on a node whose interfaces and foreign addresses the test declares.
class FakeAddressProgrammer final : public AddressProgrammer {
 public:
  absl::StatusOr<std::vector<OwnedAddress>> ListOwned() override;
  absl::Status Add(const OwnedAddress& address) override;
  absl::Status Add(const OwnedAddress& address, std::chrono::seconds valid_for) override;
  absl::Status Renew(const std::vector<OwnedAddress>& addresses, std::chrono::seconds valid_for) override;
  absl::Status Remove(const OwnedAddress& address) override;

  // Test setup.
  void AddInterface(const std::string& name) { interfaces_.insert(name); }
  // An address held by someone else: Add() of it fails, Remove() refuses it, ListOwned() omits it.
  void AddForeignAddress(const OwnedAddress& address) { foreign_.insert(address); }
  // The next call of that kind returns `status` and changes nothing.
  void FailNextList(absl::Status status) { fail_list_ = std::move(status); }
  void FailNextAdd(absl::Status status) { fail_add_ = std::move(status); }
  void FailNextRemove(absl::Status status) { fail_remove_ = std::move(status); }

  // Observation.
  const std::set<OwnedAddress>& owned() const { return owned_; }
  int adds() const { return adds_; }        // addresses actually placed
  int removes() const { return removes_; }  // addresses actually removed
  // The lifetime each owned address was last given (absent: permanent), and Renew() calls made.
  const std::map<OwnedAddress, std::chrono::seconds>& lifetimes() const { return lifetimes_; }
  int renewals() const { return renewals_; }
  // The kernel's lifetime ran out: the address is gone.
  void Expire(const OwnedAddress& address) {
    owned_.erase(address);
    lifetimes_.erase(address);
  }

 private:
  std::set<std::string> interfaces_;
  std::set<OwnedAddress> owned_;
  std::set<OwnedAddress> foreign_;
  absl::Status fail_list_;
  absl::Status fail_add_;
  absl::Status fail_remove_;
  int adds_ = 0;
  int removes_ = 0;
  std::map<OwnedAddress, std::chrono::seconds> lifetimes_;
  int renewals_ = 0;
};

class FakeAnnouncer final : public Announcer {
 public:
  absl::Status Announce(const OwnedAddress& address) override;

  void FailNextAnnounce(absl::Status status) { fail_ = std::move(status); }
  const std::vector<OwnedAddress>& announced() const { return announced_; }

 private:
  absl::Status fail_;
  std::vector<OwnedAddress> announced_;
};

}  // namespace abode::node

#endif  // ABODE_NODE_CLIENT_FAKE_ADDRESS_PROGRAMMER_H_

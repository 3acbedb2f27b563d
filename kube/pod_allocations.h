// abode-kube's index of pod allocations: the allocations labelled with a pod UID (k8s-pod-uid, set by the
// CNI plugin), by pod UID and owner, with each allocation's address and labels.
//
// It is filled from one paged ListAllocations (Replace: when a replica starts leading, and again at a slow
// interval as a safety net), from lookups of single pods on their node (Put: a pod the index does not know,
// or whose status names an address the index does not hold, e.g. a new sandbox), and from the answers of the
// controller's own UpdateLabels (Update). An owner found gone is dropped (ForgetOwner). With it, a pod's
// label change costs no read of abode and a write only when the labels differ, and the collector finds the
// allocations of vanished pods without listing every allocation.
//
// Not thread-safe: the controller's worker thread owns it.
#ifndef ABODE_KUBE_POD_ALLOCATIONS_H_
#define ABODE_KUBE_POD_ALLOCATIONS_H_

#include <cstddef>
#include <map>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "abode/v1/allocator.pb.h"

namespace abode::kube {

using LabelMap = std::map<std::string, std::string>;

// The labels an allocation holding `current` carries after UpdateLabels(labels = `wanted`, keep_keys =
// `keep`): `wanted`, plus the current values of the kept keys `wanted` does not set.
LabelMap LabelsAfterUpdate(const LabelMap& current, const LabelMap& wanted, const std::vector<std::string>& keep);

class PodAllocations {
 public:
  struct Held {
    std::string address;
    LabelMap labels;
  };
  // Owner -> pool -> allocation.
  using Owners = std::map<std::string, std::map<std::string, Held>>;

  // Replaces every pod's allocations with `all` (a complete list; allocations without a pod UID are
  // skipped). The addresses lookups accounted for (Put's `checked_ips`) stay: a host-network pod is not
  // looked up again after every list. Marks the index loaded.
  void Replace(const std::vector<v1::Allocation>& all);
  // The allocations of pod `uid` as a lookup found them (possibly none), and the pod's addresses the lookup
  // accounted for.
  void Put(const std::string& uid, const std::vector<v1::Allocation>& found, const std::set<std::string>& checked_ips);
  // An owner's allocations as an UpdateLabels answered them.
  void Update(const std::string& owner, const std::vector<v1::Allocation>& now);
  void ForgetOwner(const std::string& owner);
  // A pod gone from the cluster (the collector calls it).
  void ForgetPod(const std::string& uid);
  // Drops everything; loaded() turns false (a replica that stops leading).
  void Clear();

  bool loaded() const { return loaded_; }
  // Whether pod `uid`, whose status names `pod_ips`, must be looked up: the index has no entry for it, or
  // one of its addresses is neither held nor accounted for by an earlier lookup.
  bool NeedsLookup(const std::string& uid, const std::set<std::string>& pod_ips) const;
  // Pod `uid`'s owners (empty when none is known).
  const Owners& OwnersOf(const std::string& uid) const;
  // Every pod UID with an entry.
  std::vector<std::string> Uids() const;
  size_t pods() const { return pods_.size(); }
  size_t allocations() const;

 private:
  struct Pod {
    Owners owners;
    std::set<std::string> checked_ips;
  };
  void Add(const std::string& uid, const v1::Allocation& a);
  void DropOwnerOf(const std::string& owner);

  std::unordered_map<std::string, Pod> pods_;
  std::unordered_map<std::string, std::string> uid_of_owner_;
  bool loaded_ = false;
  const Owners none_;
};

// The pod UID label of an allocation, "" when it has none.
std::string PodUidOf(const v1::Allocation& a);

}  // namespace abode::kube

#endif  // ABODE_KUBE_POD_ALLOCATIONS_H_

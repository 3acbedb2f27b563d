#include "kube/pod_allocations.h"

#include <utility>

#include "cni/cni_invocation.h"

namespace abode::kube {

LabelMap LabelsAfterUpdate(const LabelMap& current, const LabelMap& wanted, const std::vector<std::string>& keep) {
  LabelMap out = wanted;
  for (const std::string& k : keep) {
    auto it = current.find(k);
    if (it != current.end() && !out.count(k)) out[k] = it->second;
  }
  return out;
}

std::string PodUidOf(const v1::Allocation& a) {
  auto it = a.labels().find(cni::kLabelPodUid);
  return it == a.labels().end() ? std::string() : it->second;
}

void PodAllocations::Add(const std::string& uid, const v1::Allocation& a) {
  Held& h = pods_[uid].owners[a.owner()][a.pool()];
  h.address = a.address();
  h.labels = LabelMap(a.labels().begin(), a.labels().end());
  uid_of_owner_[a.owner()] = uid;
}

void PodAllocations::DropOwnerOf(const std::string& owner) {
  auto o = uid_of_owner_.find(owner);
  if (o == uid_of_owner_.end()) return;
  auto p = pods_.find(o->second);
  if (p != pods_.end()) p->second.owners.erase(owner);
  uid_of_owner_.erase(o);
}

void PodAllocations::Replace(const std::vector<v1::Allocation>& all) {
  std::unordered_map<std::string, std::set<std::string>> checked;
  for (auto& [uid, pod] : pods_) {
    if (!pod.checked_ips.empty()) checked[uid] = std::move(pod.checked_ips);
  }
  pods_.clear();
  uid_of_owner_.clear();
  for (const v1::Allocation& a : all) {
    const std::string uid = PodUidOf(a);
    if (!uid.empty()) Add(uid, a);
  }
  for (auto& [uid, ips] : checked) pods_[uid].checked_ips = std::move(ips);
  loaded_ = true;
}

void PodAllocations::Put(const std::string& uid, const std::vector<v1::Allocation>& found,
                         const std::set<std::string>& checked_ips) {
  auto old = pods_.find(uid);
  if (old != pods_.end()) {
    for (const auto& [owner, _] : old->second.owners) uid_of_owner_.erase(owner);
    pods_.erase(old);
  }
  Pod& pod = pods_[uid];
  pod.checked_ips = checked_ips;
  for (const v1::Allocation& a : found) {
    if (PodUidOf(a) != uid) continue;
    DropOwnerOf(a.owner());  // an owner moves to the pod it is labelled with now
    Add(uid, a);
  }
}

void PodAllocations::Update(const std::string& owner, const std::vector<v1::Allocation>& now) {
  DropOwnerOf(owner);
  for (const v1::Allocation& a : now) {
    const std::string uid = PodUidOf(a);
    if (a.owner() == owner && !uid.empty()) Add(uid, a);
  }
}

void PodAllocations::ForgetOwner(const std::string& owner) { DropOwnerOf(owner); }

void PodAllocations::ForgetPod(const std::string& uid) {
  auto p = pods_.find(uid);
  if (p == pods_.end()) return;
  for (const auto& [owner, _] : p->second.owners) uid_of_owner_.erase(owner);
  pods_.erase(p);
}

void PodAllocations::Clear() {
  pods_.clear();
  uid_of_owner_.clear();
  loaded_ = false;
}

bool PodAllocations::NeedsLookup(const std::string& uid, const std::set<std::string>& pod_ips) const {
  auto p = pods_.find(uid);
  if (p == pods_.end()) return true;
  for (const std::string& ip : pod_ips) {
    if (p->second.checked_ips.count(ip)) continue;
    bool held = false;
    for (const auto& [owner, pools] : p->second.owners) {
      for (const auto& [pool, h] : pools) held = held || h.address == ip;
    }
    if (!held) return true;
  }
  return false;
}

const PodAllocations::Owners& PodAllocations::OwnersOf(const std::string& uid) const {
  auto p = pods_.find(uid);
  return p == pods_.end() ? none_ : p->second.owners;
}

std::vector<std::string> PodAllocations::Uids() const {
  std::vector<std::string> out;
  out.reserve(pods_.size());
  for (const auto& [uid, _] : pods_) out.push_back(uid);
  return out;
}

size_t PodAllocations::allocations() const {
  size_t n = 0;
  for (const auto& [uid, pod] : pods_) {
    for (const auto& [owner, pools] : pod.owners) n += pools.size();
  }
  return n;
}

}  // namespace abode::kube

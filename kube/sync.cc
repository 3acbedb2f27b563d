#include "kube/sync.h"

#include <chrono>
#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "cni/cni_invocation.h"
#include "domain/validation.h"

namespace abode::kube {
absl::Status FromGrpc(const grpc::Status& s, absl::string_view what) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), absl::StrCat(what, ": ", s.error_message()));
}

std::string Annotation(const json& object, const char* key) {
  const json ann = object.value("metadata", json::object()).value("annotations", json::object());
  auto it = ann.find(key);
  return it != ann.end() && it->is_string() ? it->get<std::string>() : std::string();
}

namespace {

bool IsCniLabel(const std::string& key) {
  return key == cni::kLabelPodNamespace || key == cni::kLabelPodName || key == cni::kLabelPodUid ||
         key == cni::kLabelNetwork;
}

// The part of a key after its kind ("pod/", "svc/", "node/").
std::string Rest(const std::string& key, absl::string_view kind) { return key.substr(kind.size()); }

}  // namespace

std::map<std::string, std::string> PodAllocationLabels(const json& pod) {
  std::map<std::string, std::string> out;
  const json meta = pod.value("metadata", json::object());
  const json labels = meta.value("labels", json::object());
  for (auto it = labels.begin(); it != labels.end(); ++it) {
    if (!it.value().is_string() || IsCniLabel(it.key())) continue;
    google::protobuf::Map<std::string, std::string> one;
    one[it.key()] = it.value().get<std::string>();
    if (!domain::ValidateLabels(one, "labels").ok()) continue;  // a label abode cannot hold
    out[it.key()] = it.value().get<std::string>();
  }
  // The CNI plugin's own keys come first in abode's limit.
  while (out.size() > domain::kMaxLabels - 4) out.erase(std::prev(out.end()));
  out[cni::kLabelPodNamespace] = meta.value("namespace", std::string());
  out[cni::kLabelPodName] = meta.value("name", std::string());
  return out;
}

Sync::Sync(KubeClient& kube, AbodeApi abode, replication::Clock& clock, SyncOptions options,
           std::function<bool()> is_leader)
    : kube_(kube),
      abode_(abode),
      clock_(clock),
      options_(std::move(options)),
      is_leader_(std::move(is_leader)),
      queue_(clock) {
  auto on = [this](const char* kind) {
    return [this, kind](const ObjectPtr& before, const ObjectPtr& after) {
      queue_.Add(absl::StrCat(kind, (after ? after : before)->key));
    };
  };
  pods_ = std::make_unique<Informer>(kube_, ResourcePath("v1", "pods"), "", on("pod/"), 11);
  services_ = std::make_unique<Informer>(kube_, ResourcePath("v1", "services"), "", on("svc/"), 12);
  nodes_ = std::make_unique<Informer>(kube_, ResourcePath("v1", "nodes"), "", on("node/"), 13);
}

Sync::~Sync() { Stop(); }

void Sync::Start() {
  for (Informer* inf : {pods_.get(), services_.get(), nodes_.get()}) {
    threads_.emplace_back([this, inf] { inf->Run(stop_); });
  }
  threads_.emplace_back([this] { Work(); });
}

void Sync::Stop() {
  stop_.Stop();
  queue_.Close();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

bool Sync::synced() const { return pods_->synced() && services_->synced() && nodes_->synced(); }

void Sync::EnqueueAll() {
  for (const auto& o : pods_->List()) queue_.Add("pod/" + o->key);
  for (const auto& o : services_->List()) queue_.Add("svc/" + o->key);
  for (const auto& o : nodes_->List()) queue_.Add("node/" + o->key);
  queue_.Add("gc");
}

std::unique_ptr<grpc::ClientContext> Sync::Rpc() const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(options_.rpc_timeout_ms));
  return ctx;
}

void Sync::Event(const json& object, const std::string& type, const std::string& reason, const std::string& message) {
  if (kube_.RecordEvent(object, type, reason, message, kFieldManager, clock_.NowUnixMs()).ok()) {
    counters_.events_recorded.fetch_add(1);
  }
}

void Sync::Work() {
  int64_t next_resync = clock_.NowUnixMs() + options_.resync_ms;
  int64_t next_gc = clock_.NowUnixMs() + options_.pod_gc_interval_ms;
  Backoff list_backoff(500, 30'000, 14);
  while (!stop_.stopped()) {
    const bool leading = is_leader_() && synced();
    if (!leading) {
      was_leader_ = false;
      pod_allocations_.Clear();
      if (stop_.Sleep(200)) return;
      continue;
    }
    int64_t now = clock_.NowUnixMs();
    if (!pod_allocations_.loaded() || now >= next_relist_ms_) {
      if (absl::Status s = ListPodAllocations(); !s.ok()) {
        counters_.failures.fetch_add(1);
        // Without a first list pods cannot be reconciled: wait. A later list that fails is tried again
        // while the index that is loaded keeps serving.
        if (!pod_allocations_.loaded()) {
          if (stop_.Sleep(list_backoff.NextMs())) return;
          continue;
        }
        next_relist_ms_ = now + list_backoff.NextMs();
      } else {
        list_backoff.Reset();
        now = clock_.NowUnixMs();
        next_relist_ms_ = now + options_.allocation_relist_ms;
      }
    }
    if (!was_leader_.exchange(true)) EnqueueAll();  // a new leader reconciles everything once
    if (now >= next_resync) {
      EnqueueAll();
      next_resync = now + options_.resync_ms;
    }
    if (now >= next_gc) {
      queue_.Add("gc");
      next_gc = now + options_.pod_gc_interval_ms;
    }
    auto key = queue_.Take(200);
    if (!key) continue;
    counters_.reconciles.fetch_add(1);
    absl::Status s = Reconcile(*key);
    auto retry = retries_.find(*key);
    if (s.ok()) {
      if (retry != retries_.end()) retries_.erase(retry);
      continue;
    }
    counters_.failures.fetch_add(1);
    if (retry == retries_.end()) retry = retries_.emplace(*key, Backoff(500, 30'000, retries_.size() + 1)).first;
    queue_.AddAt(*key, clock_.NowUnixMs() + retry->second.NextMs());
  }
}

absl::Status Sync::Reconcile(const std::string& key) {
  if (key == "gc") return CollectPods();
  if (absl::StartsWith(key, "pod/")) return ReconcilePod(Rest(key, "pod/"));
  if (absl::StartsWith(key, "svc/")) return ReconcileService(Rest(key, "svc/"));
  if (absl::StartsWith(key, "node/")) return ReconcileNode(Rest(key, "node/"));
  return absl::InvalidArgumentError(absl::StrCat("key: \"", key, "\" names no kind"));
}

// ------------------------------------------------------------------------------------------ pod labels

namespace {

// The addresses a pod's status names (status.podIPs, status.podIP).
std::set<std::string> PodIps(const json& pod) {
  std::set<std::string> out;
  const json status = pod.value("status", json::object());
  const std::string ip = status.value("podIP", std::string());
  if (!ip.empty()) out.insert(ip);
  const json ips = status.value("podIPs", json::array());
  for (const json& one : ips) {
    if (one.is_object() && one.value("ip", std::string()) != "") out.insert(one.value("ip", std::string()));
  }
  return out;
}

std::vector<v1::Allocation> Items(const google::protobuf::RepeatedPtrField<v1::Allocation>& all) {
  return std::vector<v1::Allocation>(all.begin(), all.end());
}

}  // namespace

absl::Status Sync::ListPodAllocations() {
  std::vector<v1::Allocation> all;
  v1::ListAllocationsRequest list;
  list.set_page_size(5000);
  do {
    v1::ListAllocationsResponse page;
    if (absl::Status s = FromGrpc(abode_.allocator->ListAllocations(Rpc().get(), list, &page), "ListAllocations");
        !s.ok()) {
      return s;
    }
    for (auto& a : *page.mutable_allocations()) {
      if (!PodUidOf(a).empty()) all.push_back(std::move(a));
    }
    list.set_page_token(page.next_page_token());
  } while (!list.page_token().empty());
  pod_allocations_.Replace(all);
  counters_.allocation_lists.fetch_add(1);
  return absl::OkStatus();
}

absl::Status Sync::LookUpPodAllocations(const Object& pod) {
  const std::set<std::string> ips = PodIps(pod.body);
  if (!pod_allocations_.NeedsLookup(pod.uid, ips)) return absl::OkStatus();
  // The CNI plugin runs only for a pod scheduled to a node, and labels its allocations with that node.
  const std::string node = pod.body.value("spec", json::object()).value("nodeName", std::string());
  if (node.empty()) return absl::OkStatus();
  v1::ListAllocationsRequest list;
  list.set_node(node);
  list.set_label_selector(absl::StrCat(cni::kLabelPodUid, "=", pod.uid));
  list.set_page_size(100);
  v1::ListAllocationsResponse held;
  if (absl::Status s = FromGrpc(abode_.allocator->ListAllocations(Rpc().get(), list, &held), "ListAllocations");
      !s.ok()) {
    return s;
  }
  counters_.allocation_lookups.fetch_add(1);
  pod_allocations_.Put(pod.uid, Items(held.allocations()), ips);
  return absl::OkStatus();
}

absl::Status Sync::ReconcilePod(const std::string& key) {
  ObjectPtr pod = pods_->Get(key);
  if (pod == nullptr || pod->uid.empty()) return absl::OkStatus();  // gone: the collector releases
  if (!pod_allocations_.loaded()) return absl::UnavailableError("the pod allocations have not been listed yet");
  if (absl::Status s = LookUpPodAllocations(*pod); !s.ok()) return s;
  const auto labels = PodAllocationLabels(pod->body);
  // The labels the CNI plugin set that a pod's labels never replace.
  const std::vector<std::string> kept = {cni::kLabelPodUid, cni::kLabelNetwork};
  std::vector<std::string> stale;
  for (const auto& [owner, pools] : pod_allocations_.OwnersOf(pod->uid)) {
    for (const auto& [pool, held] : pools) {
      if (LabelsAfterUpdate(held.labels, labels, kept) != held.labels) {
        stale.push_back(owner);
        break;
      }
    }
  }
  for (const std::string& owner : stale) {
    v1::UpdateLabelsRequest req;
    req.set_owner(owner);
    for (const auto& [k, v] : labels) (*req.mutable_labels())[k] = v;
    for (const std::string& k : kept) req.add_keep_keys(k);
    v1::UpdateLabelsResponse resp;
    absl::Status s = FromGrpc(abode_.allocator->UpdateLabels(Rpc().get(), req, &resp), "UpdateLabels");
    if (s.code() == absl::StatusCode::kNotFound) {  // released meanwhile
      pod_allocations_.ForgetOwner(owner);
      continue;
    }
    if (!s.ok()) return s;
    pod_allocations_.Update(owner, Items(resp.allocations()));
    counters_.labels_updated.fetch_add(1);
  }
  const json labels_now = pod->body.value("metadata", json::object()).value("labels", json::object());
  if (labels_now.value(kElasticLabel, std::string()) == "true") return ReconcileElastic(*pod);
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------- pods gone

absl::Status Sync::CollectPods() {
  if (!pods_->synced() || !pod_allocations_.loaded()) return absl::OkStatus();
  std::set<std::string> live_uids;
  for (const auto& p : pods_->List()) live_uids.insert(p->uid);
  // Every allocation in the index was seen before this resourceVersion is read, so every pod created before
  // it has a version at or below it: once the cache has seen that version, a pod missing from it is gone.
  // Read once per pass, and only when an allocation starts to be missing.
  std::string fresh_rv;
  const std::string seen = pods_->seen_resource_version();
  const int64_t now = clock_.NowUnixMs();
  std::map<std::string, Missing> still;
  for (const std::string& uid : pod_allocations_.Uids()) {
    if (live_uids.count(uid)) continue;
    std::vector<std::string> owners;
    for (const auto& [owner, _] : pod_allocations_.OwnersOf(uid)) owners.push_back(owner);
    if (owners.empty()) pod_allocations_.ForgetPod(uid);  // a lookup that found nothing, for a pod now gone
    for (const std::string& owner : owners) {
      auto it = missing_.find(owner);
      Missing m;
      if (it != missing_.end()) {
        m = it->second;
      } else {
        if (fresh_rv.empty()) {
          auto fresh = kube_.List(ResourcePath("v1", "pods"), "", 1);
          if (!fresh.ok()) return fresh.status();
          fresh_rv = fresh->resource_version;
        }
        m = Missing{now, fresh_rv};
      }
      const bool caught_up = !ResourceVersionLess(seen, m.must_see_rv);
      if (now - m.since_ms < options_.pod_gc_grace_ms || !caught_up) {
        still[owner] = m;
        continue;
      }
      v1::ReleaseRequest rel;
      rel.set_owner(owner);
      v1::ReleaseResponse out;
      if (absl::Status s = FromGrpc(abode_.allocator->Release(Rpc().get(), rel, &out), "Release"); !s.ok()) {
        still[owner] = m;
        continue;
      }
      pod_allocations_.ForgetOwner(owner);
      counters_.allocations_released.fetch_add(static_cast<uint64_t>(out.released_size()));
    }
  }
  missing_ = std::move(still);
  return CollectElastics();
}

// -------------------------------------------------------------------------------------------- nodes

absl::Status Sync::ReconcileNode(const std::string& name) {
  ObjectPtr node = nodes_->Get(name);
  if (node == nullptr) return DeleteNode(name);
  v1::SetNodeLabelsRequest req;
  req.set_name(name);
  const json labels = node->body.value("metadata", json::object()).value("labels", json::object());
  for (auto it = labels.begin(); it != labels.end(); ++it) {
    if (!it.value().is_string()) continue;
    google::protobuf::Map<std::string, std::string> one;
    one[it.key()] = it.value().get<std::string>();
    if (!domain::ValidateLabels(one, "labels").ok()) continue;
    if (req.labels_size() >= static_cast<int>(domain::kMaxLabels)) break;
    (*req.mutable_labels())[it.key()] = it.value().get<std::string>();
  }
  v1::Node out;
  absl::Status s = FromGrpc(abode_.nodes->SetNodeLabels(Rpc().get(), req, &out), "SetNodeLabels");
  // Not registered yet: its node client has not started; the retry backoff tries again.
  return s;
}

absl::Status Sync::DeleteNode(const std::string& name) {
  v1::DeleteNodeRequest req;
  req.set_node(name);
  req.set_reason(kNodeDeletedReason);
  req.set_force(true);  // the Node is gone from Kubernetes: its node client is gone with it, or going
  v1::DeleteNodeResponse out;
  grpc::Status s = abode_.nodes->DeleteNode(Rpc().get(), req, &out);
  if (s.error_code() == grpc::StatusCode::NOT_FOUND) return absl::OkStatus();  // never registered, or done
  if (!s.ok()) return FromGrpc(s, "DeleteNode");
  counters_.nodes_deleted.fetch_add(1);
  return absl::OkStatus();
}

}  // namespace abode::kube

// Pods labelled abode.dev/elastic-ip=true → elastic addresses (see sync.h).
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "kube/sync.h"

namespace abode::kube {
namespace {

constexpr char kWaitingForAllocation[] = "WaitingForAllocation";

}  // namespace

absl::Status Sync::SetElasticCondition(const json& pod, bool ready, const std::string& reason,
                                       const std::string& message) {
  const std::string status = ready ? "True" : "False";
  json condition = {{"type", kElasticReadyCondition}, {"status", status}, {"reason", reason}, {"message", message}};
  for (const auto& c : pod.value("status", json::object()).value("conditions", json::array())) {
    if (c.value("type", std::string()) != kElasticReadyCondition) continue;
    if (c.value("status", std::string()) == status && c.value("reason", std::string()) == reason &&
        c.value("message", std::string()) == message) {
      return absl::OkStatus();  // as it is: writing would only wake every watcher of the pod
    }
    if (c.value("status", std::string()) == status) condition["lastTransitionTime"] = c.value("lastTransitionTime", "");
  }
  if (!condition.contains("lastTransitionTime")) condition["lastTransitionTime"] = Rfc3339(clock_.NowUnixMs());
  // Strategic merge: status.conditions merge by type, so the kubelet's conditions stay untouched, and the
  // kubelet keeps conditions of types it does not own.
  const json meta = pod.value("metadata", json::object());
  const json patch = {{"status", {{"conditions", json::array({condition})}}}};
  return kube_.StrategicMergePatch(ResourcePath("v1", "pods", meta.value("namespace", std::string()),
                                                meta.value("name", std::string()), "status"),
                                   patch)
      .status();
}

absl::Status Sync::ReconcileElastic(const Object& pod) {
  const json meta = pod.body.value("metadata", json::object());
  const std::string ns = meta.value("namespace", std::string());
  const std::string name = meta.value("name", std::string());
  std::string pool = Annotation(pod.body, kPoolAnnotation);
  if (pool.empty()) pool = options_.default_external_pool;
  if (pool.empty()) {
    const std::string why = absl::StrCat("set the annotation ", kPoolAnnotation, " (abode-kube has no default pool)");
    Event(pod.body, "Warning", "NoExternalPool", why);
    return SetElasticCondition(pod.body, false, "NoExternalPool", why);
  }
  const std::string elastic = PodElasticName(ns, name);
  v1::CreateElasticAddressRequest create;
  create.mutable_address()->set_name(elastic);
  create.mutable_address()->set_pool(pool);
  v1::ElasticAddress got;
  absl::Status s = FromGrpc(abode_.elastics->CreateElasticAddress(Rpc().get(), create, &got), "CreateElasticAddress");
  if (s.code() == absl::StatusCode::kUnavailable || s.code() == absl::StatusCode::kDeadlineExceeded) return s;
  if (!s.ok()) {
    Event(pod.body, "Warning", "ElasticAddressRefused", std::string(s.message()));
    return SetElasticCondition(pod.body, false, "Refused", std::string(s.message()));
  }
  counters_.elastics_created.fetch_add(1);
  // By the pod's namespace and name, not its UID: a StatefulSet pod re-created under its name keeps it.
  const std::string selector = absl::StrCat("k8s-pod-namespace=", ns, ",k8s-pod-name=", name);
  const std::string address = got.address();
  if (got.association().label_selector() != selector) {
    v1::AssociateElasticAddressRequest assoc;
    assoc.set_name(elastic);
    assoc.mutable_association()->set_label_selector(selector);
    // NOT_FOUND until the CNI plugin made the pod's allocation: retried with backoff.
    if (absl::Status a = FromGrpc(abode_.elastics->AssociateElasticAddress(Rpc().get(), assoc, &got), "Associate");
        !a.ok()) {
      if (a.code() == absl::StatusCode::kNotFound) {
        (void)SetElasticCondition(pod.body, false, kWaitingForAllocation,
                                  absl::StrCat(address, " waits for the pod's allocation"));
      }
      return a;
    }
  }
  if (got.workload_owner().empty()) {
    // Associated by selector, but no allocation of the pod matches yet (a re-created pod before its CNI ADD):
    // not ready, and retried with backoff, as nothing in Kubernetes changes when the allocation comes.
    (void)SetElasticCondition(pod.body, false, kWaitingForAllocation,
                              absl::StrCat(address, " waits for the pod's allocation"));
    return absl::FailedPreconditionError(absl::StrCat("elastic address ", elastic, ": no allocation of pod ", ns, "/",
                                                      name, " yet"));
  }
  if (Annotation(pod.body, kElasticAddressAnnotation) != got.address() ||
      Annotation(pod.body, kExternalDnsTarget) != got.address()) {
    json patch = {{"metadata", {{"annotations", {{kElasticAddressAnnotation, got.address()},
                                                 {kExternalDnsTarget, got.address()}}}}}};
    if (absl::Status p = kube_.MergePatch(ResourcePath("v1", "pods", ns, name), patch).status(); !p.ok()) return p;
    Event(pod.body, "Normal", "ElasticAddressAssociated", got.address());
  }
  return SetElasticCondition(pod.body, true, "Associated", absl::StrCat("elastic address ", got.address()));
}

absl::Status Sync::CollectElastics() {
  std::set<std::string> wanted;
  for (const auto& p : pods_->List()) {
    const json meta = p->body.value("metadata", json::object());
    if (meta.value("labels", json::object()).value(kElasticLabel, std::string()) != "true") continue;
    wanted.insert(PodElasticName(meta.value("namespace", std::string()), meta.value("name", std::string())));
  }
  v1::ListElasticAddressesRequest req;
  v1::ListElasticAddressesResponse all;
  if (absl::Status s = FromGrpc(abode_.elastics->ListElasticAddresses(Rpc().get(), req, &all), "ListElastic");
      !s.ok()) {
    return s;
  }
  const int64_t now = clock_.NowUnixMs();
  std::map<std::string, int64_t> still;
  for (const auto& e : all.addresses()) {
    const std::string& name = e.spec().name();
    if (!absl::StartsWith(name, "pod-") || wanted.count(name)) continue;
    auto it = elastic_missing_since_.find(name);
    const int64_t since = it == elastic_missing_since_.end() ? now : it->second;
    if (now - since < options_.pod_gc_grace_ms) {
      still[name] = since;  // a StatefulSet pod may be on its way back
      continue;
    }
    v1::DeleteElasticAddressRequest del;
    del.set_name(name);
    v1::DeleteAddressResponse out;
    absl::Status s = FromGrpc(abode_.elastics->DeleteElasticAddress(Rpc().get(), del, &out), "DeleteElastic");
    if (!s.ok() && s.code() != absl::StatusCode::kNotFound) {
      still[name] = since;
      continue;
    }
    counters_.elastics_deleted.fetch_add(1);
  }
  elastic_missing_since_ = std::move(still);
  return absl::OkStatus();
}

}  // namespace abode::kube

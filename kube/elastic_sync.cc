// Pods labelled abode.dev/elastic-ip=true → elastic addresses (see sync.h).
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "kube/sync.h"

namespace abode::kube {

absl::Status Sync::ReconcileElastic(const Object& pod) {
  const json meta = pod.body.value("metadata", json::object());
  const std::string ns = meta.value("namespace", std::string());
  const std::string name = meta.value("name", std::string());
  std::string pool = Annotation(pod.body, kPoolAnnotation);
  if (pool.empty()) pool = options_.default_external_pool;
  if (pool.empty()) {
    Event(pod.body, "Warning", "NoExternalPool",
          absl::StrCat("set the annotation ", kPoolAnnotation, " (abode-kube has no default pool)"));
    return absl::OkStatus();
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
    return absl::OkStatus();
  }
  counters_.elastics_created.fetch_add(1);
  // By the pod's namespace and name, not its UID: a StatefulSet pod re-created under its name keeps it.
  const std::string selector = absl::StrCat("k8s-pod-namespace=", ns, ",k8s-pod-name=", name);
  if (got.association().label_selector() != selector) {
    v1::AssociateElasticAddressRequest assoc;
    assoc.set_name(elastic);
    assoc.mutable_association()->set_label_selector(selector);
    // NOT_FOUND until the CNI plugin made the pod's allocation: retried with backoff.
    if (absl::Status a = FromGrpc(abode_.elastics->AssociateElasticAddress(Rpc().get(), assoc, &got), "Associate");
        !a.ok()) {
      return a;
    }
  }
  if (Annotation(pod.body, kElasticAddressAnnotation) == got.address() &&
      Annotation(pod.body, kExternalDnsTarget) == got.address()) {
    return absl::OkStatus();
  }
  json patch = {{"metadata", {{"annotations", {{kElasticAddressAnnotation, got.address()},
                                               {kExternalDnsTarget, got.address()}}}}}};
  if (absl::Status p = kube_.MergePatch(ResourcePath("v1", "pods", ns, name), patch).status(); !p.ok()) return p;
  Event(pod.body, "Normal", "ElasticAddressAssociated", got.address());
  return absl::OkStatus();
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

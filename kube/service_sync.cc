// Services → external addresses (see sync.h).
#include <cstdio>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "domain/address.h"
#include "kube/leader_election.h"
#include "kube/sync.h"

namespace abode::kube {
namespace {

constexpr char kCondition[] = "abode.dev/AddressAssigned";

struct Wanted {
  std::string name, pool, address, selector;
};

}  // namespace

namespace {

// FNV-1a 64 of "ns/name" in 16 hex digits.
std::string KeyHash(const std::string& ns, const std::string& name) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : absl::StrCat(ns, "/", name)) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char buf[24];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace

std::string ServiceAddressPrefix(const std::string& ns, const std::string& name) {
  return absl::StrCat("svc-", KeyHash(ns, name), "-");
}

std::string PodElasticName(const std::string& ns, const std::string& name) {
  return absl::StrCat("pod-", KeyHash(ns, name));
}

absl::StatusOr<std::string> ServicePool(const json& service, const std::string& default_pool) {
  const json spec = service.value("spec", json::object());
  const std::string cls = spec.value("loadBalancerClass", std::string());
  if (!cls.empty()) {
    if (!absl::StartsWith(cls, kLoadBalancerClassPrefix)) return std::string();  // another implementation's
    return cls.substr(sizeof(kLoadBalancerClassPrefix) - 1);
  }
  if (std::string pool = Annotation(service, kPoolAnnotation); !pool.empty()) return pool;
  if (!default_pool.empty()) return default_pool;
  return absl::FailedPreconditionError(absl::StrCat("no external pool: set spec.loadBalancerClass \"",
                                                    kLoadBalancerClassPrefix, "<pool>\" or the annotation ",
                                                    kPoolAnnotation, " (abode-kube has no default pool)"));
}

absl::StatusOr<std::string> Sync::ExternalPoolContaining(const std::string& address) {
  auto ip = domain::IpAddress::Parse(address, "spec.externalIPs");
  if (!ip.ok()) return ip.status();
  v1::ListPoolsRequest req;
  v1::ListPoolsResponse pools;
  if (absl::Status s = FromGrpc(abode_.pools->ListPools(Rpc().get(), req, &pools), "ListPools"); !s.ok()) return s;
  for (const auto& p : pools.pools()) {
    if (p.spec().purpose() != v1::POOL_PURPOSE_EXTERNAL) continue;
    auto cidr = domain::Prefix::Parse(p.spec().cidr(), "cidr");
    if (cidr.ok() && cidr->family() == ip->family() && cidr->Contains(*ip)) return p.spec().name();
  }
  return absl::NotFoundError(absl::StrCat("spec.externalIPs: ", address, " is outside every external pool"));
}

absl::Status Sync::ClaimExternal(const json& svc, const std::string& name, const std::string& pool,
                                 const std::string& address, const std::string& selector, std::string* got) {
  v1::CreateExternalAddressRequest req;
  req.mutable_address()->set_name(name);
  req.mutable_address()->set_pool(pool);
  req.mutable_address()->set_address(address);
  req.mutable_address()->set_node_selector(selector);
  v1::ExternalAddress out;
  absl::Status s = FromGrpc(abode_.externals->CreateExternalAddress(Rpc().get(), req, &out), "CreateExternalAddress");
  if (s.code() == absl::StatusCode::kAlreadyExists) {
    // Either the Service changed (another spec under our name: replace it) or the address is someone else's.
    v1::GetExternalAddressRequest get;
    get.set_name(name);
    v1::ExternalAddress existing;
    if (abode_.externals->GetExternalAddress(Rpc().get(), get, &existing).ok()) {
      v1::DeleteExternalAddressRequest del;
      del.set_name(name);
      v1::DeleteAddressResponse gone;
      if (absl::Status d = FromGrpc(abode_.externals->DeleteExternalAddress(Rpc().get(), del, &gone), "Delete");
          !d.ok()) {
        return d;
      }
      counters_.externals_deleted.fetch_add(1);
      s = FromGrpc(abode_.externals->CreateExternalAddress(Rpc().get(), req, &out), "CreateExternalAddress");
    }
  }
  if (s.ok()) {
    counters_.externals_created.fetch_add(1);
    *got = out.address();
    return s;
  }
  if (s.code() == absl::StatusCode::kUnavailable || s.code() == absl::StatusCode::kDeadlineExceeded) return s;
  // Refused for good (taken, outside the pool, no such pool, bad selector): say so on the Service.
  Event(svc, "Warning", address.empty() ? "LoadBalancerRefused" : "ExternalIPRefused", std::string(s.message()));
  got->clear();
  return absl::OkStatus();
}

absl::Status Sync::DeleteExternalsExcept(const std::string& prefix, const std::vector<std::string>& keep) {
  v1::ListExternalAddressesRequest req;
  v1::ListExternalAddressesResponse all;
  if (absl::Status s = FromGrpc(abode_.externals->ListExternalAddresses(Rpc().get(), req, &all), "ListExternal");
      !s.ok()) {
    return s;
  }
  for (const auto& x : all.addresses()) {
    const std::string& name = x.spec().name();
    if (!absl::StartsWith(name, prefix) || std::find(keep.begin(), keep.end(), name) != keep.end()) continue;
    v1::DeleteExternalAddressRequest del;
    del.set_name(name);
    v1::DeleteAddressResponse out;
    absl::Status s = FromGrpc(abode_.externals->DeleteExternalAddress(Rpc().get(), del, &out), "Delete");
    if (!s.ok() && s.code() != absl::StatusCode::kNotFound) return s;
    counters_.externals_deleted.fetch_add(1);
  }
  return absl::OkStatus();
}

absl::Status Sync::WriteServiceStatus(const json& svc, const std::vector<std::string>& ingress,
                                      const std::string& reason, const std::string& message) {
  const json status = svc.value("status", json::object());
  std::vector<std::string> current;
  for (const auto& i : status.value("loadBalancer", json::object()).value("ingress", json::array())) {
    current.push_back(i.value("ip", std::string()));
  }
  std::string current_reason;
  for (const auto& c : status.value("conditions", json::array())) {
    if (c.value("type", std::string()) == kCondition) current_reason = c.value("reason", std::string());
  }
  if (current == ingress && current_reason == reason) return absl::OkStatus();  // nothing to write
  json ing = json::array();
  for (const auto& ip : ingress) ing.push_back({{"ip", ip}, {"ipMode", "VIP"}});
  const json meta = svc.value("metadata", json::object());
  json apply = {
      {"apiVersion", "v1"},
      {"kind", "Service"},
      {"metadata", {{"name", meta.value("name", "")}, {"namespace", meta.value("namespace", "")}}},
      {"status",
       {{"loadBalancer", {{"ingress", ing}}},
        {"conditions",
         {{{"type", kCondition},
           {"status", ingress.empty() ? "False" : "True"},
           {"reason", reason},
           {"message", message},
           {"observedGeneration", meta.value("generation", 0)},
           {"lastTransitionTime", MicroTime(clock_.NowUnixMs()).substr(0, 19) + "Z"}}}}}}};
  const std::string path =
      ResourcePath("v1", "services", meta.value("namespace", ""), meta.value("name", ""), "status");
  if (absl::Status s = kube_.Apply(path, apply, kFieldManager).status(); !s.ok()) return s;
  if (!ingress.empty()) {
    Event(svc, "Normal", "AddressAssigned", absl::StrJoin(ingress, ", "));
  } else {
    Event(svc, "Warning", reason, message);
  }
  return absl::OkStatus();
}

absl::Status Sync::ReconcileService(const std::string& key) {
  const size_t slash = key.find('/');
  const std::string ns = key.substr(0, slash);
  const std::string name = slash == std::string::npos ? "" : key.substr(slash + 1);
  const std::string prefix = ServiceAddressPrefix(ns, name);
  ObjectPtr svc = services_->Get(key);
  if (svc == nullptr) return DeleteExternalsExcept(prefix, {});

  const json spec = svc->body.value("spec", json::object());
  const std::string selector = Annotation(svc->body, kNodeSelectorAnnotation);
  std::vector<Wanted> wanted;
  bool load_balancer = false;
  std::string lb_problem;
  if (spec.value("type", std::string()) == "LoadBalancer") {
    auto pool = ServicePool(svc->body, options_.default_external_pool);
    if (!pool.ok()) {
      lb_problem = std::string(pool.status().message());
    } else if (!pool->empty()) {
      load_balancer = true;
      wanted.push_back(Wanted{prefix + "lb", *pool, "", selector});
    }
  }
  int i = 0;
  for (const auto& ip : spec.value("externalIPs", json::array())) {
    const std::string address = ip.is_string() ? ip.get<std::string>() : std::string();
    const std::string xname = absl::StrCat(prefix, "ip", i++);
    auto pool = ExternalPoolContaining(address);
    if (pool.status().code() == absl::StatusCode::kUnavailable) return pool.status();
    if (!pool.ok()) {
      Event(svc->body, "Warning", "ExternalIPRefused", std::string(pool.status().message()));
      continue;
    }
    wanted.push_back(Wanted{xname, *pool, address, selector});
  }
  std::vector<std::string> keep;
  std::vector<std::string> ingress;
  for (const Wanted& w : wanted) {
    std::string got;
    if (absl::Status s = ClaimExternal(svc->body, w.name, w.pool, w.address, w.selector, &got); !s.ok()) return s;
    if (got.empty()) continue;
    keep.push_back(w.name);
    if (load_balancer && w.address.empty()) ingress.push_back(got);
  }
  if (absl::Status s = DeleteExternalsExcept(prefix, keep); !s.ok()) return s;
  if (!lb_problem.empty()) {
    return WriteServiceStatus(svc->body, {}, "NoExternalPool", lb_problem);
  }
  if (!load_balancer) return absl::OkStatus();
  return WriteServiceStatus(svc->body, ingress, ingress.empty() ? "Refused" : "Assigned",
                            ingress.empty() ? "abode refused the address; see the Service's events"
                                            : absl::StrCat("external address ", ingress.front()));
}

}  // namespace abode::kube

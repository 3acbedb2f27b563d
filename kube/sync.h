// abode-kube's controllers: Kubernetes objects are the intent, abode holds the address state.
//
//  * Pod labels → allocation labels. The CNI plugin labels a pod's allocations with k8s-pod-namespace,
//    k8s-pod-name, k8s-pod-uid and cni-network; the pod's own labels (and its namespace) follow through one
//    UpdateLabels per owner, keeping the CNI plugin's labels, and only when they differ. The allocations of
//    each pod come from an index (pod_allocations.h) filled by one paged list when a replica starts leading
//    and every allocation_relist_ms, and by a lookup on the pod's node (ListAllocations by node, an indexed
//    read of that node's rows) when a pod is new to it or its status names an address it does not hold.
//  * Pods gone → allocations released: an allocation of the index labelled with a pod UID the cache does
//    not hold is released once it has been missing for the grace period AND the pod cache has caught up with
//    a resourceVersion read from the server after the allocation was seen (so a pod created after the
//    cache's list, whose allocation appeared before the cache saw it, is never taken for a deleted one).
//  * Services of type LoadBalancer → an external address (pool: spec.loadBalancerClass "abode.dev/<pool>",
//    the annotation abode.dev/pool, or the default pool; node selector: the annotation
//    abode.dev/node-selector), written to status.loadBalancer.ingress with a condition; spec.externalIPs →
//    external addresses claiming exactly those addresses (a Warning Event when refused); deleting the
//    Service (or leaving type LoadBalancer) deletes them.
//  * Pods labelled abode.dev/elastic-ip=true → an elastic address ("pod-<hash of namespace/name>", pool from
//    the annotation abode.dev/pool or the default pool) associated by the selector
//    k8s-pod-namespace=<ns>,k8s-pod-name=<name>, so it follows a StatefulSet pod re-created under its name;
//    the pod is annotated with abode.dev/elastic-address and external-dns.alpha.kubernetes.io/target. It is
//    deleted once no such pod has been cached for the grace period.
//  * Kubernetes Node labels → abode node labels (Nodes.SetNodeLabels).
//  * A Kubernetes Node deleted → the abode node deleted (Nodes.DeleteNode with force, reason
//    kNodeDeletedReason): its allocations are released and its external addresses move. NOT_FOUND (never
//    registered, or already deleted) is success.
//
// Informers run on every replica (a warm cache); only the leader reconciles (the work queue waits otherwise),
// and a new leader reconciles every cached object once.
#ifndef ABODE_KUBE_SYNC_H_
#define ABODE_KUBE_SYNC_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "abode/v1/allocator.grpc.pb.h"
#include "abode/v1/nodes.grpc.pb.h"
#include "abode/v1/pools.grpc.pb.h"
#include "absl/status/status.h"
#include "kube/backoff.h"
#include "kube/client.h"
#include "kube/informer.h"
#include "kube/pod_allocations.h"
#include "kube/stop_signal.h"
#include "kube/work_queue.h"
#include "replication/clock.h"

namespace abode::kube {

inline constexpr char kPoolAnnotation[] = "abode.dev/pool";
inline constexpr char kNodeSelectorAnnotation[] = "abode.dev/node-selector";
inline constexpr char kLoadBalancerClassPrefix[] = "abode.dev/";
inline constexpr char kFieldManager[] = "abode-kube";
inline constexpr char kElasticLabel[] = "abode.dev/elastic-ip";              // "true"
inline constexpr char kElasticAddressAnnotation[] = "abode.dev/elastic-address";
inline constexpr char kExternalDnsTarget[] = "external-dns.alpha.kubernetes.io/target";
inline constexpr char kNodeDeletedReason[] = "Kubernetes Node deleted";

struct SyncOptions {
  std::string default_external_pool;  // for LoadBalancer Services that name none; empty: they must name one
  int64_t pod_gc_grace_ms = 60'000;
  int64_t pod_gc_interval_ms = 15'000;
  int64_t rpc_timeout_ms = 10'000;
  int64_t resync_ms = 300'000;  // every cached object is reconciled again this often
  int64_t allocation_relist_ms = 300'000;  // the pod allocation index is listed again this often
};

struct AbodeApi {
  v1::Allocator::StubInterface* allocator = nullptr;
  v1::Nodes::StubInterface* nodes = nullptr;
  v1::ExternalAddresses::StubInterface* externals = nullptr;
  v1::Pools::StubInterface* pools = nullptr;
  v1::ElasticAddresses::StubInterface* elastics = nullptr;
};

struct SyncCounters {
  std::atomic<uint64_t> reconciles{0};
  std::atomic<uint64_t> failures{0};
  std::atomic<uint64_t> labels_updated{0};
  std::atomic<uint64_t> allocation_lists{0};    // complete lists of the allocations (every page)
  std::atomic<uint64_t> allocation_lookups{0};  // single pods looked up on their node
  std::atomic<uint64_t> allocations_released{0};
  std::atomic<uint64_t> externals_created{0};
  std::atomic<uint64_t> externals_deleted{0};
  std::atomic<uint64_t> events_recorded{0};
  std::atomic<uint64_t> elastics_created{0};
  std::atomic<uint64_t> elastics_deleted{0};
  std::atomic<uint64_t> nodes_deleted{0};
};

// The abode labels of a pod: its own labels that abode accepts (others are skipped; CNI keys stay the
// plugin's), plus k8s-pod-namespace and k8s-pod-name.
std::map<std::string, std::string> PodAllocationLabels(const json& pod);
// The external address names of a Service: "svc-<hash of namespace/name>-lb" and "...-ip<i>".
std::string ServiceAddressPrefix(const std::string& ns, const std::string& name);
// The elastic address name of pod `ns/name`: "pod-<hash of namespace/name>".
std::string PodElasticName(const std::string& ns, const std::string& name);
// The pool of a LoadBalancer Service, "" when it is not abode's (another loadBalancerClass), or an error
// when none is named and there is no default.
absl::StatusOr<std::string> ServicePool(const json& service, const std::string& default_pool);

// A gRPC status as an absl::Status prefixed with `what`.
absl::Status FromGrpc(const grpc::Status& s, absl::string_view what);
// An annotation of an object, "" when absent.
std::string Annotation(const json& object, const char* key);

class Sync {
 public:
  // Everything outlives this. `is_leader` is asked before every reconcile.
  Sync(KubeClient& kube, AbodeApi abode, replication::Clock& clock, SyncOptions options,
       std::function<bool()> is_leader);
  ~Sync();

  // Starts the informers and the worker.
  void Start();
  void Stop();
  // A new leader: reconcile everything cached.
  void EnqueueAll();

  // Every informer listed once.
  bool synced() const;
  const SyncCounters& counters() const { return counters_; }
  size_t watched_pods() const { return pods_->size(); }
  size_t queue_length() const { return queue_.size(); }
  // Reconciles one key now ("pod/<ns>/<name>", "svc/<ns>/<name>", "node/<name>", "gc"); for tests and the
  // worker. Pod keys and "gc" use the worker's pod allocation index: only from the worker, or while stopped.
  absl::Status Reconcile(const std::string& key);

 private:
  absl::Status ReconcilePod(const std::string& key);
  // Fills the pod allocation index from one complete list.
  absl::Status ListPodAllocations();
  // Looks pod `pod` up on its node when the index does not account for it.
  absl::Status LookUpPodAllocations(const Object& pod);
  absl::Status CollectPods();
  absl::Status ReconcileElastic(const Object& pod);
  absl::Status CollectElastics();
  absl::Status ReconcileService(const std::string& key);
  absl::Status ReconcileNode(const std::string& name);
  absl::Status DeleteNode(const std::string& name);
  absl::Status ClaimExternal(const json& svc, const std::string& name, const std::string& pool,
                             const std::string& address, const std::string& selector, std::string* got);
  absl::Status DeleteExternalsExcept(const std::string& prefix, const std::vector<std::string>& keep);
  absl::Status WriteServiceStatus(const json& svc, const std::vector<std::string>& ingress, const std::string& reason,
                                  const std::string& message);
  absl::StatusOr<std::string> ExternalPoolContaining(const std::string& address);
  void Event(const json& object, const std::string& type, const std::string& reason, const std::string& message);
  std::unique_ptr<grpc::ClientContext> Rpc() const;
  void Work();

  KubeClient& kube_;
  const AbodeApi abode_;
  replication::Clock& clock_;
  const SyncOptions options_;
  const std::function<bool()> is_leader_;
  WorkQueue queue_;
  SyncCounters counters_;
  StopSignal stop_;

  std::unique_ptr<Informer> pods_;
  std::unique_ptr<Informer> services_;
  std::unique_ptr<Informer> nodes_;
  std::vector<std::thread> threads_;

  // Worker thread only: per-key retry backoff, and pod-GC candidates (allocation owner -> when first seen
  // missing, and the pod resourceVersion the cache must reach before it may be released).
  std::map<std::string, Backoff> retries_;
  struct Missing {
    int64_t since_ms = 0;
    std::string must_see_rv;
  };
  std::map<std::string, Missing> missing_;
  PodAllocations pod_allocations_;
  int64_t next_relist_ms_ = 0;
  std::map<std::string, int64_t> elastic_missing_since_;  // elastic name -> first seen without its pod
  std::atomic<bool> was_leader_{false};
};

}  // namespace abode::kube

#endif  // ABODE_KUBE_SYNC_H_

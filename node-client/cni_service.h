// abode-node's side of the CNI plugin: turns one local request (ADD, DEL, CHECK, GC, STATUS) into allocator
// calls for this node. Pools named by a configuration's ranges are created on first use and checked against
// the configuration once per process; the owner of an attachment's addresses is its container id and
// interface, and every allocation carries this node's name, so GC can find what this node handed out.
#ifndef ABODE_NODE_CLIENT_CNI_SERVICE_H_
#define ABODE_NODE_CLIENT_CNI_SERVICE_H_

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "cni/local_protocol.h"
#include "cni_allocator.h"

namespace abode::node {

class CniService {
 public:
  // `allocator` must outlive the service. Thread-safe: requests are served concurrently.
  CniService(std::string node_name, CniAllocator* allocator) : node_(std::move(node_name)), allocator_(allocator) {}

  cni::LocalResponse Handle(const cni::LocalRequest& request);

 private:
  cni::LocalResponse Add(const cni::LocalRequest& request, const CallContext& ctx);
  // One address per pool of `request` for `owner`: Allocate for one pool, AllocateMany (all or none) for several.
  absl::StatusOr<std::vector<v1::Allocation>> AllocateAll(const cni::LocalRequest& request, const std::string& owner,
                                                          const CallContext& ctx);
  cni::LocalResponse Del(const cni::LocalRequest& request, const CallContext& ctx);
  cni::LocalResponse Check(const cni::LocalRequest& request, const CallContext& ctx);
  cni::LocalResponse Gc(const cni::LocalRequest& request, const CallContext& ctx);
  cni::LocalResponse Status(const cni::LocalRequest& request, const CallContext& ctx);
  // The pool exists with the configuration's spec (created if missing), or the error to answer.
  cni::Outcome EnsurePool(const cni::PoolRequest& pool, const CallContext& ctx);
  void Forget(const std::string& pool);

  const std::string node_;
  CniAllocator* const allocator_;
  std::mutex mu_;
  std::map<std::string, cni::PoolRequest> verified_ ABSL_GUARDED_BY(mu_);
};

// The allocator's error as a CNI error: UNAVAILABLE and DEADLINE_EXCEEDED are 11 (try again later),
// RESOURCE_EXHAUSTED 100, ALREADY_EXISTS 101, INVALID_ARGUMENT 7, anything else 103.
cni::CniError ToCniError(const absl::Status& status, const std::string& doing);

// A pool spec as the plugin's configuration says it, and the other way round.
v1::PoolSpec ToPoolSpec(const cni::PoolRequest& pool);
// "" when the pool's spec matches the request; otherwise what differs.
std::string SpecDifference(const v1::PoolSpec& have, const cni::PoolRequest& want);

}  // namespace abode::node

#endif  // ABODE_NODE_CLIENT_CNI_SERVICE_H_

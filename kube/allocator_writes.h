// The writes abode-kube makes to abode's API, counted by controller, method and answer: a client interceptor
// on the channel every stub of abode-kube shares sees every call, so no controller can write uncounted.
// A write is a call of a method that changes abode's state (kWriteMethods); reads (Get*, List*, Watch*) are
// not counted. Each call counts once, whatever its answer (the code is a label), so a duplicate action shows
// even when abode answers it as a no-op.
//
// Thread safety: everything may be called from any thread.
#ifndef ABODE_KUBE_ALLOCATOR_WRITES_H_
#define ABODE_KUBE_ALLOCATOR_WRITES_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <tuple>

#include <grpcpp/channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/client_interceptor.h>
#include <grpcpp/support/status.h>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace abode::kube {

// The controller that makes writes of `full_method` ("/abode.v1.Allocator/UpdateLabels"): "pods",
// "services", "elastic" or "nodes"; "" for a read; "other" for a method no controller is meant to call
// that is not a read either.
absl::string_view WriteController(absl::string_view full_method);

class AllocatorWrites {
 public:
  struct Key {
    std::string controller;
    std::string method;  // "UpdateLabels"
    std::string code;    // "OK", "NOT_FOUND", ...
    bool operator<(const Key& o) const {
      return std::tie(controller, method, code) < std::tie(o.controller, o.method, o.code);
    }
  };

  // Counts one call of `full_method` that ended with `code` (a read counts nothing).
  void Record(absl::string_view full_method, grpc::StatusCode code);
  std::map<Key, uint64_t> Counts() const;
  uint64_t Total() const;

  // An interceptor factory that records into this; this must outlive every channel made with it.
  std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface> InterceptorFactory();

 private:
  mutable absl::Mutex mu_;
  std::map<Key, uint64_t> counts_ ABSL_GUARDED_BY(mu_);
};

// grpc::CreateCustomChannel with `writes` counting every write made through it.
std::shared_ptr<grpc::Channel> CreateCountedChannel(const std::string& target,
                                                    const std::shared_ptr<grpc::ChannelCredentials>& credentials,
                                                    AllocatorWrites& writes);

}  // namespace abode::kube

#endif  // ABODE_KUBE_ALLOCATOR_WRITES_H_

#include "kube/allocator_writes.h"

#include <utility>
#include <vector>

#include <grpcpp/create_channel.h>

#include "absl/status/status.h"
#include "absl/strings/match.h"

namespace abode::kube {
namespace {

struct WriteMethod {
  absl::string_view method;
  absl::string_view controller;
};

// Every method of abode's API that abode-kube calls to change state, and the controller that calls it.
constexpr WriteMethod kWriteMethods[] = {
    {"/abode.v1.Allocator/UpdateLabels", "pods"},
    {"/abode.v1.Allocator/Release", "pods"},
    {"/abode.v1.ExternalAddresses/CreateExternalAddress", "services"},
    {"/abode.v1.ExternalAddresses/DeleteExternalAddress", "services"},
    {"/abode.v1.ElasticAddresses/CreateElasticAddress", "elastic"},
    {"/abode.v1.ElasticAddresses/AssociateElasticAddress", "elastic"},
    {"/abode.v1.ElasticAddresses/DisassociateElasticAddress", "elastic"},
    {"/abode.v1.ElasticAddresses/DeleteElasticAddress", "elastic"},
    {"/abode.v1.Nodes/SetNodeLabels", "nodes"},
    {"/abode.v1.Nodes/DeleteNode", "nodes"},
};

// "/abode.v1.Allocator/UpdateLabels" -> "UpdateLabels".
absl::string_view MethodName(absl::string_view full_method) {
  const size_t slash = full_method.rfind('/');
  return slash == absl::string_view::npos ? full_method : full_method.substr(slash + 1);
}

class CountingInterceptor final : public grpc::experimental::Interceptor {
 public:
  CountingInterceptor(AllocatorWrites& writes, const char* method) : writes_(writes), method_(method) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(grpc::experimental::InterceptionHookPoints::POST_RECV_STATUS)) {
      const grpc::Status* status = methods->GetRecvStatus();
      writes_.Record(method_, status != nullptr ? status->error_code() : grpc::StatusCode::UNKNOWN);
    }
    methods->Proceed();
  }

 private:
  AllocatorWrites& writes_;
  const char* const method_;
};

class CountingFactory final : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit CountingFactory(AllocatorWrites& writes) : writes_(writes) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(grpc::experimental::ClientRpcInfo* info) override {
    if (WriteController(info->method()).empty()) return nullptr;  // a read: nothing to count
    return new CountingInterceptor(writes_, info->method());
  }

 private:
  AllocatorWrites& writes_;
};

}  // namespace

absl::string_view WriteController(absl::string_view full_method) {
  for (const WriteMethod& w : kWriteMethods) {
    if (w.method == full_method) return w.controller;
  }
  const absl::string_view name = MethodName(full_method);
  for (absl::string_view read : {"Get", "List", "Watch"}) {
    if (absl::StartsWith(name, read)) return "";
  }
  return "other";
}

void AllocatorWrites::Record(absl::string_view full_method, grpc::StatusCode code) {
  const absl::string_view controller = WriteController(full_method);
  if (controller.empty()) return;
  Key key{std::string(controller), std::string(MethodName(full_method)),
          absl::StatusCodeToString(static_cast<absl::StatusCode>(code))};
  absl::MutexLock lock(&mu_);
  ++counts_[std::move(key)];
}

std::map<AllocatorWrites::Key, uint64_t> AllocatorWrites::Counts() const {
  absl::MutexLock lock(&mu_);
  return counts_;
}

uint64_t AllocatorWrites::Total() const {
  absl::MutexLock lock(&mu_);
  uint64_t total = 0;
  for (const auto& [key, n] : counts_) total += n;
  return total;
}

std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface> AllocatorWrites::InterceptorFactory() {
  return std::make_unique<CountingFactory>(*this);
}

std::shared_ptr<grpc::Channel> CreateCountedChannel(const std::string& target,
                                                    const std::shared_ptr<grpc::ChannelCredentials>& credentials,
                                                    AllocatorWrites& writes) {
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> creators;
  creators.push_back(writes.InterceptorFactory());
  return grpc::experimental::CreateCustomChannelWithInterceptors(target, credentials, grpc::ChannelArguments(),
                                                                 std::move(creators));
}

}  // namespace abode::kube

#include "tracing/grpc_tracing.h"

#include <grpcpp/create_channel.h>

#include <string_view>

namespace abode::tracing {
namespace {

using grpc::experimental::InterceptionHookPoints;
using grpc::experimental::InterceptorBatchMethods;

constexpr char kTraceparent[] = "traceparent";

// "/pkg.Service/Method" → span name "pkg.Service/Method"; its rpc.* attributes are derived from the name
// when the span is exported.
void NameCall(Tracer& tracer, const char* full_method, SpanKind kind, std::string_view parent, Span& span) {
  std::string_view method(full_method == nullptr ? "" : full_method);
  if (!method.empty() && method.front() == '/') method.remove_prefix(1);
  span = tracer.StartSpan(method.empty() ? "grpc" : method, kind, parent);
  span.MarkGrpcCall();
}

bool ServerError(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::UNKNOWN:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::UNIMPLEMENTED:
    case grpc::StatusCode::INTERNAL:
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DATA_LOSS:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return true;
    default:
      return false;
  }
}

void RecordStatus(Span& span, const grpc::Status& status, bool error) {
  span.SetGrpcStatusCode(static_cast<int>(status.error_code()));
  if (error) {
    span.SetError(status.error_message());
  } else if (status.ok()) {
    span.SetOk();
  }
}

class ServerInterceptor final : public grpc::experimental::Interceptor {
 public:
  ServerInterceptor(Tracer& tracer, grpc::experimental::ServerRpcInfo* info) : tracer_(tracer), info_(info) {}

  void Intercept(InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_INITIAL_METADATA)) {
      auto* md = methods->GetRecvInitialMetadata();
      auto it = md->find(kTraceparent);
      std::string_view parent;
      if (it != md->end()) parent = std::string_view(it->second.data(), it->second.size());
      NameCall(tracer_, info_->method(), SpanKind::kServer, parent, span_);
      // The handler continues under this call's span. The metadata refers to our own copy of the text,
      // which lives as long as the call.
      if (span_.context().valid()) {
        FormatTraceparent(span_.context(), own_traceparent_);
        const grpc::string_ref own(own_traceparent_, sizeof(own_traceparent_));
        if (it != md->end()) {
          it->second = own;
        } else {
          md->emplace(grpc::string_ref(kTraceparent), own);
        }
      }
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      const grpc::Status status = methods->GetSendStatus();
      RecordStatus(span_, status, ServerError(status.error_code()));
      span_.End();
    }
    methods->Proceed();
  }

 private:
  Tracer& tracer_;
  grpc::experimental::ServerRpcInfo* const info_;
  Span span_;
  char own_traceparent_[kTraceparentSize];
};

class ServerFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit ServerFactory(Tracer& tracer) : tracer_(tracer) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(grpc::experimental::ServerRpcInfo* info) override {
    // Health probes and reflection are gRPC's own plumbing, called every few seconds: no traces of them.
    const std::string_view method(info->method() == nullptr ? "" : info->method());
    if (method.rfind("/grpc.health.", 0) == 0 || method.rfind("/grpc.reflection.", 0) == 0) return nullptr;
    return new ServerInterceptor(tracer_, info);
  }

 private:
  Tracer& tracer_;
};

class ClientInterceptor final : public grpc::experimental::Interceptor {
 public:
  ClientInterceptor(Tracer& tracer, grpc::experimental::ClientRpcInfo* info) : tracer_(tracer), info_(info) {}

  void Intercept(InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      auto* md = methods->GetSendInitialMetadata();
      auto it = md->find(kTraceparent);
      if (it != md->end()) {
        NameCall(tracer_, info_->method(), SpanKind::kClient, it->second, span_);
        if (std::string own = span_.traceparent(); !own.empty()) it->second = std::move(own);
      }
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_STATUS)) {
      const grpc::Status* status = methods->GetRecvStatus();
      if (status != nullptr) RecordStatus(span_, *status, !status->ok());
      span_.End();
    }
    methods->Proceed();
  }

 private:
  Tracer& tracer_;
  grpc::experimental::ClientRpcInfo* const info_;
  Span span_;
};

class ClientFactory final : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit ClientFactory(Tracer& tracer) : tracer_(tracer) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(grpc::experimental::ClientRpcInfo* info) override {
    return new ClientInterceptor(tracer_, info);
  }

 private:
  Tracer& tracer_;
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> ServerInterceptorFactory(Tracer& tracer) {
  return std::make_unique<ServerFactory>(tracer);
}

std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface> ClientInterceptorFactory(Tracer& tracer) {
  return std::make_unique<ClientFactory>(tracer);
}

std::shared_ptr<grpc::Channel> CreateTracedChannel(const std::string& target,
                                                   const std::shared_ptr<grpc::ChannelCredentials>& credentials,
                                                   const grpc::ChannelArguments& args, Tracer* tracer) {
  if (tracer == nullptr || !tracer->enabled()) return grpc::CreateCustomChannel(target, credentials, args);
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> creators;
  creators.push_back(ClientInterceptorFactory(*tracer));
  return grpc::experimental::CreateCustomChannelWithInterceptors(target, credentials, args, std::move(creators));
}

}  // namespace abode::tracing

// Spans for gRPC calls, by interceptors, following the OpenTelemetry RPC conventions (span name
// "pkg.Service/Method", rpc.system, rpc.service, rpc.method, rpc.grpc.status_code):
//  - server: every call (but gRPC's health checks and reflection) gets a SERVER span, a child of the caller's "traceparent" metadata when it has one.
//    The interceptor then replaces that metadata with the server span's own traceparent, so that a
//    handler reading "traceparent" (and the commands it proposes) continues the trace under the call's span.
//  - client: a call whose metadata carries "traceparent" (set by the caller: the context it works for) gets
//    a CLIENT span, a child of it; the metadata sent is replaced with the client span's traceparent. Calls
//    without one (a node's long-lived watch, liveness relays) get no span.
// Status: a client span with any code but OK is an error; a server span is an error for the codes that say
// the server failed (UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS), and
// also RESOURCE_EXHAUSTED, which in abode means a pool is full: the fact an operator looks for.
#ifndef ABODE_TRACING_GRPC_TRACING_H_
#define ABODE_TRACING_GRPC_TRACING_H_

#include <memory>
#include <string>

#include <grpcpp/channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>
#include <grpcpp/support/client_interceptor.h>
#include <grpcpp/support/server_interceptor.h>

#include "tracing/tracer.h"

namespace abode::tracing {

// Both refer to `tracer`, which must outlive the server or channel.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> ServerInterceptorFactory(Tracer& tracer);
std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface> ClientInterceptorFactory(Tracer& tracer);

// grpc::CreateCustomChannel, with the client interceptor when `tracer` is set and enabled.
std::shared_ptr<grpc::Channel> CreateTracedChannel(const std::string& target,
                                                   const std::shared_ptr<grpc::ChannelCredentials>& credentials,
                                                   const grpc::ChannelArguments& args, Tracer* tracer);

}  // namespace abode::tracing

#endif  // ABODE_TRACING_GRPC_TRACING_H_

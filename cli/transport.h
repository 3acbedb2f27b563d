// The one way abodectl talks to the server: a unary call by method path, with a deadline, whose gRPC status
// comes back as an absl::Status. Commands use the typed `Call` below; tests substitute a fake Transport.
#ifndef ABODE_CLI_TRANSPORT_H_
#define ABODE_CLI_TRANSPORT_H_

#include <google/protobuf/message.h>
#include <grpcpp/channel.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/impl/codegen/proto_utils.h>  // SerializationTraits for protobuf messages

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace abode::cli {

// A unary RPC of the public API, typed by its request and response messages.
// `path` is the gRPC method path, "/abode.v1.Service/Method".
template <typename Request, typename Response>
struct UnaryMethod {
  std::string_view path;
};

class Transport {
 public:
  virtual ~Transport() = default;

  // Sends `request` to `method` and fills `response`. Returns the call's final status; the gRPC status code
  // maps one to one onto absl::StatusCode. REQUIRES: `response` is of the method's response type.
  virtual absl::Status Call(std::string_view method, const google::protobuf::Message& request,
                            google::protobuf::Message& response) = 0;
};

template <typename Request, typename Response>
absl::StatusOr<Response> Call(Transport& transport, UnaryMethod<Request, Response> method, const Request& request) {
  Response response;
  if (absl::Status status = transport.Call(method.path, request, response); !status.ok()) {
    return status;
  }
  return response;
}

// Converts a gRPC status to the absl::Status with the same code and message.
absl::Status FromGrpcStatus(const grpc::Status& status);

// Transport over a gRPC channel. Every call gets its own deadline of `timeout` from when it starts.
// A call whose deadline passes without the channel ever connecting fails UNAVAILABLE, not
// DEADLINE_EXCEEDED: the server was not reached, so nothing can have happened there.
// Thread-compatible: one call at a time per instance.
class GrpcTransport final : public Transport {
 public:
  GrpcTransport(std::shared_ptr<grpc::Channel> channel, std::chrono::milliseconds timeout);

  absl::Status Call(std::string_view method, const google::protobuf::Message& request,
                    google::protobuf::Message& response) override;

 private:
  std::shared_ptr<grpc::Channel> channel_;
  grpc::TemplatedGenericStub<google::protobuf::Message, google::protobuf::Message> stub_;
  std::chrono::milliseconds timeout_;
};

// A GrpcTransport to `server` ("host:port") over a plaintext channel. Connecting happens on the first call,
// so an unreachable server surfaces as UNAVAILABLE from that call, within its deadline.
std::unique_ptr<Transport> DialInsecure(const std::string& server, std::chrono::milliseconds timeout);

}  // namespace abode::cli

#endif  // ABODE_CLI_TRANSPORT_H_

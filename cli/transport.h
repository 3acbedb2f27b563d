// How abodectl talks to the server: a unary call by method path, with a deadline, whose gRPC status comes back
// as an absl::Status; and, for `watch`, one bidirectional stream. Commands use the typed `Call` below; tests
// substitute a fake Transport.
#ifndef ABODE_CLI_TRANSPORT_H_
#define ABODE_CLI_TRANSPORT_H_

#include <google/protobuf/message.h>
#include <grpcpp/channel.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/impl/codegen/proto_utils.h>  // SerializationTraits for protobuf messages

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace abode::cli {

// A unary RPC of the public API, typed by its request and response messages.
// `path` is the gRPC method path, "/abode.v1.Service/Method".
template <typename Request, typename Response>
struct UnaryMethod {
  std::string_view path;
};

// A bidirectional-streaming RPC of the public API, typed by the messages each side sends.
template <typename Request, typename Response>
struct StreamMethod {
  std::string_view path;
};

// A server-streaming RPC: one request, then a stream of responses.
template <typename Request, typename Response>
struct ServerStreamMethod {
  std::string_view path;
};

// How long a stream may live and when the caller wants it to end.
struct StreamOptions {
  // Deadline of the whole stream from when it opens; none: it may run until stopped.
  std::optional<std::chrono::milliseconds> deadline;
  // Bound on the wait for the first message, so a stream that never gets going fails like a unary call.
  std::chrono::milliseconds first_message_timeout{10'000};
  // Polled while waiting (a few times a second); once true the stream is cancelled and reads end.
  std::function<bool()> stop_requested;
};

// One open bidirectional stream. Operations run one at a time, each blocking until it completes.
class Stream {
 public:
  virtual ~Stream() = default;

  // Sends `request`; false once the stream is broken (Finish says why).
  virtual bool Write(const google::protobuf::Message& request) = 0;
  // Closes this side of the stream (no more writes); false once the stream is broken.
  virtual bool WritesDone() = 0;
  // Waits for the next message; false at the end of the stream, including after a stop.
  // REQUIRES: `response` is of the method's response type.
  virtual bool Read(google::protobuf::Message& response) = 0;
  // The stream's final status, mapped like Transport::Call's. CANCELLED after a stop. Call once, after Read
  // returned false or to abandon the stream.
  virtual absl::Status Finish() = 0;
};

class Transport {
 public:
  virtual ~Transport() = default;

  // Sends `request` to `method` and fills `response`. Returns the call's final status; the gRPC status code
  // maps one to one onto absl::StatusCode. REQUIRES: `response` is of the method's response type.
  virtual absl::Status Call(std::string_view method, const google::protobuf::Message& request,
                            google::protobuf::Message& response) = 0;

  // Opens a bidirectional stream to `method`. Failures to connect surface from its first Read or Write.
  virtual std::unique_ptr<Stream> OpenStream(std::string_view method, StreamOptions options) = 0;
};

template <typename Request, typename Response>
absl::StatusOr<Response> Call(Transport& transport, UnaryMethod<Request, Response> method, const Request& request) {
  Response response;
  if (absl::Status status = transport.Call(method.path, request, response); !status.ok()) {
    return status;
  }
  return response;
}

template <typename Request, typename Response>
std::unique_ptr<Stream> OpenStream(Transport& transport, StreamMethod<Request, Response> method,
                                   StreamOptions options) {
  return transport.OpenStream(method.path, std::move(options));
}

// Opens a server-streaming call: sends `request` and closes this side; the caller reads the responses. On
// the wire it is a stream whose client sends one message, so the bidirectional transport carries it.
template <typename Request, typename Response>
std::unique_ptr<Stream> OpenServerStream(Transport& transport, ServerStreamMethod<Request, Response> method,
                                         const Request& request, StreamOptions options) {
  std::unique_ptr<Stream> stream = transport.OpenStream(method.path, std::move(options));
  if (stream->Write(request)) stream->WritesDone();
  return stream;
}

// Converts a gRPC status to the absl::Status with the same code and message.
absl::Status FromGrpcStatus(const grpc::Status& status);

// Transport over a gRPC channel. Every call gets its own deadline of `timeout` from when it starts.
// A call whose deadline passes without the channel ever connecting fails UNAVAILABLE, not
// DEADLINE_EXCEEDED: the server was not reached, so nothing can have happened there.
// Streams follow the same rule at their deadline (StreamOptions.deadline or first_message_timeout).
// Thread-compatible: one call at a time per instance.
class GrpcTransport final : public Transport {
 public:
  GrpcTransport(std::shared_ptr<grpc::Channel> channel, std::chrono::milliseconds timeout);

  absl::Status Call(std::string_view method, const google::protobuf::Message& request,
                    google::protobuf::Message& response) override;
  std::unique_ptr<Stream> OpenStream(std::string_view method, StreamOptions options) override;

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

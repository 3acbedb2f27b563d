#include "cli/transport.h"

#include <grpcpp/client_context.h>
#include <grpcpp/completion_queue.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"

namespace abode::cli {

absl::Status FromGrpcStatus(const grpc::Status& status) {
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

GrpcTransport::GrpcTransport(std::shared_ptr<grpc::Channel> channel, std::chrono::milliseconds timeout)
    : channel_(std::move(channel)), stub_(channel_), timeout_(timeout) {}

absl::Status GrpcTransport::Call(std::string_view method, const google::protobuf::Message& request,
                                 google::protobuf::Message& response) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + timeout_);
  grpc::CompletionQueue queue;
  auto call = stub_.PrepareUnaryCall(&context, std::string(method), request, &queue);
  call->StartCall();
  grpc::Status status;
  int finished_tag = 0;
  call->Finish(&response, &status, &finished_tag);
  void* tag = nullptr;
  bool ok = false;
  // The only event on this queue is the call finishing; the deadline bounds the wait.
  const bool got_event = queue.Next(&tag, &ok);
  queue.Shutdown();
  while (queue.Next(&tag, &ok)) {
  }
  if (!got_event) {
    return absl::InternalError("completion queue shut down before the call finished");
  }
  if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED &&
      channel_->GetState(/*try_to_connect=*/false) != GRPC_CHANNEL_READY) {
    return absl::UnavailableError(
        absl::StrCat("no connection to the server within ", timeout_.count(), " ms: ", status.error_message()));
  }
  return FromGrpcStatus(status);
}

std::unique_ptr<Transport> DialInsecure(const std::string& server, std::chrono::milliseconds timeout) {
  return std::make_unique<GrpcTransport>(grpc::CreateChannel(server, grpc::InsecureChannelCredentials()), timeout);
}

}  // namespace abode::cli

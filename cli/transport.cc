#include "cli/transport.h"

#include <grpcpp/client_context.h>
#include <grpcpp/completion_queue.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <string>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"

namespace abode::cli {

absl::Status FromGrpcStatus(const grpc::Status& status) {
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

namespace {

// A deadline that passed while the channel never connected means the server was not reached.
absl::Status Unreached(std::chrono::milliseconds waited, const std::string& detail) {
  return absl::UnavailableError(absl::StrCat("no connection to the server within ", waited.count(), " ms: ", detail));
}

bool Connected(grpc::Channel& channel) { return channel.GetState(/*try_to_connect=*/false) == GRPC_CHANNEL_READY; }

// A stream on the generic stub's async API, one operation in flight at a time. Each wait on the completion
// queue is sliced so that a stop request or the first-message bound can cancel the call between slices.
class GrpcStream final : public Stream {
 public:
  GrpcStream(std::shared_ptr<grpc::Channel> channel,
             grpc::TemplatedGenericStub<google::protobuf::Message, google::protobuf::Message>& stub,
             std::string_view method, StreamOptions options)
      : channel_(std::move(channel)), options_(std::move(options)), opened_(std::chrono::steady_clock::now()) {
    if (options_.deadline) context_.set_deadline(std::chrono::system_clock::now() + *options_.deadline);
    call_ = stub.PrepareCall(&context_, std::string(method), &queue_);
    call_->StartCall(this);
    live_ = Await();
  }

  ~GrpcStream() override {
    if (!finished_) Finish().IgnoreError();  // abandoned by its owner
    queue_.Shutdown();
    void* tag = nullptr;
    bool ok = false;
    while (queue_.Next(&tag, &ok)) {
    }
  }

  GrpcStream(const GrpcStream&) = delete;
  GrpcStream& operator=(const GrpcStream&) = delete;

  bool Write(const google::protobuf::Message& request) override {
    if (!live_) return false;
    call_->Write(request, this);
    live_ = Await();
    return live_;
  }

  bool WritesDone() override {
    if (!live_) return false;
    call_->WritesDone(this);
    live_ = Await();
    return live_;
  }

  bool Read(google::protobuf::Message& response) override {
    if (!live_) return false;
    call_->Read(&response, this);
    live_ = Await();
    if (live_) got_message_ = true;
    return live_;
  }

  absl::Status Finish() override {
    if (finished_) return absl::FailedPreconditionError("stream already finished");
    finished_ = true;
    // A stream still delivering would never finish on its own; abandoning it means cancelling it.
    if (live_) Cancel();
    grpc::Status status;
    call_->Finish(&status, this);
    Await();
    if (stopped_) return absl::CancelledError("stopped");
    if (first_message_overdue_) {
      if (!connected_) return Unreached(options_.first_message_timeout, "no stream");
      return absl::DeadlineExceededError(
          absl::StrCat("no message from the server within ", options_.first_message_timeout.count(), " ms"));
    }
    if (options_.deadline && status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED && !Connected(*channel_)) {
      return Unreached(*options_.deadline, status.error_message());
    }
    return FromGrpcStatus(status);
  }

 private:
  static constexpr std::chrono::milliseconds kSlice{100};

  void Cancel() {
    connected_ = Connected(*channel_);
    context_.TryCancel();
  }

  // Waits for the operation in flight; returns whether it succeeded.
  bool Await() {
    while (true) {
      void* tag = nullptr;
      bool ok = false;
      switch (queue_.AsyncNext(&tag, &ok, std::chrono::system_clock::now() + kSlice)) {
        case grpc::CompletionQueue::GOT_EVENT:
          return ok;
        case grpc::CompletionQueue::SHUTDOWN:
          return false;
        case grpc::CompletionQueue::TIMEOUT:
          break;
      }
      if (stopped_ || first_message_overdue_) continue;  // cancelled already; the operation is completing
      if (options_.stop_requested && options_.stop_requested()) {
        stopped_ = true;
        Cancel();
      } else if (!got_message_ && std::chrono::steady_clock::now() - opened_ > options_.first_message_timeout) {
        first_message_overdue_ = true;
        Cancel();
      }
    }
  }

  std::shared_ptr<grpc::Channel> channel_;
  StreamOptions options_;
  std::chrono::steady_clock::time_point opened_;
  grpc::ClientContext context_;
  grpc::CompletionQueue queue_;
  std::unique_ptr<grpc::ClientAsyncReaderWriter<google::protobuf::Message, google::protobuf::Message>> call_;
  bool live_ = false;
  bool got_message_ = false;
  bool finished_ = false;
  bool stopped_ = false;
  bool first_message_overdue_ = false;
  bool connected_ = false;  // whether the channel was connected when the call was cancelled
};

}  // namespace

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
  if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED && !Connected(*channel_)) {
    return Unreached(timeout_, status.error_message());
  }
  return FromGrpcStatus(status);
}

std::unique_ptr<Stream> GrpcTransport::OpenStream(std::string_view method, StreamOptions options) {
  return std::make_unique<GrpcStream>(channel_, stub_, method, std::move(options));
}

std::unique_ptr<Transport> DialInsecure(const std::string& server, std::chrono::milliseconds timeout) {
  return std::make_unique<GrpcTransport>(grpc::CreateChannel(server, grpc::InsecureChannelCredentials()), timeout);
}

}  // namespace abode::cli

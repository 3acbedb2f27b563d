// A Transport for tests: records every request and answers from a queue of canned responses; streams replay
// canned messages and then end with a canned status.
#ifndef ABODE_CLI_FAKE_TRANSPORT_H_
#define ABODE_CLI_FAKE_TRANSPORT_H_

#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "cli/transport.h"

namespace abode::cli {

class FakeTransport final : public Transport {
 public:
  struct Exchange {
    std::string method;
    std::unique_ptr<google::protobuf::Message> request;
  };

  // The next call answers with `response` (copied into the caller's message, which must be of its type).
  void Respond(const google::protobuf::Message& response) {
    answers_.push_back({absl::OkStatus(), std::unique_ptr<google::protobuf::Message>(response.New())});
    answers_.back().response->CopyFrom(response);
  }
  // The next call fails with `status`.
  void Fail(absl::Status status) { answers_.push_back({std::move(status), nullptr}); }

  absl::Status Call(std::string_view method, const google::protobuf::Message& request,
                    google::protobuf::Message& response) override {
    calls_.push_back({std::string(method), std::unique_ptr<google::protobuf::Message>(request.New())});
    calls_.back().request->CopyFrom(request);
    if (answers_.empty()) return absl::InternalError("fake transport: no answer queued");
    Answer answer = std::move(answers_.front());
    answers_.pop_front();
    if (answer.response != nullptr) response.CopyFrom(*answer.response);
    return answer.status;
  }

  // The next stream delivers `messages` in order, then ends with `status`.
  void RespondStream(std::vector<std::unique_ptr<google::protobuf::Message>> messages, absl::Status status) {
    streams_.push_back(std::make_unique<Script>(Script{std::move(messages), std::move(status), {}, 0}));
  }

  std::unique_ptr<Stream> OpenStream(std::string_view method, StreamOptions options) override {
    opened_.push_back({std::string(method), options});
    if (streams_.empty()) {
      streams_.push_back(
          std::make_unique<Script>(Script{{}, absl::InternalError("fake transport: no stream queued"), {}, 0}));
    }
    scripts_.push_back(std::move(streams_.front()));
    streams_.pop_front();
    return std::make_unique<FakeStream>(*scripts_.back());
  }

  const std::vector<Exchange>& calls() const { return calls_; }

  struct OpenedStream {
    std::string method;
    StreamOptions options;
  };
  const std::vector<OpenedStream>& opened_streams() const { return opened_; }
  // What the client wrote on stream `index`.
  const std::vector<std::unique_ptr<google::protobuf::Message>>& written(std::size_t index = 0) const {
    return scripts_.at(index)->written;
  }

  // Whether the client closed its side of stream `index`.
  bool writes_done(std::size_t index = 0) const { return scripts_.at(index)->writes_done; }

  // The request of call `index`, as its concrete type. REQUIRES: the call exists and has that type.
  template <typename Request>
  const Request& request(std::size_t index = 0) const {
    return dynamic_cast<const Request&>(*calls_.at(index).request);
  }

 private:
  struct Script {
    std::vector<std::unique_ptr<google::protobuf::Message>> messages;
    absl::Status status;
    std::vector<std::unique_ptr<google::protobuf::Message>> written;
    std::size_t delivered = 0;
    bool writes_done = false;  // the client closed its side
  };

  class FakeStream final : public Stream {
   public:
    explicit FakeStream(Script& script) : script_(script) {}
    bool Write(const google::protobuf::Message& request) override {
      script_.written.emplace_back(request.New());
      script_.written.back()->CopyFrom(request);
      return true;
    }
    bool WritesDone() override {
      script_.writes_done = true;
      return true;
    }
    bool Read(google::protobuf::Message& response) override {
      if (script_.delivered == script_.messages.size()) return false;
      response.CopyFrom(*script_.messages[script_.delivered++]);
      return true;
    }
    // Finishing before the script ran out abandons the stream, as with gRPC.
    absl::Status Finish() override {
      return script_.delivered < script_.messages.size() ? absl::CancelledError("abandoned") : script_.status;
    }

   private:
    Script& script_;
  };

  struct Answer {
    absl::Status status;
    std::unique_ptr<google::protobuf::Message> response;
  };
  std::deque<Answer> answers_;
  std::vector<Exchange> calls_;
  std::deque<std::unique_ptr<Script>> streams_;
  std::vector<std::unique_ptr<Script>> scripts_;
  std::vector<OpenedStream> opened_;
};

}  // namespace abode::cli

#endif  // ABODE_CLI_FAKE_TRANSPORT_H_

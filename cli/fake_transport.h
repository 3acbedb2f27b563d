// A Transport for tests: records every request and answers from a queue of canned responses.
#ifndef ABODE_CLI_FAKE_TRANSPORT_H_
#define ABODE_CLI_FAKE_TRANSPORT_H_

#include <deque>
#include <memory>
#include <string>
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

  const std::vector<Exchange>& calls() const { return calls_; }

  // The request of call `index`, as its concrete type. REQUIRES: the call exists and has that type.
  template <typename Request>
  const Request& request(std::size_t index = 0) const {
    return dynamic_cast<const Request&>(*calls_.at(index).request);
  }

 private:
  struct Answer {
    absl::Status status;
    std::unique_ptr<google::protobuf::Message> response;
  };
  std::deque<Answer> answers_;
  std::vector<Exchange> calls_;
};

}  // namespace abode::cli

#endif  // ABODE_CLI_FAKE_TRANSPORT_H_

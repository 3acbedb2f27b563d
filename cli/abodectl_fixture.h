// The fixture of the command tests: command lines through RunAbodectl against a FakeTransport.
#ifndef ABODE_CLI_ABODECTL_FIXTURE_H_
#define ABODE_CLI_ABODECTL_FIXTURE_H_

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "cli/abodectl.h"
#include "cli/fake_transport.h"

namespace abode::cli {

// Forwards to a fake the test keeps, since the dialer hands its transport to RunAbodectl.
class ForwardingTransport final : public Transport {
 public:
  explicit ForwardingTransport(Transport& target) : target_(target) {}
  absl::Status Call(std::string_view method, const google::protobuf::Message& request,
                    google::protobuf::Message& response) override {
    return target_.Call(method, request, response);
  }
  std::unique_ptr<Stream> OpenStream(std::string_view method, StreamOptions options) override {
    return target_.OpenStream(method, std::move(options));
  }

 private:
  Transport& target_;
};

struct Result {
  int exit_code;
  std::string out;
  std::string err;
};

class AbodectlTest : public ::testing::Test {
 protected:
  Result Run(const std::vector<std::string>& args, const std::optional<std::string>& server_from_env = std::nullopt) {
    std::ostringstream out;
    std::ostringstream err;
    const int exit_code = RunAbodectl(
        args, server_from_env,
        [this](const GlobalOptions& global) {
          dialed_ = global;
          return std::make_unique<ForwardingTransport>(fake_);
        },
        out, err);
    return {exit_code, out.str(), err.str()};
  }

  // Runs a command line that must be refused as usage, before any call.
  void ExpectUsageError(const std::vector<std::string>& args, const std::string& reason) {
    SCOPED_TRACE(::testing::PrintToString(args));
    const Result result = Run(args);
    EXPECT_EQ(result.exit_code, kExitUsage);
    EXPECT_THAT(result.err, ::testing::HasSubstr("error: "));
    EXPECT_THAT(result.err, ::testing::HasSubstr(reason));
    EXPECT_THAT(result.err, ::testing::HasSubstr("Usage:"));
    EXPECT_THAT(result.out, ::testing::IsEmpty());
    EXPECT_THAT(fake_.calls(), ::testing::IsEmpty());
    EXPECT_THAT(fake_.opened_streams(), ::testing::IsEmpty());
    EXPECT_FALSE(dialed_.has_value());
  }

  FakeTransport fake_;
  std::optional<GlobalOptions> dialed_;
};

}  // namespace abode::cli

#endif  // ABODE_CLI_ABODECTL_FIXTURE_H_

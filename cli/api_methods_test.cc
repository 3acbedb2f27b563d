#include "cli/api_methods.h"

#include <google/protobuf/descriptor.h>
#include <gtest/gtest.h>

#include <string>

namespace abode::cli {
namespace {

// A method path names a method of the generated service whose request and response are the C++ types
// the UnaryMethod promises.
template <typename Request, typename Response>
void ExpectMatchesDescriptor(UnaryMethod<Request, Response> method) {
  SCOPED_TRACE(std::string(method.path));
  const std::string path(method.path);
  ASSERT_EQ(path.front(), '/');
  const auto slash = path.find('/', 1);
  ASSERT_NE(slash, std::string::npos);
  const auto* service =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(path.substr(1, slash - 1));
  ASSERT_NE(service, nullptr);
  const auto* descriptor = service->FindMethodByName(path.substr(slash + 1));
  ASSERT_NE(descriptor, nullptr);
  EXPECT_EQ(descriptor->input_type(), Request::descriptor());
  EXPECT_EQ(descriptor->output_type(), Response::descriptor());
  EXPECT_FALSE(descriptor->client_streaming());
  EXPECT_FALSE(descriptor->server_streaming());
}

TEST(ApiMethodsTest, EveryMethodMatchesTheGeneratedService) {
  ExpectMatchesDescriptor(kCreatePool);
  ExpectMatchesDescriptor(kGetPool);
  ExpectMatchesDescriptor(kListPools);
  ExpectMatchesDescriptor(kDeletePool);
  ExpectMatchesDescriptor(kAllocate);
  ExpectMatchesDescriptor(kRelease);
  ExpectMatchesDescriptor(kRenew);
  ExpectMatchesDescriptor(kGetAllocation);
  ExpectMatchesDescriptor(kListAllocations);
  ExpectMatchesDescriptor(kGetHistory);
}

TEST(ApiMethodsTest, GrpcStatusMapsOntoTheSameAbslCode) {
  const absl::Status status = FromGrpcStatus(grpc::Status(grpc::StatusCode::ALREADY_EXISTS, "taken"));
  EXPECT_EQ(status.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(status.message(), "taken");
  EXPECT_TRUE(FromGrpcStatus(grpc::Status::OK).ok());
}

}  // namespace
}  // namespace abode::cli

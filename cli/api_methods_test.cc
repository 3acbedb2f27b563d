#include "cli/api_methods.h"

#include <google/protobuf/descriptor.h>
#include <gtest/gtest.h>

#include <string>
#include <string_view>

namespace abode::cli {
namespace {

// A method path names a method of the generated service whose request and response are the C++ types the
// UnaryMethod, StreamMethod or ServerStreamMethod promises, streaming in the directions it says.
void ExpectMethod(std::string_view method_path, const google::protobuf::Descriptor* request,
                  const google::protobuf::Descriptor* response, bool client_streaming, bool server_streaming) {
  SCOPED_TRACE(std::string(method_path));
  const std::string path(method_path);
  ASSERT_EQ(path.front(), '/');
  const auto slash = path.find('/', 1);
  ASSERT_NE(slash, std::string::npos);
  const auto* service =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(path.substr(1, slash - 1));
  ASSERT_NE(service, nullptr);
  const auto* descriptor = service->FindMethodByName(path.substr(slash + 1));
  ASSERT_NE(descriptor, nullptr);
  EXPECT_EQ(descriptor->input_type(), request);
  EXPECT_EQ(descriptor->output_type(), response);
  EXPECT_EQ(descriptor->client_streaming(), client_streaming);
  EXPECT_EQ(descriptor->server_streaming(), server_streaming);
}

template <typename Request, typename Response>
void ExpectMatchesDescriptor(UnaryMethod<Request, Response> method) {
  ExpectMethod(method.path, Request::descriptor(), Response::descriptor(), false, false);
}

template <typename Request, typename Response>
void ExpectMatchesDescriptor(StreamMethod<Request, Response> method) {
  ExpectMethod(method.path, Request::descriptor(), Response::descriptor(), true, true);
}

template <typename Request, typename Response>
void ExpectMatchesDescriptor(ServerStreamMethod<Request, Response> method) {
  ExpectMethod(method.path, Request::descriptor(), Response::descriptor(), false, true);
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
  ExpectMatchesDescriptor(kClusterStatus);
  ExpectMatchesDescriptor(kAddMember);
  ExpectMatchesDescriptor(kRemoveMember);
  ExpectMatchesDescriptor(kTransferLeadership);
  ExpectMatchesDescriptor(kChecksum);
  ExpectMatchesDescriptor(kBackup);
  ExpectMatchesDescriptor(kGetNode);
  ExpectMatchesDescriptor(kListNodes);
  ExpectMatchesDescriptor(kDeleteNode);
  ExpectMatchesDescriptor(kWatchAssignments);
  ExpectMatchesDescriptor(kCreateExternalAddress);
  ExpectMatchesDescriptor(kGetExternalAddress);
  ExpectMatchesDescriptor(kListExternalAddresses);
  ExpectMatchesDescriptor(kDeleteExternalAddress);
  ExpectMatchesDescriptor(kCreateElasticAddress);
  ExpectMatchesDescriptor(kGetElasticAddress);
  ExpectMatchesDescriptor(kListElasticAddresses);
  ExpectMatchesDescriptor(kDeleteElasticAddress);
  ExpectMatchesDescriptor(kAssociateElasticAddress);
  ExpectMatchesDescriptor(kDisassociateElasticAddress);
  ExpectMatchesDescriptor(kCreateMagicAddress);
  ExpectMatchesDescriptor(kGetMagicAddress);
  ExpectMatchesDescriptor(kListMagicAddresses);
  ExpectMatchesDescriptor(kDeleteMagicAddress);
}

TEST(ApiMethodsTest, GrpcStatusMapsOntoTheSameAbslCode) {
  const absl::Status status = FromGrpcStatus(grpc::Status(grpc::StatusCode::ALREADY_EXISTS, "taken"));
  EXPECT_EQ(status.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(status.message(), "taken");
  EXPECT_TRUE(FromGrpcStatus(grpc::Status::OK).ok());
}

}  // namespace
}  // namespace abode::cli

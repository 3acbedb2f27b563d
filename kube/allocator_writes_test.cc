#include "kube/allocator_writes.h"

#include "gtest/gtest.h"

namespace abode::kube {
namespace {

TEST(AllocatorWritesTest, WritesAreCountedByControllerMethodAndCodeAndReadsAreNot) {
  EXPECT_EQ(WriteController("/abode.v1.Allocator/UpdateLabels"), "pods");
  EXPECT_EQ(WriteController("/abode.v1.Allocator/Release"), "pods");
  EXPECT_EQ(WriteController("/abode.v1.ExternalAddresses/CreateExternalAddress"), "services");
  EXPECT_EQ(WriteController("/abode.v1.ElasticAddresses/AssociateElasticAddress"), "elastic");
  EXPECT_EQ(WriteController("/abode.v1.Nodes/DeleteNode"), "nodes");
  EXPECT_EQ(WriteController("/abode.v1.Allocator/ListAllocations"), "");
  EXPECT_EQ(WriteController("/abode.v1.Pools/GetPool"), "");
  EXPECT_EQ(WriteController("/abode.v1.Nodes/WatchAssignments"), "");
  EXPECT_EQ(WriteController("/abode.v1.Allocator/Allocate"), "other") << "a write no controller is meant to make";

  AllocatorWrites writes;
  writes.Record("/abode.v1.Allocator/UpdateLabels", grpc::StatusCode::OK);
  writes.Record("/abode.v1.Allocator/UpdateLabels", grpc::StatusCode::OK);
  writes.Record("/abode.v1.Allocator/UpdateLabels", grpc::StatusCode::NOT_FOUND);
  writes.Record("/abode.v1.Allocator/ListAllocations", grpc::StatusCode::OK);
  writes.Record("/abode.v1.Nodes/SetNodeLabels", grpc::StatusCode::UNAVAILABLE);
  const auto counts = writes.Counts();
  ASSERT_EQ(counts.size(), 3u);
  EXPECT_EQ(counts.at({"pods", "UpdateLabels", "OK"}), 2u);
  EXPECT_EQ(counts.at({"pods", "UpdateLabels", "NOT_FOUND"}), 1u);
  EXPECT_EQ(counts.at({"nodes", "SetNodeLabels", "UNAVAILABLE"}), 1u);
  EXPECT_EQ(writes.Total(), 4u);
}

}  // namespace
}  // namespace abode::kube

// The RPCs of the public API that abodectl calls. Adding a command for a new RPC starts with a line here;
// api_methods_test checks every entry against the service descriptors generated from proto/.
#ifndef ABODE_CLI_API_METHODS_H_
#define ABODE_CLI_API_METHODS_H_

#include "abode/v1/allocator.pb.h"
#include "abode/v1/cluster.pb.h"
#include "abode/v1/nodes.pb.h"
#include "abode/v1/pools.pb.h"
#include "cli/transport.h"

namespace abode::cli {

inline constexpr UnaryMethod<v1::CreatePoolRequest, v1::Pool> kCreatePool{"/abode.v1.Pools/CreatePool"};
inline constexpr UnaryMethod<v1::GetPoolRequest, v1::Pool> kGetPool{"/abode.v1.Pools/GetPool"};
inline constexpr UnaryMethod<v1::ListPoolsRequest, v1::ListPoolsResponse> kListPools{"/abode.v1.Pools/ListPools"};
inline constexpr UnaryMethod<v1::DeletePoolRequest, v1::DeletePoolResponse> kDeletePool{"/abode.v1.Pools/DeletePool"};

inline constexpr UnaryMethod<v1::AllocateRequest, v1::Allocation> kAllocate{"/abode.v1.Allocator/Allocate"};
inline constexpr UnaryMethod<v1::ReleaseRequest, v1::ReleaseResponse> kRelease{"/abode.v1.Allocator/Release"};
inline constexpr UnaryMethod<v1::RenewRequest, v1::RenewResponse> kRenew{"/abode.v1.Allocator/Renew"};
inline constexpr UnaryMethod<v1::GetAllocationRequest, v1::GetAllocationResponse> kGetAllocation{
    "/abode.v1.Allocator/GetAllocation"};
inline constexpr UnaryMethod<v1::ListAllocationsRequest, v1::ListAllocationsResponse> kListAllocations{
    "/abode.v1.Allocator/ListAllocations"};
inline constexpr UnaryMethod<v1::GetHistoryRequest, v1::GetHistoryResponse> kGetHistory{
    "/abode.v1.Allocator/GetHistory"};

inline constexpr UnaryMethod<v1::ClusterStatusRequest, v1::ClusterStatus> kClusterStatus{"/abode.v1.Cluster/Status"};
inline constexpr UnaryMethod<v1::AddMemberRequest, v1::ClusterStatus> kAddMember{"/abode.v1.Cluster/AddMember"};
inline constexpr UnaryMethod<v1::RemoveMemberRequest, v1::ClusterStatus> kRemoveMember{
    "/abode.v1.Cluster/RemoveMember"};
inline constexpr UnaryMethod<v1::TransferLeadershipRequest, v1::ClusterStatus> kTransferLeadership{
    "/abode.v1.Cluster/TransferLeadership"};
inline constexpr UnaryMethod<v1::ChecksumRequest, v1::ChecksumResponse> kChecksum{"/abode.v1.Cluster/Checksum"};
inline constexpr ServerStreamMethod<v1::BackupRequest, v1::BackupChunk> kBackup{"/abode.v1.Cluster/Backup"};

inline constexpr UnaryMethod<v1::GetNodeRequest, v1::Node> kGetNode{"/abode.v1.Nodes/GetNode"};
inline constexpr UnaryMethod<v1::ListNodesRequest, v1::ListNodesResponse> kListNodes{"/abode.v1.Nodes/ListNodes"};
inline constexpr UnaryMethod<v1::DeleteNodeRequest, v1::DeleteNodeResponse> kDeleteNode{"/abode.v1.Nodes/DeleteNode"};
inline constexpr StreamMethod<v1::WatchAssignmentsRequest, v1::WatchAssignmentsResponse> kWatchAssignments{
    "/abode.v1.Nodes/WatchAssignments"};

inline constexpr UnaryMethod<v1::CreateExternalAddressRequest, v1::ExternalAddress> kCreateExternalAddress{
    "/abode.v1.ExternalAddresses/CreateExternalAddress"};
inline constexpr UnaryMethod<v1::GetExternalAddressRequest, v1::ExternalAddress> kGetExternalAddress{
    "/abode.v1.ExternalAddresses/GetExternalAddress"};
inline constexpr UnaryMethod<v1::ListExternalAddressesRequest, v1::ListExternalAddressesResponse>
    kListExternalAddresses{"/abode.v1.ExternalAddresses/ListExternalAddresses"};
inline constexpr UnaryMethod<v1::DeleteExternalAddressRequest, v1::DeleteAddressResponse> kDeleteExternalAddress{
    "/abode.v1.ExternalAddresses/DeleteExternalAddress"};

inline constexpr UnaryMethod<v1::CreateElasticAddressRequest, v1::ElasticAddress> kCreateElasticAddress{
    "/abode.v1.ElasticAddresses/CreateElasticAddress"};
inline constexpr UnaryMethod<v1::GetElasticAddressRequest, v1::ElasticAddress> kGetElasticAddress{
    "/abode.v1.ElasticAddresses/GetElasticAddress"};
inline constexpr UnaryMethod<v1::ListElasticAddressesRequest, v1::ListElasticAddressesResponse> kListElasticAddresses{
    "/abode.v1.ElasticAddresses/ListElasticAddresses"};
inline constexpr UnaryMethod<v1::DeleteElasticAddressRequest, v1::DeleteAddressResponse> kDeleteElasticAddress{
    "/abode.v1.ElasticAddresses/DeleteElasticAddress"};
inline constexpr UnaryMethod<v1::AssociateElasticAddressRequest, v1::ElasticAddress> kAssociateElasticAddress{
    "/abode.v1.ElasticAddresses/AssociateElasticAddress"};
inline constexpr UnaryMethod<v1::DisassociateElasticAddressRequest, v1::ElasticAddress> kDisassociateElasticAddress{
    "/abode.v1.ElasticAddresses/DisassociateElasticAddress"};

inline constexpr UnaryMethod<v1::CreateMagicAddressRequest, v1::MagicAddress> kCreateMagicAddress{
    "/abode.v1.MagicAddresses/CreateMagicAddress"};
inline constexpr UnaryMethod<v1::GetMagicAddressRequest, v1::MagicAddress> kGetMagicAddress{
    "/abode.v1.MagicAddresses/GetMagicAddress"};
inline constexpr UnaryMethod<v1::ListMagicAddressesRequest, v1::ListMagicAddressesResponse> kListMagicAddresses{
    "/abode.v1.MagicAddresses/ListMagicAddresses"};
inline constexpr UnaryMethod<v1::DeleteMagicAddressRequest, v1::DeleteAddressResponse> kDeleteMagicAddress{
    "/abode.v1.MagicAddresses/DeleteMagicAddress"};

}  // namespace abode::cli

#endif  // ABODE_CLI_API_METHODS_H_

// The RPCs of the public API that abodectl calls. Adding a command for a new RPC starts with a line here;
// api_methods_test checks every entry against the service descriptors generated from proto/.
#ifndef ABODE_CLI_API_METHODS_H_
#define ABODE_CLI_API_METHODS_H_

#include "abode/v1/allocator.pb.h"
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

}  // namespace abode::cli

#endif  // ABODE_CLI_API_METHODS_H_

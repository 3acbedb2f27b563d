// The one place where absl::Status becomes grpc::Status. Codes map one to one (they share numbering);
// nothing reaches a client as UNKNOWN.
#ifndef ABODE_ALLOCATOR_SERVICE_GRPC_STATUS_H_
#define ABODE_ALLOCATOR_SERVICE_GRPC_STATUS_H_

#include <string>

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace abode::allocator {

inline grpc::Status ToGrpcStatus(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  auto code = static_cast<grpc::StatusCode>(s.code());
  if (s.code() == absl::StatusCode::kUnknown) code = grpc::StatusCode::INTERNAL;
  return grpc::Status(code, std::string(s.message()));
}

}  // namespace abode::allocator

#endif  // ABODE_ALLOCATOR_SERVICE_GRPC_STATUS_H_

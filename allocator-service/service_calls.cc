#include "allocator-service/service_calls.h"

namespace abode::allocator {
namespace {

absl::string_view Metadata(grpc::CallbackServerContext* ctx, absl::string_view key) {
  const auto& md = ctx->client_metadata();
  auto it = md.find(grpc::string_ref(key.data(), key.size()));
  if (it == md.end()) return {};
  return absl::string_view(it->second.data(), it->second.size());
}

}  // namespace

std::string TraceParent(grpc::CallbackServerContext* ctx, absl::string_view from_request) {
  absl::string_view metadata = Metadata(ctx, "traceparent");
  return std::string(metadata.empty() ? from_request : metadata);
}

bool WantsStaleRead(grpc::CallbackServerContext* ctx) { return Metadata(ctx, "abode-read-stale") == "true"; }

grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* ctx, const absl::Status& s) {
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpcStatus(s));
  return reactor;
}

}  // namespace abode::allocator

#include "cni_allocator.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <thread>

#include "abode/v1/allocator.grpc.pb.h"
#include "abode/v1/pools.grpc.pb.h"
#include "tracing/grpc_tracing.h"

namespace abode::node {
namespace {

absl::Status ToAbsl(const grpc::Status& s) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

class GrpcCniAllocator final : public CniAllocator {
 public:
  GrpcCniAllocator(const std::vector<std::string>& endpoints, tracing::Tracer* tracer) {
    grpc::ChannelArguments args;
    // An allocator that comes back must be found within a CNI timeout, not after gRPC's two-minute backoff.
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    for (const std::string& endpoint : endpoints) {
      auto channel = tracing::CreateTracedChannel(endpoint, grpc::InsecureChannelCredentials(), args, tracer);
      channel->GetState(/*try_to_connect=*/true);  // warm: connect before the first pod arrives
      endpoints_.push_back(Endpoint{v1::Allocator::NewStub(channel), v1::Pools::NewStub(channel)});
    }
  }

  absl::StatusOr<v1::Pool> GetPool(const std::string& name, const CallContext& ctx) override {
    v1::GetPoolRequest req;
    req.set_name(name);
    return Call<v1::Pool>(ctx, [&](Endpoint& e, grpc::ClientContext* c, v1::Pool* out) {
      return e.pools->GetPool(c, req, out);
    });
  }
  absl::StatusOr<v1::Pool> CreatePool(const v1::PoolSpec& spec, const CallContext& ctx) override {
    v1::CreatePoolRequest req;
    *req.mutable_pool() = spec;
    return Call<v1::Pool>(ctx, [&](Endpoint& e, grpc::ClientContext* c, v1::Pool* out) {
      return e.pools->CreatePool(c, req, out);
    });
  }
  absl::StatusOr<v1::Allocation> Allocate(const v1::AllocateRequest& req, const CallContext& ctx) override {
    return Call<v1::Allocation>(ctx, [&](Endpoint& e, grpc::ClientContext* c, v1::Allocation* out) {
      return e.allocator->Allocate(c, req, out);
    });
  }
  absl::StatusOr<v1::AllocateManyResponse> AllocateMany(const v1::AllocateManyRequest& req,
                                                        const CallContext& ctx) override {
    return Call<v1::AllocateManyResponse>(ctx, [&](Endpoint& e, grpc::ClientContext* c, v1::AllocateManyResponse* out) {
      return e.allocator->AllocateMany(c, req, out);
    });
  }
  absl::StatusOr<v1::ReleaseResponse> Release(const v1::ReleaseRequest& req, const CallContext& ctx) override {
    return Call<v1::ReleaseResponse>(ctx, [&](Endpoint& e, grpc::ClientContext* c, v1::ReleaseResponse* out) {
      return e.allocator->Release(c, req, out);
    });
  }
  absl::StatusOr<v1::GetAllocationResponse> GetAllocation(const v1::GetAllocationRequest& req,
                                                          const CallContext& ctx) override {
    return Call<v1::GetAllocationResponse>(
        ctx, [&](Endpoint& e, grpc::ClientContext* c, v1::GetAllocationResponse* out) {
          return e.allocator->GetAllocation(c, req, out);
        });
  }
  absl::StatusOr<v1::ListAllocationsResponse> ListAllocations(const v1::ListAllocationsRequest& req,
                                                              const CallContext& ctx) override {
    return Call<v1::ListAllocationsResponse>(
        ctx, [&](Endpoint& e, grpc::ClientContext* c, v1::ListAllocationsResponse* out) {
          return e.allocator->ListAllocations(c, req, out);
        });
  }

 private:
  struct Endpoint {
    std::unique_ptr<v1::Allocator::Stub> allocator;
    std::unique_ptr<v1::Pools::Stub> pools;
  };

  // Tries the endpoint that last answered, then the others in turn, until one answers with anything but
  // UNAVAILABLE or the deadline passes. Writes are idempotent (Allocate and AllocateMany per owner, Release, CreatePool
  // answered ALREADY_EXISTS), so a retry after an unknown outcome is safe.
  template <typename Response, typename Fn>
  absl::StatusOr<Response> Call(const CallContext& ctx, Fn fn) {
    if (endpoints_.empty()) return absl::UnavailableError("no allocator endpoints");
    grpc::Status last;
    for (size_t attempt = 0;; ++attempt) {
      const size_t index = (current_.load() + attempt) % endpoints_.size();
      grpc::ClientContext context;
      context.set_deadline(ctx.deadline);
      if (!ctx.traceparent.empty()) context.AddMetadata("traceparent", ctx.traceparent);
      // A single endpoint waits for its channel to come back; several are tried in turn.
      context.set_wait_for_ready(endpoints_.size() == 1);
      Response out;
      last = fn(endpoints_[index], &context, &out);
      if (last.error_code() != grpc::StatusCode::UNAVAILABLE) {
        if (last.ok()) current_.store(index);
        return last.ok() ? absl::StatusOr<Response>(std::move(out)) : ToAbsl(last);
      }
      if (std::chrono::system_clock::now() >= ctx.deadline) break;
      if ((attempt + 1) % endpoints_.size() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return ToAbsl(last);
  }

  std::vector<Endpoint> endpoints_;
  std::atomic<size_t> current_{0};
};

}  // namespace

std::unique_ptr<CniAllocator> NewGrpcCniAllocator(const std::vector<std::string>& endpoints, tracing::Tracer* tracer) {
  return std::make_unique<GrpcCniAllocator>(endpoints, tracer);
}

}  // namespace abode::node

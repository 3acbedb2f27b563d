// Tests only: what every in-process test allocator starts from, and a channel to it.
#ifndef ABODE_ALLOCATOR_SERVICE_TEST_SERVER_H_
#define ABODE_ALLOCATOR_SERVICE_TEST_SERVER_H_

#include <memory>
#include <string>

#include <grpcpp/create_channel.h>

#include "abode/v1/pools.grpc.pb.h"
#include "absl/status/status.h"
#include "allocator-service/server.h"
#include "replication/clock.h"

namespace abode::allocator {

// A single-voter allocator on a free loopback port, its state under `data_dir`, on `clock`.
inline ServerOptions LocalTestServerOptions(const std::string& data_dir, replication::Clock* clock) {
  ServerOptions o;
  o.listen = "127.0.0.1:0";
  o.raft.data_dir = data_dir;
  o.raft.clock = clock;
  return o;
}

// Starts a server with `options` into *server.
inline absl::Status StartLocalTestServer(const ServerOptions& options, std::unique_ptr<AllocatorServer>* server) {
  auto started = AllocatorServer::Start(options);
  if (!started.ok()) return started.status();
  *server = std::move(*started);
  return absl::OkStatus();
}

// A channel to `server`'s port on loopback.
inline std::shared_ptr<grpc::Channel> LocalChannelTo(const AllocatorServer& server) {
  return grpc::CreateChannel("127.0.0.1:" + std::to_string(server.port()), grpc::InsecureChannelCredentials());
}

// Creates pool `name` on `cidr` for `purpose` through `pools`.
inline grpc::Status CreateTestPool(v1::Pools::Stub& pools, const std::string& name, const std::string& cidr,
                                   v1::PoolPurpose purpose = v1::POOL_PURPOSE_UNSPECIFIED) {
  grpc::ClientContext ctx;
  v1::CreatePoolRequest req;
  req.mutable_pool()->set_name(name);
  req.mutable_pool()->set_cidr(cidr);
  req.mutable_pool()->set_purpose(purpose);
  v1::Pool out;
  return pools.CreatePool(&ctx, req, &out);
}

}  // namespace abode::allocator

#endif  // ABODE_ALLOCATOR_SERVICE_TEST_SERVER_H_

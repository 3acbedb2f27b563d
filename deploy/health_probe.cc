// abode-grpc-health-probe ADDRESS [TIMEOUT_MS]: what the kubelet's gRPC probe does, for the image and manifest
// tests: grpc.health.v1.Health/Check for the server as a whole (service ""), exit 0 when the answer is
// SERVING, 1 otherwise (the reason on stderr), 2 on a usage error.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    std::fprintf(stderr, "usage: %s HOST:PORT [TIMEOUT_MS]\n", argv[0]);
    return 2;
  }
  const long timeout_ms = argc == 3 ? std::strtol(argv[2], nullptr, 10) : 1000;
  auto channel = grpc::CreateChannel(argv[1], grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms));
  grpc::Slice empty("");  // HealthCheckRequest{service: ""} encodes as nothing
  grpc::ByteBuffer request(&empty, 1);
  grpc::ByteBuffer response;
  std::promise<grpc::Status> done;
  stub.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                 [&done](grpc::Status s) { done.set_value(std::move(s)); });
  const grpc::Status status = done.get_future().get();
  if (!status.ok()) {
    std::fprintf(stderr, "health check of %s: %s\n", argv[1], status.error_message().c_str());
    return 1;
  }
  std::vector<grpc::Slice> slices;
  std::string bytes;
  if (response.Dump(&slices).ok()) {
    for (const grpc::Slice& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  // HealthCheckResponse{status: SERVING (1)}: field 1, varint 1.
  if (bytes != std::string("\x08\x01", 2)) {
    std::fprintf(stderr, "health check of %s: not SERVING\n", argv[1]);
    return 1;
  }
  std::printf("%s: SERVING\n", argv[1]);
  return 0;
}

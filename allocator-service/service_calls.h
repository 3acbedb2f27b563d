// What every unary handler of the allocator's gRPC services does the same way: finishing at once, writing
// through the command log, and reading once the read fence allows it, on the read executor.
//
// Threading: handlers run on gRPC's callback threads and never block there. A write's reply runs where the
// command log answers (a completion thread, or the thread of the leader's answer); a read's query runs on
// the read executor, never on the threads that answer writes.
#ifndef ABODE_ALLOCATOR_SERVICE_SERVICE_CALLS_H_
#define ABODE_ALLOCATOR_SERVICE_SERVICE_CALLS_H_

#include <string>
#include <utility>

#include <grpcpp/server_context.h>
#include <grpcpp/support/server_callback.h>

#include "abode/v1/commands.pb.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "allocator-service/grpc_status.h"
#include "allocator-service/read_executor.h"
#include "replication/command_log.h"
#include "replication/read_fence.h"

namespace abode::allocator {

// The W3C trace context of the call: the "traceparent" metadata (which the tracing interceptor sets to the
// call's own span), else `from_request`.
std::string TraceParent(grpc::CallbackServerContext* ctx, absl::string_view from_request = {});
// True when the call carries "abode-read-stale: true".
bool WantsStaleRead(grpc::CallbackServerContext* ctx);

// Finishes the call with `s` at once.
grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* ctx, const absl::Status& s);

// Proposes `command` (its traceparent, unless already set, from the call's metadata; the call's deadline)
// and finishes the call once it is applied: with `*resp = std::move(*(result.*field)())`, or with the command's error.
template <typename Response>
grpc::ServerUnaryReactor* ProposeAndFinish(grpc::CallbackServerContext* ctx, replication::CommandLog& log,
                                           v1::Command command, Response* (v1::CommandResult::*field)(),
                                           Response* resp) {
  if (command.traceparent().empty()) command.set_traceparent(TraceParent(ctx));
  auto* reactor = ctx->DefaultReactor();
  log.Propose(std::move(command), ctx->deadline(), [reactor, resp, field](replication::CommandOutcome outcome) {
    if (!outcome.ok()) {
      reactor->Finish(ToGrpcStatus(outcome.status()));
      return;
    }
    *resp = std::move(*((*outcome).*field)());
    reactor->Finish(grpc::Status::OK);
  });
  return reactor;
}

// The one write path: `request` goes into the command's `slot` (e.g. &v1::Command::mutable_allocate) and
// the reply comes from the result's `field`.
template <typename Request, typename Response>
grpc::ServerUnaryReactor* Write(grpc::CallbackServerContext* ctx, replication::CommandLog& log, const Request& request,
                                Request* (v1::Command::*slot)(), Response* (v1::CommandResult::*field)(),
                                Response* resp) {
  v1::Command command;
  *(command.*slot)() = request;
  return ProposeAndFinish(ctx, log, std::move(command), field, resp);
}

// Finishes a read's call with its result.
template <typename Response>
void FinishRead(grpc::ServerUnaryReactor* reactor, Response* resp, absl::StatusOr<Response> result) {
  if (result.ok()) *resp = std::move(*result);
  reactor->Finish(ToGrpcStatus(result.status()));
}

// Answers a read with `read()` once `fence` allows it (the consistency the call asks for): the query on a
// read thread of `executor`, the reply on its reply thread (see read_executor.h). Without a fence the read
// goes ahead at once; without an executor it runs, and is answered, on the thread that got the fence's
// answer. `read` must not refer to the handler's locals.
template <typename Response, typename Read>
grpc::ServerUnaryReactor* ReadAndFinish(grpc::CallbackServerContext* ctx, replication::ReadFence* fence,
                                        ReadExecutor* executor, Response* resp, Read read) {
  auto* reactor = ctx->DefaultReactor();
  auto fenced = [reactor, resp, executor, read = std::move(read)](absl::Status s) mutable {
    if (!s.ok()) {
      reactor->Finish(ToGrpcStatus(s));
    } else if (executor == nullptr) {
      FinishRead<Response>(reactor, resp, read());
    } else {
      executor->Post([reactor, resp, executor, read = std::move(read)]() mutable {
        executor->Reply([reactor, resp, result = absl::StatusOr<Response>(read())]() mutable {
          FinishRead<Response>(reactor, resp, std::move(result));
        });
      });
    }
  };
  if (fence == nullptr) {
    fenced(absl::OkStatus());
  } else {
    fence->Await(WantsStaleRead(ctx) ? replication::ReadConsistency::kStale
                                     : replication::ReadConsistency::kLinearizable,
                 ctx->deadline(), std::move(fenced));
  }
  return reactor;
}

}  // namespace abode::allocator

#endif  // ABODE_ALLOCATOR_SERVICE_SERVICE_CALLS_H_

#include "allocator-service/node_services.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "allocator-service/service_calls.h"
#include "domain/node_specs.h"
#include "domain/validation.h"

namespace abode::allocator {
namespace {

using WatchReactorBase = grpc::ServerBidiReactor<v1::WatchAssignmentsRequest, v1::WatchAssignmentsResponse>;

absl::Status NameGiven(const std::string& name, absl::string_view field) {
  return domain::ValidateName(name, field, false);
}

// The write path of every handler below: refused when `name` (the request's `field`) is not a valid name,
// else proposed as the command's `slot`, answered from the result's `field`.
template <typename Request, typename Response>
grpc::ServerUnaryReactor* NamedWrite(grpc::CallbackServerContext* ctx, replication::CommandLog& log,
                                     const std::string& name, absl::string_view name_field, const Request& req,
                                     Request* (v1::Command::*slot)(), Response* (v1::CommandResult::*field)(),
                                     Response* resp) {
  if (absl::Status s = NameGiven(name, name_field); !s.ok()) return FinishNow(ctx, s);
  return Write(ctx, log, req, slot, field, resp);
}

template <typename Map>
absl::Status Lookup(const Map& objects, const std::string& name, absl::string_view what) {
  if (absl::Status s = NameGiven(name, "name"); !s.ok()) return s;
  if (objects.find(name) == objects.end()) {
    return absl::NotFoundError(absl::StrCat("name: ", what, " \"", name, "\" not found"));
  }
  return absl::OkStatus();
}

// One node client's stream: the first request names the node (and registers it); then the hub's messages
// go down while heartbeats and status reports come up.
class WatchReactor final : public WatchReactorBase, public AssignmentFeed::Watcher {
 public:
  WatchReactor(AssignmentFeed& feed, NodeLiveness& liveness, tracing::Tracer* tracer)
      : feed_(feed), liveness_(liveness), tracer_(tracer) {
    StartRead(&request_);
  }

  void Notify() override { TryWrite(); }

  void OnReadDone(bool ok) override {
    if (!ok) {
      // The client closed its side or went away.
      End(grpc::Status::OK);
      return;
    }
    if (node_.empty()) {
      if (!Begin()) return;
    } else if (request_.has_heartbeat()) {
      if (registered_) {
        liveness_.Heartbeat(node_);
        Acknowledge(request_.heartbeat().sequence());
      }
    } else if (request_.has_status()) {
      if (registered_) liveness_.ReportStatus(node_, request_.status());
    } else if (request_.has_start()) {
      End(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "start: sent twice on one stream"));
      return;
    }
    StartRead(&request_);
  }

  void OnWriteDone(bool ok) override {
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      for (tracing::Span& span : delivering_) {
        if (!ok) span.SetError("the stream closed before the message went out");
      }
      delivering_.clear();  // ends them
    }
    if (!ok) {
      End(grpc::Status::OK);
      return;
    }
    TryWrite();
  }

  void OnCancel() override { End(grpc::Status::CANCELLED); }

  void OnDone() override {
    if (subscribed_) feed_.Unsubscribe(node_, this);
    if (registered_) liveness_.Disconnect(node_);
    delete this;
  }

 private:
  bool Begin() {
    if (!request_.has_start()) {
      End(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "start: the first message must be start"));
      return false;
    }
    const v1::WatchStart& start = request_.start();
    absl::Status s = start.node().empty() ? absl::InvalidArgumentError("start.node: must not be empty")
                                          : domain::ValidateNodeName(start.node(), "start.node");
    if (s.ok() && start.has_registration()) {
      if (start.registration().name() != start.node()) {
        s = absl::InvalidArgumentError("start.registration.name: must equal start.node");
      } else {
        s = domain::ValidateLabels(start.registration().labels(), "start.registration.labels");
      }
    }
    if (!s.ok()) {
      End(ToGrpcStatus(s));
      return false;
    }
    node_ = start.node();
    {
      absl::MutexLock lock(&mu_);
      after_ = start.resume_revision();
    }
    if (start.has_registration()) {
      liveness_.Connect(start.registration());
      registered_ = true;
      Acknowledge(start.heartbeat_sequence());
    }
    feed_.Subscribe(node_, this);
    subscribed_ = true;
    TryWrite();
    return true;
  }

  // Vouches for the node's lease from when it sent heartbeat `sequence`, if this replica can: it leads, or
  // its relays reach the leader.
  void Acknowledge(uint64_t sequence) {
    if (sequence == 0 || !liveness_.VouchesForLeases()) return;
    {
      absl::MutexLock lock(&mu_);
      acknowledge_ = std::max(acknowledge_, sequence);
    }
    TryWrite();
  }

  void TryWrite() {
    absl::MutexLock lock(&mu_);
    if (writing_ || finished_ || node_.empty()) return;
    // A registering node's first message describes it as a ready node: a node coming back after its lease
    // ran out is not ready until its registration is applied, and a snapshot of a node that is not ready
    // lacks what every ready node carries (magic addresses), which it would remove and place again.
    if (first_ && registered_ && !feed_.Ready(node_)) return;
    auto next = feed_.Next(node_, &after_, first_);
    if (!next && acknowledge_ == acknowledged_) return;
    if (!next) next.emplace();  // an acknowledgement alone
    if (first_) {
      next->set_lease_ms(liveness_.lease_ms());
      next->set_acknowledges_heartbeats(true);
    }
    if (acknowledge_ != acknowledged_) {
      next->set_heartbeat_acknowledged(acknowledge_);
      acknowledged_ = acknowledge_;
    }
    first_ = false;
    if (tracer_ != nullptr && !next->snapshot()) TraceDelivery(*next);
    response_ = std::move(*next);
    writing_ = true;
    StartWrite(&response_);
  }

  // A span per changed assignment, from the write to its completion; the node continues under it.
  void TraceDelivery(v1::WatchAssignmentsResponse& message) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (v1::Assignment& assignment : *message.mutable_assignments()) {
      if (assignment.traceparent().empty()) continue;
      tracing::Span span = tracer_->StartSpan("watch.deliver", tracing::SpanKind::kProducer, assignment.traceparent());
      if (!span.context().valid()) continue;
      span.SetAttribute("abode.node", node_)
          .SetAttribute("abode.assignment", assignment.id())
          .SetAttribute("abode.revision", assignment.revision());
      assignment.set_traceparent(span.traceparent());
      delivering_.push_back(std::move(span));
    }
  }

  void End(grpc::Status status) {
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    finished_ = true;
    Finish(std::move(status));
  }

  AssignmentFeed& feed_;
  NodeLiveness& liveness_;
  tracing::Tracer* const tracer_;  // null: no spans
  v1::WatchAssignmentsRequest request_;  // reads are sequential: one at a time
  std::string node_;                     // set once, by the first read
  bool registered_ = false;
  bool subscribed_ = false;

  absl::Mutex mu_;  // writes and finishing race with hub notifications; taken before the hub's
  v1::WatchAssignmentsResponse response_ ABSL_GUARDED_BY(mu_);
  uint64_t after_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t acknowledge_ ABSL_GUARDED_BY(mu_) = 0;   // the latest heartbeat sequence vouched for
  uint64_t acknowledged_ ABSL_GUARDED_BY(mu_) = 0;  // the latest sent
  bool first_ ABSL_GUARDED_BY(mu_) = true;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<tracing::Span> delivering_ ABSL_GUARDED_BY(mu_);  // of the message being written
};

}  // namespace

// ------------------------------------------------------------------------------------------------ Nodes

namespace {

// A node read passed on to the leader; the leader answers from its own memory ("abode-read-stale").
struct LeaderRead {
  grpc::ClientContext ctx;
  std::unique_ptr<v1::Nodes::Stub> stub;
};

// Passes a call to the leader, marked so that the leader answers it itself.
template <typename Request, typename Response, typename Call>
grpc::ServerUnaryReactor* AtLeader(grpc::CallbackServerContext* ctx, LeaderChannels& link,
                                       const std::string& leader, const Request* req, Response* resp, Call call) {
  auto* reactor = ctx->DefaultReactor();
  auto* read = new LeaderRead();
  read->stub = v1::Nodes::NewStub(link.Channel(leader));
  read->ctx.set_deadline(link.CallDeadline(ctx->deadline()));
  read->ctx.AddMetadata("abode-read-stale", "true");
  call(read->stub->async(), &read->ctx, req, resp, [reactor, read, leader](grpc::Status s) {
    if (!s.ok() && (s.error_code() == grpc::StatusCode::UNAVAILABLE ||
                    s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED)) {
      s = grpc::Status(grpc::StatusCode::UNAVAILABLE,
                       absl::StrCat("calling the leader ", leader, " failed (", s.error_message(), "); retry"));
    }
    reactor->Finish(s);
    delete read;
  });
  return reactor;
}

}  // namespace

absl::StatusOr<std::string> NodesService::LeaderFor(grpc::CallbackServerContext* ctx) {
  if (link_ == nullptr || WantsStaleRead(ctx)) return std::string();
  const LeaderLiveness::Leader leader = liveness_.leader();
  if (leader.self) return std::string();
  if (leader.address.empty()) return absl::UnavailableError("no leader is known to this replica; retry");
  return leader.address;
}

WatchReactorBase* NodesService::WatchAssignments(grpc::CallbackServerContext* /*ctx*/) {
  return new WatchReactor(feed_, liveness_, tracer_ != nullptr && tracer_->enabled() ? tracer_ : nullptr);
}

v1::Node NodesService::Describe(const v1::Node& stored) {
  v1::Node out = stored;
  liveness_.Fill(&out);
  for (auto& a : feed_.Assignments(stored.spec().name())) *out.add_assignments() = std::move(a);
  return out;
}

grpc::ServerUnaryReactor* NodesService::GetNode(grpc::CallbackServerContext* ctx, const v1::GetNodeRequest* req,
                                                v1::Node* resp) {
  if (req->name().empty()) return FinishNow(ctx, absl::InvalidArgumentError("name: must not be empty"));
  auto leader = LeaderFor(ctx);
  if (!leader.ok()) return FinishNow(ctx, leader.status());
  if (!leader->empty()) {
    return AtLeader(ctx, *link_, *leader, req, resp, [](auto* stub, auto* c, auto* q, auto* r, auto done) {
      stub->GetNode(c, q, r, std::move(done));
    });
  }
  auto view = feed_.view();
  auto it = view->nodes.find(req->name());
  if (it == view->nodes.end()) {
    return FinishNow(ctx, absl::NotFoundError(absl::StrCat("name: node \"", req->name(), "\" not found")));
  }
  *resp = Describe(*it->second);
  return FinishNow(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* NodesService::ListNodes(grpc::CallbackServerContext* ctx, const v1::ListNodesRequest* req,
                                                  v1::ListNodesResponse* resp) {
  auto selector = domain::ParseLabelSelector(req->label_selector(), "label_selector");
  if (!selector.ok()) return FinishNow(ctx, selector.status());
  auto leader = LeaderFor(ctx);
  if (!leader.ok()) return FinishNow(ctx, leader.status());
  if (!leader->empty()) {
    return AtLeader(ctx, *link_, *leader, req, resp, [](auto* stub, auto* c, auto* q, auto* r, auto done) {
      stub->ListNodes(c, q, r, std::move(done));
    });
  }
  auto view = feed_.view();
  for (const auto& [name, node] : view->nodes) {
    if (!domain::SelectorMatches(*selector, domain::NodeLabels(*node))) continue;
    *resp->add_nodes() = Describe(*node);
  }
  resp->set_revision(view->revision);
  return FinishNow(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* NodesService::SetNodeLabels(grpc::CallbackServerContext* ctx,
                                                      const v1::SetNodeLabelsRequest* req, v1::Node* resp) {
  absl::Status s = req->name().empty() ? absl::InvalidArgumentError("name: must not be empty")
                                       : domain::ValidateNodeName(req->name(), "name");
  if (s.ok()) s = domain::ValidateLabels(req->labels(), "labels");
  if (!s.ok()) return FinishNow(ctx, s);
  return Write(ctx, log_, *req, &v1::Command::mutable_set_node_labels, &v1::CommandResult::mutable_node, resp);
}

grpc::ServerUnaryReactor* NodesService::DeleteNode(grpc::CallbackServerContext* ctx, const v1::DeleteNodeRequest* req,
                                                   v1::DeleteNodeResponse* resp) {
  if (req->node().empty()) return FinishNow(ctx, absl::InvalidArgumentError("node: must not be empty"));
  if (!req->force()) {
    auto leader = LeaderFor(ctx);
    if (!leader.ok()) return FinishNow(ctx, leader.status());
    if (!leader->empty()) {
      return AtLeader(ctx, *link_, *leader, req, resp, [](auto* stub, auto* c, auto* q, auto* r, auto done) {
        stub->DeleteNode(c, q, r, std::move(done));
      });
    }
    v1::Node known;
    known.mutable_spec()->set_name(req->node());
    liveness_.Fill(&known);
    if (known.connected()) {
      return FinishNow(ctx, absl::FailedPreconditionError(absl::StrCat(
                                "node: node \"", req->node(),
                                "\" is connected; stop its abode-node first, or delete it with force")));
    }
  }
  v1::Command command;
  *command.mutable_delete_node() = *req;
  return ProposeAndFinish(ctx, log_, std::move(command), &v1::CommandResult::mutable_delete_node, resp);
}

// ------------------------------------------------------------------------------------ ExternalAddresses

grpc::ServerUnaryReactor* ExternalAddressesService::CreateExternalAddress(grpc::CallbackServerContext* ctx,
                                                                          const v1::CreateExternalAddressRequest* req,
                                                                          v1::ExternalAddress* resp) {
  return NamedWrite(ctx, log_, req->address().name(), "address.name", *req, &v1::Command::mutable_create_external_address,
                    &v1::CommandResult::mutable_external_address, resp);
}

grpc::ServerUnaryReactor* ExternalAddressesService::GetExternalAddress(grpc::CallbackServerContext* ctx,
                                                                       const v1::GetExternalAddressRequest* req,
                                                                       v1::ExternalAddress* resp) {
  auto view = views_.view();
  if (absl::Status s = Lookup(view->externals, req->name(), "external address"); !s.ok()) return FinishNow(ctx, s);
  *resp = *view->externals.at(req->name());
  return FinishNow(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* ExternalAddressesService::ListExternalAddresses(
    grpc::CallbackServerContext* ctx, const v1::ListExternalAddressesRequest* req,
    v1::ListExternalAddressesResponse* resp) {
  auto view = views_.view();
  for (const auto& [name, x] : view->externals) {
    if (req->node().empty() || x->node() == req->node()) *resp->add_addresses() = *x;
  }
  resp->set_revision(view->revision);
  return FinishNow(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* ExternalAddressesService::DeleteExternalAddress(grpc::CallbackServerContext* ctx,
                                                                          const v1::DeleteExternalAddressRequest* req,
                                                                          v1::DeleteAddressResponse* resp) {
  return NamedWrite(ctx, log_, req->name(), "name", *req, &v1::Command::mutable_delete_external_address,
                    &v1::CommandResult::mutable_delete_address, resp);
}

// ------------------------------------------------------------------------------------- ElasticAddresses

grpc::ServerUnaryReactor* ElasticAddressesService::CreateElasticAddress(grpc::CallbackServerContext* ctx,
                                                                        const v1::CreateElasticAddressRequest* req,
                                                                        v1::ElasticAddress* resp) {
  return NamedWrite(ctx, log_, req->address().name(), "address.name", *req, &v1::Command::mutable_create_elastic_address,
                    &v1::CommandResult::mutable_elastic_address, resp);
}

grpc::ServerUnaryReactor* ElasticAddressesService::GetElasticAddress(grpc::CallbackServerContext* ctx,
                                                                     const v1::GetElasticAddressRequest* req,
                                                                     v1::ElasticAddress* resp) {
  auto view = views_.view();
  if (absl::Status s = Lookup(view->elastics, req->name(), "elastic address"); !s.ok()) return FinishNow(ctx, s);
  *resp = *view->elastics.at(req->name());
  return FinishNow(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* ElasticAddressesService::ListElasticAddresses(grpc::CallbackServerContext* ctx,
                                                                        const v1::ListElasticAddressesRequest*,
                                                                        v1::ListElasticAddressesResponse* resp) {
  auto view = views_.view();
  for (const auto& [name, e] : view->elastics) *resp->add_addresses() = *e;
  resp->set_revision(view->revision);
  return FinishNow(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* ElasticAddressesService::DeleteElasticAddress(grpc::CallbackServerContext* ctx,
                                                                        const v1::DeleteElasticAddressRequest* req,
                                                                        v1::DeleteAddressResponse* resp) {
  return NamedWrite(ctx, log_, req->name(), "name", *req, &v1::Command::mutable_delete_elastic_address,
                    &v1::CommandResult::mutable_delete_address, resp);
}

grpc::ServerUnaryReactor* ElasticAddressesService::AssociateElasticAddress(
    grpc::CallbackServerContext* ctx, const v1::AssociateElasticAddressRequest* req, v1::ElasticAddress* resp) {
  return NamedWrite(ctx, log_, req->name(), "name", *req, &v1::Command::mutable_associate_elastic_address,
                    &v1::CommandResult::mutable_elastic_address, resp);
}

grpc::ServerUnaryReactor* ElasticAddressesService::DisassociateElasticAddress(
    grpc::CallbackServerContext* ctx, const v1::DisassociateElasticAddressRequest* req, v1::ElasticAddress* resp) {
  return NamedWrite(ctx, log_, req->name(), "name", *req, &v1::Command::mutable_disassociate_elastic_address,
                    &v1::CommandResult::mutable_elastic_address, resp);
}

// --------------------------------------------------------------------------------------- MagicAddresses

grpc::ServerUnaryReactor* MagicAddressesService::CreateMagicAddress(grpc::CallbackServerContext* ctx,
                                                                    const v1::CreateMagicAddressRequest* req,
                                                                    v1::MagicAddress* resp) {
  return NamedWrite(ctx, log_, req->address().name(), "address.name", *req, &v1::Command::mutable_create_magic_address,
                    &v1::CommandResult::mutable_magic_address, resp);
}

grpc::ServerUnaryReactor* MagicAddressesService::GetMagicAddress(grpc::CallbackServerContext* ctx,
                                                                 const v1::GetMagicAddressRequest* req,
                                                                 v1::MagicAddress* resp) {
  auto view = views_.view();
  if (absl::Status s = Lookup(view->magics, req->name(), "magic address"); !s.ok()) return FinishNow(ctx, s);
  *resp = *view->magics.at(req->name());
  return FinishNow(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* MagicAddressesService::ListMagicAddresses(grpc::CallbackServerContext* ctx,
                                                                    const v1::ListMagicAddressesRequest*,
                                                                    v1::ListMagicAddressesResponse* resp) {
  auto view = views_.view();
  for (const auto& [name, m] : view->magics) *resp->add_addresses() = *m;
  resp->set_revision(view->revision);
  return FinishNow(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* MagicAddressesService::DeleteMagicAddress(grpc::CallbackServerContext* ctx,
                                                                    const v1::DeleteMagicAddressRequest* req,
                                                                    v1::DeleteAddressResponse* resp) {
  return NamedWrite(ctx, log_, req->name(), "name", *req, &v1::Command::mutable_delete_magic_address,
                    &v1::CommandResult::mutable_delete_address, resp);
}

}  // namespace abode::allocator

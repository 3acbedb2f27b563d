#include "allocator-service/node_services.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <mutex>
#include <utility>

#include "absl/strings/str_cat.h"
#include "allocator-service/grpc_status.h"
#include "domain/validation.h"

namespace abode::allocator {
namespace {

using WatchReactorBase = grpc::ServerBidiReactor<v1::WatchAssignmentsRequest, v1::WatchAssignmentsResponse>;

std::string TraceParentOf(grpc::CallbackServerContext* ctx) {
  const auto& md = ctx->client_metadata();
  auto it = md.find("traceparent");
  return it == md.end() ? std::string() : std::string(it->second.data(), it->second.size());
}

grpc::ServerUnaryReactor* Done(grpc::CallbackServerContext* ctx, const absl::Status& s) {
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpcStatus(s));
  return reactor;
}

// Proposes `command` and finishes the call with `fill(result, resp)` once it is applied.
template <typename Response, typename Fill>
grpc::ServerUnaryReactor* Write(grpc::CallbackServerContext* ctx, CommandLog& log, v1::Command command,
                                Response* resp, Fill fill) {
  command.set_traceparent(TraceParentOf(ctx));
  auto* reactor = ctx->DefaultReactor();
  log.Propose(std::move(command), ctx->deadline(), [reactor, resp, fill](storage::CommandOutcome outcome) {
    if (!outcome.ok()) {
      reactor->Finish(ToGrpcStatus(outcome.status()));
      return;
    }
    fill(std::move(*outcome), resp);
    reactor->Finish(grpc::Status::OK);
  });
  return reactor;
}

absl::Status NameGiven(const std::string& name, absl::string_view field) {
  return domain::ValidateName(name, field, false);
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
class WatchReactor final : public WatchReactorBase, public WatchHub::Watcher {
 public:
  WatchReactor(WatchHub& hub, NodeRegistry& registry) : hub_(hub), registry_(registry) { StartRead(&request_); }

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
        registry_.Heartbeat(node_);
        Acknowledge(request_.heartbeat().sequence());
      }
    } else if (request_.has_status()) {
      if (registered_) registry_.ReportStatus(node_, request_.status());
    } else if (request_.has_start()) {
      End(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "start: sent twice on one stream"));
      return;
    }
    StartRead(&request_);
  }

  void OnWriteDone(bool ok) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      writing_ = false;
    }
    if (!ok) {
      End(grpc::Status::OK);
      return;
    }
    TryWrite();
  }

  void OnCancel() override { End(grpc::Status::CANCELLED); }

  void OnDone() override {
    if (subscribed_) hub_.Unsubscribe(node_, this);
    if (registered_) registry_.Disconnect(node_);
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
      std::lock_guard<std::mutex> lock(mu_);
      after_ = start.resume_revision();
    }
    if (start.has_registration()) {
      registry_.Connect(start.registration());
      registered_ = true;
      Acknowledge(start.heartbeat_sequence());
    }
    hub_.Subscribe(node_, this);
    subscribed_ = true;
    TryWrite();
    return true;
  }

  // Vouches for the node's lease from when it sent heartbeat `sequence`, if this replica can: it leads, or
  // its relays reach the leader.
  void Acknowledge(uint64_t sequence) {
    if (sequence == 0 || !registry_.VouchesForLeases()) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      acknowledge_ = std::max(acknowledge_, sequence);
    }
    TryWrite();
  }

  void TryWrite() {
    std::lock_guard<std::mutex> lock(mu_);
    if (writing_ || finished_ || node_.empty()) return;
    // A registering node's first message describes it as a ready node: a node coming back after its lease
    // ran out is not ready until its registration is applied, and a snapshot of a node that is not ready
    // lacks what every ready node carries (magic addresses), which it would remove and place again.
    if (first_ && registered_ && !hub_.Ready(node_)) return;
    auto next = hub_.Next(node_, &after_, first_);
    if (!next && acknowledge_ == acknowledged_) return;
    if (!next) next.emplace();  // an acknowledgement alone
    if (first_) {
      next->set_lease_ms(registry_.lease_ms());
      next->set_acknowledges_heartbeats(true);
    }
    if (acknowledge_ != acknowledged_) {
      next->set_heartbeat_acknowledged(acknowledge_);
      acknowledged_ = acknowledge_;
    }
    first_ = false;
    response_ = std::move(*next);
    writing_ = true;
    StartWrite(&response_);
  }

  void End(grpc::Status status) {
    std::lock_guard<std::mutex> lock(mu_);
    if (finished_) return;
    finished_ = true;
    Finish(std::move(status));
  }

  WatchHub& hub_;
  NodeRegistry& registry_;
  v1::WatchAssignmentsRequest request_;  // reads are sequential: one at a time
  std::string node_;                     // set once, by the first read
  bool registered_ = false;
  bool subscribed_ = false;

  std::mutex mu_;  // writes and finishing race with hub notifications
  v1::WatchAssignmentsResponse response_;
  uint64_t after_ = 0;
  uint64_t acknowledge_ = 0;    // the latest heartbeat sequence vouched for
  uint64_t acknowledged_ = 0;   // the latest sent
  bool first_ = true;
  bool writing_ = false;
  bool finished_ = false;
};

}  // namespace

// ------------------------------------------------------------------------------------------------ Nodes

namespace {

// A node read passed on to the leader; the leader answers from its own memory ("abode-read-stale").
struct LeaderRead {
  grpc::ClientContext ctx;
  std::unique_ptr<v1::Nodes::Stub> stub;
};

template <typename Request, typename Response, typename Call>
grpc::ServerUnaryReactor* ReadAtLeader(grpc::CallbackServerContext* ctx, GrpcLeaderLink& link,
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
                       absl::StrCat("reading nodes at the leader ", leader, " failed (", s.error_message(), "); retry"));
    }
    reactor->Finish(s);
    delete read;
  });
  return reactor;
}

}  // namespace

absl::StatusOr<std::string> NodesService::LeaderFor(grpc::CallbackServerContext* ctx) {
  if (link_ == nullptr) return std::string();
  const auto& md = ctx->client_metadata();
  auto it = md.find("abode-read-stale");
  if (it != md.end() && absl::string_view(it->second.data(), it->second.size()) == "true") return std::string();
  const LeaderLiveness::Leader leader = registry_.leader();
  if (leader.self) return std::string();
  if (leader.address.empty()) return absl::UnavailableError("no leader is known to this replica; retry");
  return leader.address;
}

WatchReactorBase* NodesService::WatchAssignments(grpc::CallbackServerContext* /*ctx*/) {
  return new WatchReactor(hub_, registry_);
}

v1::Node NodesService::Describe(const v1::Node& stored) {
  v1::Node out = stored;
  registry_.Fill(&out);
  for (auto& a : hub_.Assignments(stored.spec().name())) *out.add_assignments() = std::move(a);
  return out;
}

grpc::ServerUnaryReactor* NodesService::GetNode(grpc::CallbackServerContext* ctx, const v1::GetNodeRequest* req,
                                                v1::Node* resp) {
  if (req->name().empty()) return Done(ctx, absl::InvalidArgumentError("name: must not be empty"));
  auto leader = LeaderFor(ctx);
  if (!leader.ok()) return Done(ctx, leader.status());
  if (!leader->empty()) {
    return ReadAtLeader(ctx, *link_, *leader, req, resp, [](auto* stub, auto* c, auto* q, auto* r, auto done) {
      stub->GetNode(c, q, r, std::move(done));
    });
  }
  auto view = hub_.view();
  auto it = view->nodes.find(req->name());
  if (it == view->nodes.end()) {
    return Done(ctx, absl::NotFoundError(absl::StrCat("name: node \"", req->name(), "\" not found")));
  }
  *resp = Describe(*it->second);
  return Done(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* NodesService::ListNodes(grpc::CallbackServerContext* ctx, const v1::ListNodesRequest* req,
                                                  v1::ListNodesResponse* resp) {
  auto selector = domain::ParseLabelSelector(req->label_selector(), "label_selector");
  if (!selector.ok()) return Done(ctx, selector.status());
  auto leader = LeaderFor(ctx);
  if (!leader.ok()) return Done(ctx, leader.status());
  if (!leader->empty()) {
    return ReadAtLeader(ctx, *link_, *leader, req, resp, [](auto* stub, auto* c, auto* q, auto* r, auto done) {
      stub->ListNodes(c, q, r, std::move(done));
    });
  }
  auto view = hub_.view();
  for (const auto& [name, node] : view->nodes) {
    const auto& labels = node->spec().labels();
    if (!domain::SelectorMatches(*selector, std::map<std::string, std::string>(labels.begin(), labels.end()))) {
      continue;
    }
    *resp->add_nodes() = Describe(*node);
  }
  resp->set_revision(view->revision);
  return Done(ctx, absl::OkStatus());
}

// ------------------------------------------------------------------------------------ ExternalAddresses

grpc::ServerUnaryReactor* ExternalAddressesService::CreateExternalAddress(grpc::CallbackServerContext* ctx,
                                                                          const v1::CreateExternalAddressRequest* req,
                                                                          v1::ExternalAddress* resp) {
  if (absl::Status s = NameGiven(req->address().name(), "address.name"); !s.ok()) return Done(ctx, s);
  v1::Command cmd;
  *cmd.mutable_create_external_address() = *req;
  return Write(ctx, log_, std::move(cmd), resp,
               [](v1::CommandResult r, v1::ExternalAddress* out) { *out = std::move(*r.mutable_external_address()); });
}

grpc::ServerUnaryReactor* ExternalAddressesService::GetExternalAddress(grpc::CallbackServerContext* ctx,
                                                                       const v1::GetExternalAddressRequest* req,
                                                                       v1::ExternalAddress* resp) {
  auto view = hub_.view();
  if (absl::Status s = Lookup(view->externals, req->name(), "external address"); !s.ok()) return Done(ctx, s);
  *resp = *view->externals.at(req->name());
  return Done(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* ExternalAddressesService::ListExternalAddresses(
    grpc::CallbackServerContext* ctx, const v1::ListExternalAddressesRequest* req,
    v1::ListExternalAddressesResponse* resp) {
  auto view = hub_.view();
  for (const auto& [name, x] : view->externals) {
    if (req->node().empty() || x->node() == req->node()) *resp->add_addresses() = *x;
  }
  resp->set_revision(view->revision);
  return Done(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* ExternalAddressesService::DeleteExternalAddress(grpc::CallbackServerContext* ctx,
                                                                          const v1::DeleteExternalAddressRequest* req,
                                                                          v1::DeleteAddressResponse* resp) {
  if (absl::Status s = NameGiven(req->name(), "name"); !s.ok()) return Done(ctx, s);
  v1::Command cmd;
  *cmd.mutable_delete_external_address() = *req;
  return Write(ctx, log_, std::move(cmd), resp,
               [](v1::CommandResult r, v1::DeleteAddressResponse* out) { *out = std::move(*r.mutable_delete_address()); });
}

// ------------------------------------------------------------------------------------- ElasticAddresses

grpc::ServerUnaryReactor* ElasticAddressesService::CreateElasticAddress(grpc::CallbackServerContext* ctx,
                                                                        const v1::CreateElasticAddressRequest* req,
                                                                        v1::ElasticAddress* resp) {
  if (absl::Status s = NameGiven(req->address().name(), "address.name"); !s.ok()) return Done(ctx, s);
  v1::Command cmd;
  *cmd.mutable_create_elastic_address() = *req;
  return Write(ctx, log_, std::move(cmd), resp,
               [](v1::CommandResult r, v1::ElasticAddress* out) { *out = std::move(*r.mutable_elastic_address()); });
}

grpc::ServerUnaryReactor* ElasticAddressesService::GetElasticAddress(grpc::CallbackServerContext* ctx,
                                                                     const v1::GetElasticAddressRequest* req,
                                                                     v1::ElasticAddress* resp) {
  auto view = hub_.view();
  if (absl::Status s = Lookup(view->elastics, req->name(), "elastic address"); !s.ok()) return Done(ctx, s);
  *resp = *view->elastics.at(req->name());
  return Done(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* ElasticAddressesService::ListElasticAddresses(grpc::CallbackServerContext* ctx,
                                                                        const v1::ListElasticAddressesRequest*,
                                                                        v1::ListElasticAddressesResponse* resp) {
  auto view = hub_.view();
  for (const auto& [name, e] : view->elastics) *resp->add_addresses() = *e;
  resp->set_revision(view->revision);
  return Done(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* ElasticAddressesService::DeleteElasticAddress(grpc::CallbackServerContext* ctx,
                                                                        const v1::DeleteElasticAddressRequest* req,
                                                                        v1::DeleteAddressResponse* resp) {
  if (absl::Status s = NameGiven(req->name(), "name"); !s.ok()) return Done(ctx, s);
  v1::Command cmd;
  *cmd.mutable_delete_elastic_address() = *req;
  return Write(ctx, log_, std::move(cmd), resp,
               [](v1::CommandResult r, v1::DeleteAddressResponse* out) { *out = std::move(*r.mutable_delete_address()); });
}

grpc::ServerUnaryReactor* ElasticAddressesService::AssociateElasticAddress(
    grpc::CallbackServerContext* ctx, const v1::AssociateElasticAddressRequest* req, v1::ElasticAddress* resp) {
  if (absl::Status s = NameGiven(req->name(), "name"); !s.ok()) return Done(ctx, s);
  v1::Command cmd;
  *cmd.mutable_associate_elastic_address() = *req;
  return Write(ctx, log_, std::move(cmd), resp,
               [](v1::CommandResult r, v1::ElasticAddress* out) { *out = std::move(*r.mutable_elastic_address()); });
}

grpc::ServerUnaryReactor* ElasticAddressesService::DisassociateElasticAddress(
    grpc::CallbackServerContext* ctx, const v1::DisassociateElasticAddressRequest* req, v1::ElasticAddress* resp) {
  if (absl::Status s = NameGiven(req->name(), "name"); !s.ok()) return Done(ctx, s);
  v1::Command cmd;
  *cmd.mutable_disassociate_elastic_address() = *req;
  return Write(ctx, log_, std::move(cmd), resp,
               [](v1::CommandResult r, v1::ElasticAddress* out) { *out = std::move(*r.mutable_elastic_address()); });
}

// --------------------------------------------------------------------------------------- MagicAddresses

grpc::ServerUnaryReactor* MagicAddressesService::CreateMagicAddress(grpc::CallbackServerContext* ctx,
                                                                    const v1::CreateMagicAddressRequest* req,
                                                                    v1::MagicAddress* resp) {
  if (absl::Status s = NameGiven(req->address().name(), "address.name"); !s.ok()) return Done(ctx, s);
  v1::Command cmd;
  *cmd.mutable_create_magic_address() = *req;
  return Write(ctx, log_, std::move(cmd), resp,
               [](v1::CommandResult r, v1::MagicAddress* out) { *out = std::move(*r.mutable_magic_address()); });
}

grpc::ServerUnaryReactor* MagicAddressesService::GetMagicAddress(grpc::CallbackServerContext* ctx,
                                                                 const v1::GetMagicAddressRequest* req,
                                                                 v1::MagicAddress* resp) {
  auto view = hub_.view();
  if (absl::Status s = Lookup(view->magics, req->name(), "magic address"); !s.ok()) return Done(ctx, s);
  *resp = *view->magics.at(req->name());
  return Done(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* MagicAddressesService::ListMagicAddresses(grpc::CallbackServerContext* ctx,
                                                                    const v1::ListMagicAddressesRequest*,
                                                                    v1::ListMagicAddressesResponse* resp) {
  auto view = hub_.view();
  for (const auto& [name, m] : view->magics) *resp->add_addresses() = *m;
  resp->set_revision(view->revision);
  return Done(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* MagicAddressesService::DeleteMagicAddress(grpc::CallbackServerContext* ctx,
                                                                    const v1::DeleteMagicAddressRequest* req,
                                                                    v1::DeleteAddressResponse* resp) {
  if (absl::Status s = NameGiven(req->name(), "name"); !s.ok()) return Done(ctx, s);
  v1::Command cmd;
  *cmd.mutable_delete_magic_address() = *req;
  return Write(ctx, log_, std::move(cmd), resp,
               [](v1::CommandResult r, v1::DeleteAddressResponse* out) { *out = std::move(*r.mutable_delete_address()); });
}

}  // namespace abode::allocator

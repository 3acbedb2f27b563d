#include "allocator-service/cluster_service.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "allocator-service/command_gate.h"
#include "allocator-service/service_calls.h"
#include "allocator-service/state_checksum.h"

namespace abode::allocator {
namespace {


absl::Status CheckAddress(const std::string& address, absl::string_view field) {
  std::string host;
  int port = 0;
  if (absl::Status s = replication::SplitHostPort(address, field, &host, &port); !s.ok()) return s;
  if (port == 0) return absl::InvalidArgumentError(absl::StrCat(field, ": port must not be 0"));
  return absl::OkStatus();
}

// Streams a backup: the header, then the snapshot in chunks, one write at a time. Deletes itself when done.
class BackupWriter final : public grpc::ServerWriteReactor<v1::BackupChunk> {
 public:
  static constexpr size_t kChunkBytes = 1 << 20;

  explicit BackupWriter(uint64_t member_id) : member_id_(member_id) {}

  // Any thread, once: the snapshot to send, or why there is none.
  void Send(absl::StatusOr<StateSnapshot> snap) {
    if (!snap.ok()) {
      Finish(ToGrpcStatus(snap.status()));
      return;
    }
    snap_ = std::move(*snap);
    v1::BackupHeader* h = chunk_.mutable_header();
    h->set_member_id(member_id_);
    h->set_applied_index(snap_.applied_index);
    h->set_revision(snap_.revision);
    h->set_time_unix_ms(std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count());
    h->set_size(snap_.bytes.size());
    h->set_checksum(Fnv1a64(snap_.bytes));
    h->set_allocations(SnapshotAllocations(snap_.bytes));
    StartWrite(&chunk_);
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "backup: the client stopped reading"));
      return;
    }
    if (offset_ == snap_.bytes.size()) {
      Finish(grpc::Status::OK);
      return;
    }
    const size_t n = std::min(kChunkBytes, snap_.bytes.size() - offset_);
    chunk_.set_data(snap_.bytes.substr(offset_, n));
    offset_ += n;
    StartWrite(&chunk_);
  }

  void OnDone() override { delete this; }

 private:
  const uint64_t member_id_;
  StateSnapshot snap_;
  size_t offset_ = 0;
  v1::BackupChunk chunk_;
};

// A membership call passed on to the leader.
template <typename Request>
struct ProxyCall {
  grpc::ClientContext ctx;
  Request req;
};

}  // namespace

void ClusterService::FillStatus(v1::ClusterStatus* out) {
  const replication::ClusterView v = node_.view();
  out->set_member_id(v.id);
  out->set_role(std::string(replication::RoleName(v.role)));
  out->set_term(v.term);
  out->set_leader_id(v.leader_id);
  out->set_leader_address(v.leader_grpc_address);
  out->set_commit_index(v.commit_index);
  out->set_applied_index(v.applied_index);
  out->set_ready(v.ready);
  out->set_revision(v.revision);
  for (uint32_t op : KnownCommands()) out->add_known_commands(op);
  for (const replication::Member& m : v.members) {
    v1::Member* pm = out->add_members();
    pm->set_id(m.id);
    pm->set_raft_address(m.raft_address);
    pm->set_grpc_address(m.grpc_address);
    pm->set_role(std::string(replication::RoleName(m.role)));
  }
}

grpc::ServerUnaryReactor* ClusterService::Status(grpc::CallbackServerContext* ctx,
                                                 const v1::ClusterStatusRequest* /*req*/, v1::ClusterStatus* resp) {
  FillStatus(resp);
  return FinishNow(ctx, absl::OkStatus());
}

template <typename Request, typename Change, typename Proxy>
grpc::ServerUnaryReactor* ClusterService::AtLeader(grpc::CallbackServerContext* ctx, const Request* req,
                                                   v1::ClusterStatus* resp, Change change, Proxy proxy) {
  const replication::ClusterView v = node_.view();
  auto* reactor = ctx->DefaultReactor();
  if (v.role == replication::RaftRole::kLeader) {
    change([this, reactor, resp](absl::Status s) {
      if (s.ok()) FillStatus(resp);
      reactor->Finish(ToGrpcStatus(s));
    });
    return reactor;
  }
  if (v.leader_id == 0 || v.leader_grpc_address.empty() || link_ == nullptr) {
    reactor->Finish(ToGrpcStatus(absl::UnavailableError(
        "no raft leader is known to this replica (an election is under way or a quorum is unreachable)")));
    return reactor;
  }
  auto* call = new ProxyCall<Request>();
  call->req = *req;
  call->ctx.set_deadline(ctx->deadline());
  auto stub = std::shared_ptr<v1::Cluster::Stub>(v1::Cluster::NewStub(link_->Channel(v.leader_grpc_address)));
  proxy(stub.get(), &call->ctx, &call->req, resp, [call, reactor, stub](grpc::Status s) {
    reactor->Finish(s);
    delete call;
  });
  return reactor;
}

grpc::ServerUnaryReactor* ClusterService::AddMember(grpc::CallbackServerContext* ctx, const v1::AddMemberRequest* req,
                                                    v1::ClusterStatus* resp) {
  if (req->id() == 0) return FinishNow(ctx, absl::InvalidArgumentError("id: must be greater than 0"));
  if (absl::Status s = CheckAddress(req->raft_address(), "raft_address"); !s.ok()) return FinishNow(ctx, s);
  if (absl::Status s = CheckAddress(req->grpc_address(), "grpc_address"); !s.ok()) return FinishNow(ctx, s);
  replication::Member m;
  m.id = req->id();
  m.raft_address = req->raft_address();
  m.grpc_address = req->grpc_address();
  const bool voter = !req->non_voting();
  return AtLeader(
      ctx, req, resp, [this, m, voter](replication::ChangeDone done) { node_.AddMember(m, voter, std::move(done)); },
      [](v1::Cluster::Stub* stub, grpc::ClientContext* c, const v1::AddMemberRequest* r, v1::ClusterStatus* out,
         std::function<void(grpc::Status)> cb) { stub->async()->AddMember(c, r, out, std::move(cb)); });
}

grpc::ServerUnaryReactor* ClusterService::RemoveMember(grpc::CallbackServerContext* ctx,
                                                       const v1::RemoveMemberRequest* req, v1::ClusterStatus* resp) {
  if (req->id() == 0) return FinishNow(ctx, absl::InvalidArgumentError("id: must be greater than 0"));
  const uint64_t id = req->id();
  return AtLeader(
      ctx, req, resp, [this, id](replication::ChangeDone done) { node_.RemoveMember(id, std::move(done)); },
      [](v1::Cluster::Stub* stub, grpc::ClientContext* c, const v1::RemoveMemberRequest* r, v1::ClusterStatus* out,
         std::function<void(grpc::Status)> cb) { stub->async()->RemoveMember(c, r, out, std::move(cb)); });
}

grpc::ServerUnaryReactor* ClusterService::TransferLeadership(grpc::CallbackServerContext* ctx,
                                                             const v1::TransferLeadershipRequest* req,
                                                             v1::ClusterStatus* resp) {
  const uint64_t id = req->id();
  return AtLeader(
      ctx, req, resp, [this, id](replication::ChangeDone done) { node_.TransferLeadership(id, std::move(done)); },
      [](v1::Cluster::Stub* stub, grpc::ClientContext* c, const v1::TransferLeadershipRequest* r,
         v1::ClusterStatus* out, std::function<void(grpc::Status)> cb) {
        stub->async()->TransferLeadership(c, r, out, std::move(cb));
      });
}

grpc::ServerUnaryReactor* ClusterService::Checksum(grpc::CallbackServerContext* ctx, const v1::ChecksumRequest* /*req*/,
                                                   v1::ChecksumResponse* resp) {
  auto* reactor = ctx->DefaultReactor();
  const uint64_t id = node_.view().id;
  TakeStateChecksum(node_, store_, reads_, [reactor, resp, id](absl::StatusOr<StateChecksum> c) {
    if (c.ok()) {
      resp->set_member_id(id);
      resp->set_applied_index(c->applied_index);
      resp->set_revision(c->revision);
      resp->set_checksum(c->checksum);
      resp->set_allocations(c->allocations);
    }
    reactor->Finish(ToGrpcStatus(c.status()));
  });
  return reactor;
}

grpc::ServerWriteReactor<v1::BackupChunk>* ClusterService::Backup(grpc::CallbackServerContext* ctx,
                                                                  const v1::BackupRequest* /*req*/) {
  auto* writer = new BackupWriter(node_.view().id);
  node_.Await(replication::ReadConsistency::kLinearizable, ctx->deadline(), [this, writer](absl::Status s) {
    if (!s.ok()) {
      writer->Send(s);
      return;
    }
    TakeStateSnapshot(node_, store_, reads_,
                      [writer](absl::StatusOr<StateSnapshot> snap) { writer->Send(std::move(snap)); });
  });
  return writer;
}

grpc::ServerUnaryReactor* ReplicaService::Forward(grpc::CallbackServerContext* ctx, const v1::ForwardRequest* req,
                                                  v1::ForwardResponse* resp) {
  auto* reactor = ctx->DefaultReactor();
  const int n = req->commands_size();
  if (n == 0) {
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  for (int i = 0; i < n; ++i) resp->add_outcomes();
  // The last outcome to arrive finishes the call.
  auto remaining = std::make_shared<std::atomic<int>>(n);
  std::vector<v1::Command> commands(req->commands().begin(), req->commands().end());
  std::vector<replication::CommandLog::Done> dones;
  dones.reserve(n);
  for (int i = 0; i < n; ++i) {
    dones.push_back([reactor, resp, remaining, i](replication::CommandOutcome o) {
      v1::ForwardedOutcome* out = resp->mutable_outcomes(i);
      if (o.ok()) {
        *out->mutable_result() = std::move(*o);
      } else {
        out->set_code(static_cast<int>(o.status().code()));
        out->set_message(std::string(o.status().message()));
      }
      if (remaining->fetch_sub(1) == 1) reactor->Finish(grpc::Status::OK);
    });
  }
  node_.ProposeLocal(std::move(commands), std::move(dones));
  return reactor;
}

grpc::ServerUnaryReactor* ReplicaService::ReadIndex(grpc::CallbackServerContext* ctx,
                                                    const v1::ReadIndexRequest* /*req*/, v1::ReadIndexResponse* resp) {
  auto* reactor = ctx->DefaultReactor();
  node_.LocalReadIndex([reactor, resp](absl::StatusOr<uint64_t> index) {
    if (index.ok()) resp->set_index(*index);
    reactor->Finish(ToGrpcStatus(index.status()));
  });
  return reactor;
}

grpc::ServerUnaryReactor* ReplicaService::RelayLiveness(grpc::CallbackServerContext* ctx,
                                                        const v1::RelayLivenessRequest* req,
                                                        v1::RelayLivenessResponse* /*resp*/) {
  // A replica that no longer leads still records it: it relays everything to the next leader anyway.
  registry_.Relayed(*req);
  return FinishNow(ctx, absl::OkStatus());
}

}  // namespace abode::allocator

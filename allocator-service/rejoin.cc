#include "allocator-service/rejoin.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <utility>

#include "abode/v1/cluster.grpc.pb.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace abode::allocator {
namespace {

constexpr char kMarker[] = "/rejoin-pending";

absl::Status Errno(const std::string& what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

absl::Status SyncDir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Errno(absl::StrCat("open ", dir));
  const int rc = ::fsync(fd);
  ::close(fd);
  return rc == 0 ? absl::OkStatus() : Errno(absl::StrCat("fsync ", dir));
}

std::chrono::system_clock::time_point In(int64_t ms) {
  return std::chrono::system_clock::now() + std::chrono::milliseconds(ms);
}

}  // namespace

bool RejoinPending(const std::string& data_dir) { return ::access((data_dir + kMarker).c_str(), F_OK) == 0; }

absl::Status MarkRejoinPending(const std::string& data_dir) {
  if (::mkdir(data_dir.c_str(), 0755) != 0 && errno != EEXIST) return Errno(absl::StrCat("mkdir ", data_dir));
  const std::string path = data_dir + kMarker;
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Errno(absl::StrCat("create ", path));
  static constexpr char kText[] =
      "this member removed itself from the cluster configuration to rejoin with an empty data dir; "
      "it adds itself back when it starts\n";
  const bool ok = ::write(fd, kText, sizeof(kText) - 1) == static_cast<ssize_t>(sizeof(kText) - 1) && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) return Errno(absl::StrCat("write ", path));
  return SyncDir(data_dir);
}

absl::Status ClearRejoinPending(const std::string& data_dir) {
  const std::string path = data_dir + kMarker;
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return Errno(absl::StrCat("remove ", path));
  return SyncDir(data_dir);
}

Rejoin::Rejoin(GrpcLeaderLink& link, Options options) : link_(link), options_(std::move(options)) {
  if (const replication::Member* self = replication::FindMember(options_.peers, options_.self_id)) self_ = *self;
}

Rejoin::Plan Rejoin::Probe(std::string* why) {
  struct Answer {
    std::unique_ptr<v1::Cluster::Stub> stub;
    grpc::ClientContext ctx;
    v1::ClusterStatusRequest req;
    v1::ClusterStatus status;
    grpc::Status result;
  };
  std::vector<std::unique_ptr<Answer>> answers;
  absl::Mutex mu;
  size_t pending = 0;  // under mu
  for (const replication::Member& m : options_.peers) {
    if (m.id == options_.self_id) continue;
    auto a = std::make_unique<Answer>();
    a->ctx.set_deadline(In(options_.status_timeout_ms));
    a->stub = v1::Cluster::NewStub(link_.Channel(m.grpc_address));
    {
      absl::MutexLock lock(&mu);
      ++pending;
    }
    a->stub->async()->Status(&a->ctx, &a->req, &a->status, [&, p = a.get()](grpc::Status s) {
      absl::MutexLock lock(&mu);
      p->result = std::move(s);
      --pending;
    });
    answers.push_back(std::move(a));
  }
  {
    absl::MutexLock lock(&mu);
    const auto all_answered = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return pending == 0; };
    mu.Await(absl::Condition(&all_answered));
  }

  // The most advanced answer speaks for the cluster: a leader has committed something beyond the
  // bootstrap configuration (index 1) once the cluster has run.
  const v1::ClusterStatus* best = nullptr;
  int answered = 0;
  for (const auto& a : answers) {
    if (!a->result.ok()) continue;
    ++answered;
    if (best == nullptr || a->status.commit_index() > best->commit_index()) best = &a->status;
  }
  if (best == nullptr || best->commit_index() < 2) {
    *why = absl::StrCat(answered, " of ", answers.size(), " other members answered, none with a running cluster");
    return Plan::kBootstrap;
  }
  bool listed = false;
  for (const v1::Member& m : best->members()) listed = listed || m.id() == options_.self_id;
  *why = absl::StrCat("member ", best->member_id(), " reports term ", best->term(), ", commit index ",
                      best->commit_index(), listed ? ", with this member in the configuration"
                                                   : ", without this member in the configuration");
  return listed ? Plan::kRejoin : Plan::kAwaitAdd;
}

template <typename Request, typename Method>
absl::Status Rejoin::Change(const char* what, const Request& req, Method method, grpc::StatusCode already_done,
                            int64_t timeout_ms) {
  absl::Status last = absl::UnavailableError("no other member to ask");
  for (const replication::Member& m : options_.peers) {
    if (m.id == options_.self_id) continue;
    grpc::ClientContext ctx;
    ctx.set_deadline(In(timeout_ms));
    {
      absl::MutexLock lock(&mu_);
      if (cancelled_) return absl::CancelledError(absl::StrCat(what, ": cancelled"));
      in_flight_ = &ctx;
    }
    auto stub = v1::Cluster::NewStub(link_.Channel(m.grpc_address));
    v1::ClusterStatus resp;
    const grpc::Status s = (stub.get()->*method)(&ctx, req, &resp);
    {
      absl::MutexLock lock(&mu_);
      in_flight_ = nullptr;
    }
    // The membership checks name the field: only an answer about this member's id means "already done"
    // (another ALREADY_EXISTS, a raft address taken by another member say, is a configuration error).
    if (s.ok() || (s.error_code() == already_done && absl::StartsWith(s.error_message(), "id:"))) {
      return absl::OkStatus();
    }
    last = absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                        absl::StrCat(what, " through member ", m.id, ": ", s.error_message()));
  }
  return last;
}

absl::Status Rejoin::TryRemoveSelf() {
  v1::RemoveMemberRequest req;
  req.set_id(options_.self_id);
  return Change("remove this member", req, &v1::Cluster::Stub::RemoveMember, grpc::StatusCode::NOT_FOUND,
                options_.remove_timeout_ms);
}

absl::Status Rejoin::TryAddSelf() {
  v1::AddMemberRequest req;
  req.set_id(options_.self_id);
  req.set_raft_address(self_.raft_address);
  req.set_grpc_address(self_.grpc_address);
  return Change("add this member", req, &v1::Cluster::Stub::AddMember, grpc::StatusCode::ALREADY_EXISTS,
                options_.add_timeout_ms);
}

void Rejoin::Cancel() {
  {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
    if (in_flight_ != nullptr) in_flight_->TryCancel();
  }
}

bool Rejoin::Pause(int64_t ms) {
  absl::MutexLock lock(&mu_);
  return !mu_.AwaitWithTimeout(absl::Condition(&cancelled_), absl::Milliseconds(ms));
}

}  // namespace abode::allocator

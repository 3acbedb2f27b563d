#include "allocator-service/command_gate.h"

#include <optional>

#include "abode/v1/cluster.grpc.pb.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace abode::allocator {

std::vector<uint32_t> KnownCommands() {
  std::vector<uint32_t> out;
  const google::protobuf::OneofDescriptor* op = v1::Command::descriptor()->FindOneofByName("op");
  for (int i = 0; i < op->field_count(); ++i) out.push_back(static_cast<uint32_t>(op->field(i)->number()));
  return out;
}

bool IsGatedCommand(v1::Command::OpCase op) {
  switch (op) {
    case v1::Command::kAllocateMany:
    case v1::Command::kDeleteNode:
    case v1::Command::kReclaimNodeAllocations:
    case v1::Command::kUpdateLabels:
    case v1::Command::kSetNodeLabels:
      return true;
    default:
      return false;
  }
}

// One Cluster.Status question to a member.
struct GatedCommandLog::Round {
  grpc::ClientContext ctx;
  v1::ClusterStatusRequest req;
  v1::ClusterStatus resp;
  std::unique_ptr<v1::Cluster::Stub> stub;
};

GatedCommandLog::GatedCommandLog(replication::CommandLog& inner, CommandGateOptions options)
    : inner_(inner), options_(std::move(options)) {}

GatedCommandLog::~GatedCommandLog() {
  absl::MutexLock lock(&mu_);
  const auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return in_flight_ == 0; };
  mu_.Await(absl::Condition(&idle));
}

std::optional<absl::Status> GatedCommandLog::Decide(uint32_t op, const std::vector<replication::Member>& members,
                                                    bool final) {
  std::vector<std::string> old, unknown;
  for (const replication::Member& m : members) {
    const Answer& a = answers_[{m.id, m.grpc_address}];
    const std::string who = absl::StrCat("member ", m.id, " (", m.grpc_address, ")");
    if (!a.answered) {
      if (a.asking && !final) return std::nullopt;
      unknown.push_back(absl::StrCat(who, a.error.empty() ? "" : absl::StrCat(": ", a.error)));
    } else if (!a.commands.count(op)) {
      old.push_back(who);
    }
  }
  const std::string name = v1::Command::descriptor()->FindFieldByNumber(static_cast<int>(op))->name();
  if (!old.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        name, ": not every member applies this command yet (", absl::StrJoin(old, ", "),
        " runs an older build); upgrade every member first, or use the commands they know"));
  }
  if (!unknown.empty()) {
    return absl::UnavailableError(absl::StrCat(name, ": cannot tell whether every member applies this command (",
                                               absl::StrJoin(unknown, ", "), " did not answer); retry"));
  }
  return absl::OkStatus();
}

void GatedCommandLog::Ask(std::vector<MemberKey> ask, replication::Deadline deadline,
                          absl::AnyInvocable<void() &&> then) {
  struct Pending {
    absl::Mutex mu;
    size_t left = 0;
    absl::AnyInvocable<void() &&> then;
  };
  auto pending = std::make_shared<Pending>();
  pending->left = ask.size();
  pending->then = std::move(then);
  for (const MemberKey& key : ask) {
    auto* round = new Round();
    round->stub = v1::Cluster::NewStub(options_.channels->Channel(key.second));
    round->ctx.set_deadline(options_.channels->CallDeadline(deadline));
    round->stub->async()->Status(&round->ctx, &round->req, &round->resp, [this, round, key, pending](grpc::Status s) {
      {
        absl::MutexLock lock(&mu_);
        Answer& a = answers_[key];
        a.asking = false;
        if (s.ok()) {
          a.answered = true;
          a.commands = std::set<uint32_t>(round->resp.known_commands().begin(), round->resp.known_commands().end());
          a.at_ms = options_.clock->NowUnixMs();
          a.error.clear();
        } else {
          a.error = absl::StrCat(absl::StatusCodeToString(static_cast<absl::StatusCode>(s.error_code())), ": ",
                                 s.error_message());
        }
      }
      delete round;
      absl::AnyInvocable<void() &&> done;
      {
        absl::MutexLock lock(&pending->mu);
        if (--pending->left == 0) done = std::move(pending->then);
      }
      if (done) std::move(done)();
      absl::MutexLock lock(&mu_);
      --in_flight_;
    });
  }
}

void GatedCommandLog::Propose(v1::Command command, replication::Deadline deadline, Done done) {
  if (!IsGatedCommand(command.op_case()) || options_.channels == nullptr) {
    inner_.Propose(std::move(command), deadline, std::move(done));
    return;
  }
  const replication::ClusterView view = options_.view();
  std::vector<replication::Member> others;
  for (const replication::Member& m : view.members) {
    if (m.id != view.id) others.push_back(m);
  }
  const uint32_t op = static_cast<uint32_t>(command.op_case());
  std::vector<MemberKey> ask;
  std::optional<absl::Status> decided;
  {
    absl::MutexLock lock(&mu_);
    const int64_t now = options_.clock->NowUnixMs();
    for (const replication::Member& m : others) {
      Answer& a = answers_[{m.id, m.grpc_address}];
      if (a.asking || (a.answered && now - a.at_ms < options_.answer_ttl_ms)) continue;
      a.asking = true;
      ask.push_back({m.id, m.grpc_address});
    }
    in_flight_ += static_cast<int>(ask.size());
    // A member asked again is judged by its last answer meanwhile: only one never heard from holds the command.
    decided = Decide(op, others, /*final=*/false);
  }
  if (decided) {
    Ask(std::move(ask), deadline, [] {});
    if (!decided->ok()) {
      std::move(done)(*decided);
      return;
    }
    inner_.Propose(std::move(command), deadline, std::move(done));
    return;
  }
  auto waiting = std::make_shared<std::pair<v1::Command, Done>>(std::move(command), std::move(done));
  Ask(std::move(ask), deadline, [this, waiting, op, others, deadline]() mutable {
    std::optional<absl::Status> now;
    {
      absl::MutexLock lock(&mu_);
      now = Decide(op, others, /*final=*/true);
    }
    if (!now->ok()) {
      std::move(waiting->second)(*now);
      return;
    }
    inner_.Propose(std::move(waiting->first), deadline, std::move(waiting->second));
  });
}

}  // namespace abode::allocator

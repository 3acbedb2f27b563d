#include "replication/raft_loop.h"

#include <pthread.h>

#include <algorithm>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "replication/membership.h"
#include "replication/raft_error.h"
#include "replication/snapshot_pacer.h"
#include "replication/socket_tuning.h"
#include "spdlog/spdlog.h"

namespace abode::replication {
namespace {

RaftRole RoleOfState(int state) {
  switch (state) {
    case RAFT_LEADER: return RaftRole::kLeader;
    case RAFT_FOLLOWER: return RaftRole::kFollower;
    case RAFT_CANDIDATE: return RaftRole::kCandidate;
  }
  return RaftRole::kUnavailable;
}

MemberRole RoleOfMember(int role) {
  switch (role) {
    case RAFT_VOTER: return MemberRole::kVoter;
    case RAFT_STANDBY: return MemberRole::kStandby;
    case RAFT_SPARE: return MemberRole::kSpare;
  }
  return MemberRole::kNone;
}

}  // namespace

RaftLoop::RaftLoop(RaftNodeOptions options, StateMachine* state_machine)
    : options_(std::move(options)), state_machine_(state_machine) {
  ProposalQueue::Options q;
  q.self_id = options_.id;
  q.single_voter = single_voter();
  q.max_batch_commands = options_.max_batch_commands;
  q.max_inflight_entries = options_.max_inflight_entries;
  q.command_format_version = options_.command_format_version;
  q.clock = options_.clock;
  q.leader_link = options_.leader_link;
  q.tracer = options_.tracer;
  proposals_.emplace(q, &raft_, &completions_, &wakeup_);
  read_index_.emplace(&raft_, &indexes_, &completions_);
}

RaftLoop::~RaftLoop() {
  bool wake;
  {
    absl::MutexLock lock(&inbox_mu_);
    stopping_ = true;
    wake = running_;
  }
  if (wake) uv_async_send(&wakeup_);
  if (thread_.joinable()) thread_.join();
}

absl::Status RaftLoop::Start() {
  if (!options_.peers.empty()) {
    self_address_ = ConfigurationAddress(*FindMember(options_.peers, options_.id));
  } else {
    self_address_ = options_.raft_address;
  }
  const std::string raft_dir = options_.data_dir + "/raft";
  std::promise<absl::Status> ready;
  ready_ = &ready;
  auto ready_future = ready.get_future();
  thread_ = std::thread([this, raft_dir] {
    pthread_setname_np(pthread_self(), "abode-raft");
    Run(raft_dir);
  });
  return ready_future.get();
}

void RaftLoop::Enqueue(Proposal p) {
  {
    absl::MutexLock lock(&inbox_mu_);
    if (!stopping_ && running_) {
      queue_.push_back(std::move(p));
      if (queue_.size() == 1 && tasks_.empty()) uv_async_send(&wakeup_);
      return;
    }
  }
  std::move(p.done)(ShuttingDown());
}

void RaftLoop::EnqueueLocal(std::vector<v1::Command> commands, std::vector<CommandLog::Done> dones) {
  {
    absl::MutexLock lock(&inbox_mu_);
    if (!stopping_ && running_) {
      const bool was_empty = queue_.empty() && tasks_.empty();
      for (size_t i = 0; i < commands.size(); ++i) {
        queue_.push_back(Proposal{std::move(commands[i]), std::move(dones[i]), true, kNoDeadline});
      }
      if (was_empty) uv_async_send(&wakeup_);
      return;
    }
  }
  for (auto& d : dones) std::move(d)(ShuttingDown());
}

void RaftLoop::RunOnLoop(Task task, Task if_stopped) {
  {
    absl::MutexLock lock(&inbox_mu_);
    if (!stopping_ && running_) {
      tasks_.push_back({std::move(task), std::move(if_stopped)});
      if (tasks_.size() == 1 && queue_.empty()) uv_async_send(&wakeup_);
      return;
    }
  }
  std::move(if_stopped)();
}

ClusterView RaftLoop::view() {
  absl::MutexLock lock(&view_mu_);
  return view_;
}

ReplicationStats RaftLoop::stats() {
  const ProposalQueue::Stats q = proposals_->stats();
  ReplicationStats s;
  s.entries = q.entries;
  s.commands = q.commands;
  s.most_inflight_entries = q.most_inflight_entries;
  s.applied_index = indexes_.last_applied.load();
  s.revision = revision_.load();
  return s;
}

void RaftLoop::SetReady(absl::Status s) {
  if (ready_ != nullptr) {
    ready_->set_value(std::move(s));
    ready_ = nullptr;
  }
}

void RaftLoop::Run(const std::string& raft_dir) {
  uv_loop_init(&loop_);
  uv_async_init(&loop_, &wakeup_, &RaftLoop::OnWakeup);
  wakeup_.data = this;
  uv_timer_init(&loop_, &tick_);
  tick_.data = this;

  absl::Status s = InitRaft(raft_dir);
  if (!s.ok()) {
    BeginClose();
    uv_run(&loop_, UV_RUN_DEFAULT);
    uv_loop_close(&loop_);
    SetReady(s);
    return;
  }
  {
    absl::MutexLock lock(&inbox_mu_);
    running_ = true;
  }
  uv_timer_start(&tick_, &RaftLoop::OnTick, 0, kTickMs);
  if (!single_voter()) SetReady(absl::OkStatus());
  uv_run(&loop_, UV_RUN_DEFAULT);
  // Whatever raft did not call back about was not committed as far as its callers can know.
  proposals_->FailInFlight(absl::UnavailableError("allocator shut down before commit"));
  read_index_->FailAll(ShuttingDown());
  uv_loop_close(&loop_);
}

// The TCP transport connects to the raft part of a configuration address ("RAFT@GRPC").
int RaftLoop::ConnectRaftPart(struct raft_uv_transport* t, struct raft_uv_connect* req, raft_id id,
                              const char* address, raft_uv_connect_cb cb) {
  // raft_uv owns t->data; the transport is the first member of a holder that knows its loop.
  auto* self = reinterpret_cast<TransportHolder*>(t)->loop;
  // Member addresses may name hosts (a StatefulSet's DNS names); libraft connects only to IPv4 literals.
  if (self->resolver_ == nullptr) self->resolver_ = std::make_unique<PeerResolver>();
  const std::string raft_part = RaftPart(address);
  const std::optional<std::string> resolved = self->resolver_->Lookup(raft_part);
  if (!resolved) return RAFT_NOCONNECTION;  // not resolved yet: libraft tries again shortly
  auto& stored = self->connect_addresses_[*resolved];
  if (stored == nullptr) stored = std::make_unique<std::string>(*resolved);
  const int rv = self->tcp_connect_(t, req, id, stored->c_str(), cb);
  if (rv == 0) TuneSockets(&self->loop_, self->options_.election_timeout_ms);  // the new handle exists now
  return rv;
}

absl::Status RaftLoop::InitRaft(const std::string& raft_dir) {
  fsm_ = std::make_unique<ReplicatedFsm>(state_machine_, this, /*asynchronous_snapshots=*/true);

  transport_holder_.loop = this;
  int rv = raft_uv_tcp_init(&transport_, &loop_);
  if (rv != 0) return RaftError(rv, "raft transport", transport_.errmsg);
  transport_initialised_ = true;
  tcp_connect_ = transport_.connect;
  transport_.connect = &RaftLoop::ConnectRaftPart;
  if (!single_voter()) {
    rv = raft_uv_tcp_set_bind_address(&transport_, options_.raft_address.c_str());
    if (rv != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("raft-listen: cannot bind \"", options_.raft_address, "\" (IPv4 HOST:PORT expected)"));
    }
  }
  rv = raft_uv_init(&io_, &loop_, raft_dir.c_str(), &transport_);
  if (rv != 0) return RaftError(rv, absl::StrCat("raft storage in ", raft_dir), io_.errmsg);
  io_initialised_ = true;
  raft_uv_set_connect_retry_delay(&io_, 200);
  // libraft 0.15's libuv I/O implements async_work (a libuv worker) but still reports version 1, and
  // raft_init accepts asynchronous snapshots only from version 2 on, the version that added the method.
  if (io_.async_work == nullptr) return absl::InternalError("raft storage: this libraft has no async_work");
  io_.version = std::max(io_.version, 2);
  rv = raft_init(&raft_, &io_, fsm_->fsm(), options_.id, self_address_.c_str());
  if (rv != 0) return RaftError(rv, "raft init", raft_.errmsg);
  raft_initialised_ = true;
  fsm_->Attach(&raft_);
  if (options_.snapshot_log_ratio > 0) {
    fsm_->Pace(options_.snapshot_threshold, options_.snapshot_log_ratio, SnapshotPacer::StaggerFor(options_.id));
  }
  raft_.data = this;
  raft_set_election_timeout(&raft_, options_.election_timeout_ms);
  raft_set_heartbeat_timeout(&raft_, options_.heartbeat_timeout_ms);
  raft_set_snapshot_threshold(&raft_, options_.snapshot_threshold);
  raft_set_snapshot_trailing(&raft_, options_.snapshot_trailing);
  raft_set_pre_vote(&raft_, true);
  if (absl::Status s = Bootstrap(raft_dir); !s.ok()) return s;

  rv = raft_start(&raft_);
  if (rv != 0) {
    // Starting includes listening on the raft address, and c-raft then reports only "I/O error".
    if (!single_voter()) {
      if (absl::Status s = CheckListenAddress(options_.raft_address); !s.ok()) return s;
    }
    return RaftError(rv, "raft start", raft_.errmsg);
  }
  WidenListenBacklog(&loop_);
  TuneSockets(&loop_, options_.election_timeout_ms);
  // A snapshot restored at start holds everything up to its index.
  indexes_.state_index.store(raft_last_applied(&raft_), std::memory_order_release);
  indexes_.last_applied.store(raft_last_applied(&raft_), std::memory_order_release);
  if (!single_voter()) return absl::OkStatus();
  if (raft_state(&raft_) != RAFT_LEADER) {
    return absl::UnavailableError("raft: this single voter did not become leader");
  }
  // Everything already in the log is applied once a barrier after it is.
  barrier_.data = this;
  rv = raft_barrier(&raft_, &barrier_, &RaftLoop::OnStartBarrier);
  if (rv != 0) return RaftError(rv, "raft barrier", raft_.errmsg);
  return absl::OkStatus();
}

// Bootstrapping is refused (RAFT_CANTBOOTSTRAP) once the log holds anything: a restarted member never
// starts a second cluster. Pristine members all write the same initial configuration.
absl::Status RaftLoop::Bootstrap(const std::string& raft_dir) {
  if (options_.join) return absl::OkStatus();
  struct raft_configuration conf;
  raft_configuration_init(&conf);
  if (single_voter()) {
    raft_configuration_add(&conf, options_.id, self_address_.c_str(), RAFT_VOTER);
  } else {
    for (const Member& m : options_.peers) {
      raft_configuration_add(&conf, m.id, ConfigurationAddress(m).c_str(), RAFT_VOTER);
    }
  }
  const int rv = raft_bootstrap(&raft_, &conf);
  raft_configuration_close(&conf);
  if (rv != 0 && rv != RAFT_CANTBOOTSTRAP) return RaftError(rv, "raft bootstrap", raft_.errmsg);
  if (rv == 0) {
    spdlog::info("bootstrapped a new {}-member cluster in {}", single_voter() ? 1 : options_.peers.size(), raft_dir);
  }
  return absl::OkStatus();
}

void RaftLoop::OnStartBarrier(struct raft_barrier* req, int status) {
  auto* self = static_cast<RaftLoop*>(req->data);
  if (status != 0) {
    self->SetReady(RaftError(status, "raft barrier", nullptr));
    return;
  }
  spdlog::info("state restored: applied index {}, revision {}", raft_last_applied(&self->raft_),
               self->state_machine_->revision());
  self->leader_ready_term_ = self->raft_.current_term;
  self->SetReady(absl::OkStatus());
}

void RaftLoop::OnWakeup(uv_async_t* handle) {
  auto* self = static_cast<RaftLoop*>(handle->data);
  std::vector<Proposal> batch;
  std::vector<std::pair<Task, Task>> tasks;
  bool stopping;
  {
    absl::MutexLock lock(&self->inbox_mu_);
    batch.swap(self->queue_);
    tasks.swap(self->tasks_);
    stopping = self->stopping_;
    if (stopping) self->running_ = false;
  }
  if (stopping) {
    const absl::Status down = ShuttingDown();
    self->proposals_->FailHeld(down);
    for (auto& p : batch) std::move(p.done)(down);
    for (auto& t : tasks) std::move(t.second)();
    self->BeginClose();
    return;
  }
  for (auto& t : tasks) std::move(t.first)();
  self->proposals_->ProposeOrHold(batch);
  self->read_index_->IssueBarrier();
}

void RaftLoop::OnEntryApplied(uint64_t index, uint64_t /*proposal_id*/, bool replayed) {
  indexes_.state_index.store(index, std::memory_order_release);
  indexes_.last_applied.store(index, std::memory_order_release);
  if (replayed) return;
  revision_.store(state_machine_->revision(), std::memory_order_relaxed);
  read_index_->WakeIndexWaiters();
}

bool RaftLoop::AwaitsOutcomes(uint64_t proposal_id) { return proposals_->AwaitsOutcomes(proposal_id); }

void RaftLoop::OnOutcomesDecided(uint64_t index, uint64_t proposal_id, const std::vector<CommandOutcome>& outcomes) {
  proposals_->AnswerDecided(proposal_id, outcomes,
                            [&] { indexes_.answered_early.store(index, std::memory_order_release); });
}

void RaftLoop::OnApplyFailed(uint64_t index, const absl::Status& status) {
  // Going on would let this replica diverge from the others. Stop; a restart rebuilds the state from the
  // log, and an entry from a newer release needs this replica upgraded.
  spdlog::critical("cannot apply raft entry {}: {}", index, status.ToString());
  std::abort();
}

void RaftLoop::OnRestored(uint64_t /*raft_index*/, bool installed) {
  revision_.store(state_machine_->revision(), std::memory_order_relaxed);
  if (!installed) return;
  // raft sets the applied index to the snapshot's once the restore returns; the next tick records it.
  restored_ = true;
}

void RaftLoop::OnTick(uv_timer_t* t) { static_cast<RaftLoop*>(t->data)->Tick(); }

void RaftLoop::Tick() {
  const uint64_t applied = raft_last_applied(&raft_);
  indexes_.last_applied.store(applied, std::memory_order_release);
  if (restored_) {
    restored_ = false;
    indexes_.state_index.store(std::max(indexes_.state_index.load(), applied), std::memory_order_release);
  }
  read_index_->WakeIndexWaiters();

  const int state = raft_state(&raft_);
  const uint64_t term = raft_.current_term;
  if (state == RAFT_LEADER && leader_barrier_term_ != term) {
    leader_barrier_term_ = term;
    auto* b = new struct raft_barrier();
    b->data = this;
    if (raft_barrier(&raft_, b, &RaftLoop::OnLeaderBarrier) != 0) {
      delete b;
      leader_barrier_term_ = 0;
    }
  }
  if (state != RAFT_LEADER) read_index_->FailFences(absl::UnavailableError("this replica stopped leading; retry"));

  raft_id leader_id = 0;
  const char* leader_address = nullptr;
  raft_leader(&raft_, &leader_id, &leader_address);
  if (leader_id != 0 && state == RAFT_FOLLOWER && applied >= raft_.commit_index) caught_up_ = true;
  PublishView();
}

void RaftLoop::PublishView() {
  const int state = raft_state(&raft_);
  const uint64_t term = raft_.current_term;
  const uint64_t applied = raft_last_applied(&raft_);
  raft_id leader_id = 0;
  const char* leader_address = nullptr;
  raft_leader(&raft_, &leader_id, &leader_address);
  ClusterView v;
  v.id = options_.id;
  v.role = RoleOfState(state);
  v.term = term;
  v.leader_id = leader_id;
  if (leader_id != 0 && leader_address != nullptr) {
    v.leader_grpc_address = MemberFromConfiguration(leader_id, leader_address).grpc_address;
  }
  v.commit_index = raft_.commit_index;
  v.applied_index = applied;
  v.revision = revision_.load(std::memory_order_relaxed);
  v.ready = state == RAFT_LEADER ? leader_ready_term_ == term : (leader_id != 0 && caught_up_);
  for (unsigned i = 0; i < raft_.configuration.n; ++i) {
    const struct raft_server& s = raft_.configuration.servers[i];
    Member m = MemberFromConfiguration(s.id, s.address);
    m.role = s.id == leader_id ? MemberRole::kLeader : RoleOfMember(s.role);
    v.members.push_back(std::move(m));
  }
  absl::MutexLock lock(&view_mu_);
  view_ = std::move(v);
}

void RaftLoop::OnLeaderBarrier(struct raft_barrier* req, int status) {
  auto* self = static_cast<RaftLoop*>(req->data);
  if (status == 0) {
    self->leader_ready_term_ = self->raft_.current_term;
    spdlog::info("leading term {} from applied index {}", self->raft_.current_term, raft_last_applied(&self->raft_));
  }
  delete req;
}

void RaftLoop::BeginClose() {
  uv_timer_stop(&tick_);
  if (raft_initialised_) {
    raft_close(&raft_, &RaftLoop::OnRaftClosed);
  } else {
    if (io_initialised_) raft_uv_close(&io_);
    if (transport_initialised_) raft_uv_tcp_close(&transport_);
    io_initialised_ = false;
    transport_initialised_ = false;
    CloseHandles();
  }
}

void RaftLoop::OnRaftClosed(struct raft* r) {
  auto* self = static_cast<RaftLoop*>(r->data);
  raft_uv_close(&self->io_);
  raft_uv_tcp_close(&self->transport_);
  self->io_initialised_ = false;
  self->transport_initialised_ = false;
  self->raft_initialised_ = false;
  self->CloseHandles();
}

void RaftLoop::CloseHandles() {
  uv_close(reinterpret_cast<uv_handle_t*>(&wakeup_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&tick_), nullptr);
}

}  // namespace abode::replication

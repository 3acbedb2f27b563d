#include "allocator-service/raft_node.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

// c-raft's headers carry no extern "C" of their own.
extern "C" {
#include <raft.h>
#include <raft/uv.h>
}

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <utility>

#include "abode/v1/snapshot.pb.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "allocator-service/peer_resolver.h"
#include "allocator-service/raft_codec.h"
#include "allocator-service/replicated_fsm.h"
#include "storage/snapshot.h"
#include "storage/thread_name.h"
#include "google/protobuf/io/coded_stream.h"
#include "spdlog/spdlog.h"

namespace abode::allocator {
namespace {

struct Proposal {
  v1::Command command;
  CommandLog::Done done;
  bool local = false;  // forwarded to us: propose here or fail, never forward again
  // The loop's own housekeeping: `done` runs on the loop thread and may touch the loop's state. Everyone
  // else's `done` runs on a completion thread, so that answering callers never holds up raft.
  bool on_loop = false;
  Deadline deadline = kNoDeadline;  // the caller's; a forward to the leader gives up before it
};

using Task = absl::AnyInvocable<void() &&>;

// Threads that answer callers off the loop (OffLoop).
constexpr size_t kCompletionThreads = 2;

// Runs completions off the raft loop, so that reads waiting for a fence never block raft.
class OffLoop {
 public:
  explicit OffLoop(int threads) {
    for (int i = 0; i < threads; ++i) {
      threads_.emplace_back([this] {
        storage::NameThisThread("abode-answer");
        Run();
      });
    }
  }
  OffLoop(const OffLoop&) = delete;
  OffLoop& operator=(const OffLoop&) = delete;
  ~OffLoop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  void Post(Task task) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      tasks_.push_back(std::move(task));
    }
    cv_.notify_one();
  }

 private:
  void Run() {
    for (;;) {
      Task task;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
        if (tasks_.empty()) return;
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      std::move(task)();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Task> tasks_;  // guarded by mu_; drained before the threads stop
  bool stopping_ = false;   // guarded by mu_
  std::vector<std::thread> threads_;
};

// FNV-1a, 64 bits: stable across processes and builds, unlike absl::Hash.
uint64_t Fnv1a64(absl::string_view data) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : data) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

// The allocation count from a snapshot's trailer (its last record).
uint64_t SnapshotAllocations(absl::string_view snap) {
  constexpr size_t kHeader = 12;  // magic + format version
  if (snap.size() < kHeader) return 0;
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(snap.data()) + kHeader,
                                            static_cast<int>(snap.size() - kHeader));
  in.SetTotalBytesLimit(INT32_MAX);
  v1::SnapshotRecord last;
  uint32_t len = 0;
  while (in.ReadVarint32(&len)) {
    const void* data = nullptr;
    int size = 0;
    if (!in.GetDirectBufferPointer(&data, &size) || size < static_cast<int>(len)) return 0;
    if (static_cast<int>(len) == size) {
      if (!last.ParseFromArray(data, static_cast<int>(len))) return 0;
    }
    if (!in.Skip(static_cast<int>(len))) return 0;
  }
  return last.has_trailer() ? last.trailer().allocations() : 0;
}

const char* RoleName(int role) {
  switch (role) {
    case RAFT_VOTER: return "voter";
    case RAFT_STANDBY: return "standby";
    case RAFT_SPARE: return "spare";
  }
  return "unknown";
}

const char* StateName(int state) {
  switch (state) {
    case RAFT_LEADER: return "leader";
    case RAFT_FOLLOWER: return "follower";
    case RAFT_CANDIDATE: return "candidate";
  }
  return "unavailable";
}

// One log entry proposed by this node and waiting to be committed.
struct InFlight {
  struct raft_apply req{};
  class RaftNode::Loop* owner = nullptr;
  uint64_t proposal_id = 0;
  std::vector<CommandLog::Done> dones;
  std::vector<bool> on_loop;  // per done: see Proposal::on_loop
  std::vector<storage::CommandOutcome> outcomes;
  bool applied = false;
};

absl::Status MakeDir(const std::string& path) {
  if (::mkdir(path.c_str(), 0750) != 0 && errno != EEXIST) {
    return absl::FailedPreconditionError(absl::StrCat("data dir: cannot create ", path, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

// An exclusive lock on the data dir, so two processes never share one raft log.
class DirLock {
 public:
  DirLock() = default;
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;
  ~DirLock() {
    if (fd_ >= 0) ::close(fd_);
  }
  absl::Status Acquire(const std::string& dir) {
    const std::string path = dir + "/LOCK";
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (fd_ < 0) return absl::FailedPreconditionError(absl::StrCat("data dir: open ", path, ": ", std::strerror(errno)));
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("data dir: ", dir, " is in use by another abode-allocator process"));
    }
    return absl::OkStatus();
  }

 private:
  int fd_ = -1;
};

// Binds an IPv4 HOST:PORT the way libuv does (SO_REUSEADDR) and returns the system's reason when that fails.
absl::Status CheckListenAddress(const std::string& address) {
  const size_t colon = address.rfind(':');
  sockaddr_in a{};
  if (colon == std::string::npos ||
      uv_ip4_addr(address.substr(0, colon).c_str(), std::atoi(address.c_str() + colon + 1), &a) != 0) {
    return absl::OkStatus();  // not IPv4 HOST:PORT: raft_uv_tcp_set_bind_address refuses those already
  }
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::OkStatus();
  const int one = 1;
  (void)::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  const int rv = ::bind(fd, reinterpret_cast<const sockaddr*>(&a), sizeof(a));
  const int err = errno;
  ::close(fd);
  if (rv == 0) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat("raft-listen: cannot listen on ", address, ": ", strerror(err)));
}

absl::Status RaftError(int rv, absl::string_view what, const char* detail) {
  return absl::UnavailableError(absl::StrCat(what, ": ", raft_strerror(rv), detail && *detail ? ": " : "",
                                             detail ? detail : ""));
}

}  // namespace

class RaftNode::Loop final : public ReplicatedFsm::Observer {
 public:
  explicit Loop(RaftNodeOptions options) : options_(std::move(options)), off_loop_(kCompletionThreads) {
    std::random_device rd;
    proposal_base_ = (uint64_t{rd()} << 32 | rd()) & ~uint64_t{0xffffffff};
  }
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  ~Loop() {
    bool wake;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      wake = running_;
    }
    if (wake) uv_async_send(&wakeup_);
    if (thread_.joinable()) thread_.join();
  }

  // The state machine's owner index, which the StateReader shares. Set once Start has succeeded.
  std::shared_ptr<storage::OwnerIndex> owner_index() const { return sm_->owner_index(); }

  absl::Status Start() {
    if (options_.clock == nullptr) return absl::InvalidArgumentError("clock: required");
    if (options_.id == 0) return absl::InvalidArgumentError("id: must be greater than 0");
    if (!options_.peers.empty()) {
      if (options_.leader_link == nullptr) return absl::InvalidArgumentError("leader_link: required with peers");
      const Member* self = FindMember(options_.peers, options_.id);
      if (self == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat("peers: no entry for this member's id ", options_.id));
      }
      self_address_ = ConfigurationAddress(*self);
    } else {
      self_address_ = options_.raft_address;
    }
    if (absl::Status s = MakeDir(options_.data_dir); !s.ok()) return s;
    if (absl::Status s = lock_.Acquire(options_.data_dir); !s.ok()) return s;
    const std::string raft_dir = options_.data_dir + "/raft";
    if (absl::Status s = MakeDir(raft_dir); !s.ok()) return s;

    storage::StateMachineOptions sm_options;
    sm_options.db_path = options_.data_dir + "/state.db";
    // A database is only as good as the log it was built from: reuse it only next to a raft log that has
    // been started before (a wiped or new raft dir rebuilds it from scratch).
    sm_options.reuse_existing = !RaftLogIsPristine(options_.data_dir);
    auto sm = storage::StateMachine::Open(sm_options);
    if (!sm.ok()) return sm.status();
    sm_ = std::move(*sm);

    std::promise<absl::Status> ready;
    ready_ = &ready;
    auto ready_future = ready.get_future();
    thread_ = std::thread([this, raft_dir] {
      storage::NameThisThread("abode-raft");
      Run(raft_dir);
    });
    return ready_future.get();
  }

  bool single_voter() const { return options_.peers.empty(); }
  LeaderLink* leader_link() const { return options_.leader_link; }

  void Enqueue(Proposal p) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!stopping_ && running_) {
        queue_.push_back(std::move(p));
        if (queue_.size() == 1 && tasks_.empty()) uv_async_send(&wakeup_);
        return;
      }
    }
    std::move(p.done)(absl::UnavailableError("allocator is shutting down"));
  }

  void EnqueueLocal(std::vector<v1::Command> commands, std::vector<Done> dones) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!stopping_ && running_) {
        const bool was_empty = queue_.empty() && tasks_.empty();
        for (size_t i = 0; i < commands.size(); ++i) {
          queue_.push_back(Proposal{std::move(commands[i]), std::move(dones[i]), true});
        }
        if (was_empty) uv_async_send(&wakeup_);
        return;
      }
    }
    for (auto& d : dones) std::move(d)(absl::UnavailableError("allocator is shutting down"));
  }

  // Runs `task` on the loop thread; `if_stopped` instead when the loop no longer runs.
  void RunOnLoop(Task task, Task if_stopped) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!stopping_ && running_) {
        tasks_.push_back({std::move(task), std::move(if_stopped)});
        if (tasks_.size() == 1 && queue_.empty()) uv_async_send(&wakeup_);
        return;
      }
    }
    std::move(if_stopped)();
  }

  void PostOffLoop(Task task) { off_loop_.Post(std::move(task)); }

  ClusterView view() {
    std::lock_guard<std::mutex> lock(view_mu_);
    return view_;
  }

  // Highest index whose effects the local state holds (see state_index_).
  uint64_t local_index() const {
    return std::max(state_index_.load(std::memory_order_acquire), last_applied_.load(std::memory_order_acquire));
  }

  // Loop thread: a linearizable-read fence. `done` gets the index reads must wait for.
  void AddFence(absl::AnyInvocable<void(absl::StatusOr<uint64_t>) &&> done) {
    if (raft_state(&raft_) != RAFT_LEADER) {
      std::move(done)(absl::UnavailableError("this replica stopped leading; retry"));
      return;
    }
    fences_.push_back(std::move(done));
  }

  // Loop thread: `done` runs (off the loop) once the local state holds `index`.
  void AddIndexWaiter(uint64_t index, absl::AnyInvocable<void(absl::Status) &&> done) {
    if (local_index() >= index) {
      PostOffLoop([d = std::move(done)]() mutable { std::move(d)(absl::OkStatus()); });
      return;
    }
    index_waiters_.emplace(index, std::move(done));
  }

  void ChangeMembership(int op, Member member, bool voter, RaftNode::ChangeDone done);
  void TakeChecksum(absl::AnyInvocable<void(absl::StatusOr<StateChecksum>) &&> done);

  RaftNode::Stats stats() {
    RaftNode::Stats s;
    s.entries = entries_.load();
    s.commands = commands_.load();
    s.most_inflight_entries = most_inflight_.load();
    s.applied_index = last_applied_.load();
    s.revision = revision_.load();
    return s;
  }

 private:
  void SetReady(absl::Status s) {
    if (ready_ != nullptr) {
      ready_->set_value(std::move(s));
      ready_ = nullptr;
    }
  }

  // The loop thread: sets up c-raft, runs until Stop, tears down.
  void Run(const std::string& raft_dir) {
    uv_loop_init(&loop_);
    uv_async_init(&loop_, &wakeup_, &Loop::OnWakeup);
    wakeup_.data = this;
    uv_timer_init(&loop_, &housekeeping_);
    housekeeping_.data = this;
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
      std::lock_guard<std::mutex> lock(mu_);
      running_ = true;
    }
    PublishNodeState();  // what a reopened database already holds
    uv_timer_start(&housekeeping_, &Loop::OnHousekeeping, options_.housekeeping_interval_ms,
                   options_.housekeeping_interval_ms);
    uv_timer_start(&tick_, &Loop::OnTick, 0, kTickMs);
    if (!single_voter()) SetReady(absl::OkStatus());
    uv_run(&loop_, UV_RUN_DEFAULT);
    // Whatever raft did not call back about was not committed as far as its callers can know.
    for (auto& [id, f] : inflight_) {
      for (auto& d : f->dones) std::move(d)(absl::UnavailableError("allocator shut down before commit"));
      delete f;
    }
    inflight_.clear();
    FailFences(absl::UnavailableError("allocator is shutting down"));
    for (auto& [index, d] : index_waiters_) std::move(d)(absl::UnavailableError("allocator is shutting down"));
    index_waiters_.clear();
    uv_loop_close(&loop_);
  }

  // The TCP transport connects to the raft part of a configuration address ("RAFT@GRPC").
  static int ConnectRaftPart(struct raft_uv_transport* t, struct raft_uv_connect* req, raft_id id,
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
    if (rv == 0) self->TuneSockets();  // the new connection's handle exists now
    return rv;
  }

  absl::Status InitRaft(const std::string& raft_dir) {
    fsm_ = std::make_unique<ReplicatedFsm>(sm_.get(), this, /*asynchronous_snapshots=*/true);

    transport_holder_.loop = this;
    int rv = raft_uv_tcp_init(&transport_, &loop_);
    if (rv != 0) return RaftError(rv, "raft transport", transport_.errmsg);
    transport_initialised_ = true;
    tcp_connect_ = transport_.connect;
    transport_.connect = &Loop::ConnectRaftPart;
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

    // Bootstrapping is refused (RAFT_CANTBOOTSTRAP) once the log holds anything: a restarted member never
    // starts a second cluster. Pristine members all write the same initial configuration.
    if (!options_.join) {
      struct raft_configuration conf;
      raft_configuration_init(&conf);
      if (single_voter()) {
        raft_configuration_add(&conf, options_.id, self_address_.c_str(), RAFT_VOTER);
      } else {
        for (const Member& m : options_.peers) {
          raft_configuration_add(&conf, m.id, ConfigurationAddress(m).c_str(), RAFT_VOTER);
        }
      }
      rv = raft_bootstrap(&raft_, &conf);
      raft_configuration_close(&conf);
      if (rv != 0 && rv != RAFT_CANTBOOTSTRAP) return RaftError(rv, "raft bootstrap", raft_.errmsg);
      if (rv == 0) {
        spdlog::info("bootstrapped a new {}-member cluster in {}", single_voter() ? 1 : options_.peers.size(),
                     raft_dir);
      }
    }

    rv = raft_start(&raft_);
    if (rv != 0) {
      // Starting includes listening on the raft address, and c-raft then reports only "I/O error".
      if (!single_voter()) {
        if (absl::Status s = CheckListenAddress(options_.raft_address); !s.ok()) return s;
      }
      return RaftError(rv, "raft start", raft_.errmsg);
    }
    WidenListenBacklog();
    TuneSockets();
    // A snapshot restored at start holds everything up to its index.
    state_index_.store(raft_last_applied(&raft_), std::memory_order_release);
    last_applied_.store(raft_last_applied(&raft_), std::memory_order_release);
    if (!single_voter()) return absl::OkStatus();
    if (raft_state(&raft_) != RAFT_LEADER) {
      return absl::UnavailableError("raft: this single voter did not become leader");
    }
    // Everything already in the log is applied once a barrier after it is.
    barrier_.data = this;
    rv = raft_barrier(&raft_, &barrier_, &Loop::OnStartBarrier);
    if (rv != 0) return RaftError(rv, "raft barrier", raft_.errmsg);
    return absl::OkStatus();
  }

  static void OnStartBarrier(struct raft_barrier* req, int status) {
    auto* self = static_cast<Loop*>(req->data);
    if (status != 0) {
      self->SetReady(RaftError(status, "raft barrier", nullptr));
      return;
    }
    spdlog::info("state restored: applied index {}, revision {}", raft_last_applied(&self->raft_),
                 self->sm_->revision());
    self->leader_ready_term_ = self->raft_.current_term;
    self->SetReady(absl::OkStatus());
  }

  static void OnWakeup(uv_async_t* handle) {
    auto* self = static_cast<Loop*>(handle->data);
    std::vector<Proposal> batch;
    std::vector<std::pair<Task, Task>> tasks;
    bool stopping;
    {
      std::lock_guard<std::mutex> lock(self->mu_);
      batch.swap(self->queue_);
      tasks.swap(self->tasks_);
      stopping = self->stopping_;
      if (stopping) self->running_ = false;
    }
    if (stopping) {
      for (auto& p : self->held_) std::move(p.done)(absl::UnavailableError("allocator is shutting down"));
      self->held_.clear();
      for (auto& p : batch) std::move(p.done)(absl::UnavailableError("allocator is shutting down"));
      for (auto& t : tasks) std::move(t.second)();
      self->BeginClose();
      return;
    }
    for (auto& t : tasks) std::move(t.first)();
    self->ProposeOrHold(batch);
    self->IssueFenceBarrier();
  }

  // One barrier confirms leadership for every fence queued since the last one.
  struct FenceBarrier {
    struct raft_barrier req{};
    Loop* owner = nullptr;
    std::vector<absl::AnyInvocable<void(absl::StatusOr<uint64_t>) &&>> dones;
  };

  void IssueFenceBarrier() {
    if (fences_.empty()) return;
    auto* b = new FenceBarrier();
    b->owner = this;
    b->dones.swap(fences_);
    b->req.data = b;
    const int rv = raft_barrier(&raft_, &b->req, &Loop::OnFenceBarrier);
    if (rv != 0) {
      for (auto& d : b->dones) std::move(d)(RaftError(rv, "read barrier", raft_.errmsg));
      delete b;
    }
  }

  static void OnFenceBarrier(struct raft_barrier* req, int status) {
    auto* b = static_cast<FenceBarrier*>(req->data);
    if (status != 0) {
      for (auto& d : b->dones) {
        std::move(d)(absl::UnavailableError(absl::StrCat("leadership not confirmed: ", raft_strerror(status))));
      }
    } else {
      const uint64_t index = b->owner->state_index_.load(std::memory_order_acquire);
      for (auto& d : b->dones) std::move(d)(index);
    }
    delete b;
  }

  void FailFences(const absl::Status& s) {
    for (auto& d : fences_) std::move(d)(s);
    fences_.clear();
  }

  // Group commit across entries: while max_inflight_entries entries wait for commit and apply, new proposals
  // wait here and go out together as one entry when one completes. Fewer, larger entries cost less per
  // command everywhere: one SQLite transaction, one AppendEntries and one log write on every replica.
  void ProposeOrHold(std::vector<Proposal>& proposals) {
    if (held_.empty()) {
      held_.swap(proposals);
    } else {
      for (auto& p : proposals) held_.push_back(std::move(p));
    }
    const size_t cap = options_.max_inflight_entries;
    if (cap != 0 && inflight_.size() >= cap && raft_state(&raft_) == RAFT_LEADER) return;
    std::vector<Proposal> now;
    now.swap(held_);
    ProposeAll(now);
  }

  void ProposeAll(std::vector<Proposal>& proposals) {
    if (proposals.empty()) return;
    if (raft_state(&raft_) != RAFT_LEADER) {
      Forward(proposals);
      return;
    }
    for (size_t start = 0; start < proposals.size(); start += options_.max_batch_commands) {
      const size_t end = std::min(proposals.size(), start + options_.max_batch_commands);
      auto* f = new InFlight();
      f->owner = this;
      f->proposal_id = proposal_base_ | ++proposal_seq_;
      v1::CommandBatch batch;
      batch.set_format_version(storage::kCommandFormatVersion);
      batch.set_time_unix_ms(options_.clock->NowUnixMs());
      batch.set_proposal_id(f->proposal_id);
      for (size_t i = start; i < end; ++i) {
        *batch.add_commands() = std::move(proposals[i].command);
        f->dones.push_back(std::move(proposals[i].done));
        f->on_loop.push_back(proposals[i].on_loop);
      }
      raft_buffer buf = EncodeEntry(batch);
      f->req.data = f;
      inflight_[f->proposal_id] = f;
      const int rv = raft_apply(&raft_, &f->req, &buf, 1, &Loop::OnApplied);
      if (rv != 0) {
        raft_free(buf.base);
        inflight_.erase(f->proposal_id);
        for (auto& d : f->dones) std::move(d)(RaftError(rv, "propose", raft_.errmsg));
        delete f;
        continue;
      }
      entries_.fetch_add(1, std::memory_order_relaxed);
      if (inflight_.size() > most_inflight_.load(std::memory_order_relaxed)) {
        most_inflight_.store(inflight_.size(), std::memory_order_relaxed);
      }
      commands_.fetch_add(end - start, std::memory_order_relaxed);
    }
  }

  // A follower sends what it was asked to write to the leader, as one group per wake-up.
  void Forward(std::vector<Proposal>& proposals) {
    raft_id leader_id = 0;
    const char* leader_address = nullptr;
    raft_leader(&raft_, &leader_id, &leader_address);
    std::vector<v1::Command> commands;
    auto dones = std::make_shared<std::vector<Done>>();
    Deadline earliest = kNoDeadline;
    for (auto& p : proposals) {
      if (p.local) {
        std::move(p.done)(absl::UnavailableError("this replica is no longer the raft leader; retry"));
        continue;
      }
      if (leader_id == 0 || leader_id == options_.id || single_voter()) {
        std::move(p.done)(absl::UnavailableError(
            "no raft leader is known to this replica (an election is under way or a quorum is unreachable)"));
        continue;
      }
      commands.push_back(std::move(p.command));
      dones->push_back(std::move(p.done));
      earliest = std::min(earliest, p.deadline);
    }
    if (commands.empty()) return;
    const Member leader = MemberFromConfiguration(leader_id, leader_address);
    if (leader.grpc_address.empty()) {
      for (auto& d : *dones) {
        std::move(d)(absl::UnavailableError(absl::StrCat("leader ", leader_id, " has no gRPC address")));
      }
      return;
    }
    options_.leader_link->Forward(
        leader.grpc_address, std::move(commands), earliest,
        [dones](absl::StatusOr<LeaderLink::Outcomes> outcomes) mutable {
          for (size_t i = 0; i < dones->size(); ++i) {
            if (!outcomes.ok()) {
              std::move((*dones)[i])(outcomes.status());
            } else if (i >= outcomes->size()) {
              std::move((*dones)[i])(absl::InternalError("the leader answered fewer outcomes than commands"));
            } else {
              std::move((*dones)[i])(std::move((*outcomes)[i]));
            }
          }
        });
  }

  // Answers everyone who waited for this entry: the loop's own callers at once, all others on the completion
  // threads (responding to gRPC callers costs more than applying the entry), a large entry's callers spread
  // over all of them in order (AnswerChunks).
  static void OnApplied(struct raft_apply* req, int status, void* /*result*/) {
    std::unique_ptr<InFlight> f(static_cast<InFlight*>(req->data));
    f->owner->inflight_.erase(f->proposal_id);
    // Held proposals go out on the next turn of the loop, not from inside raft's callback.
    if (!f->owner->held_.empty()) uv_async_send(&f->owner->wakeup_);
    std::vector<std::pair<Done, storage::CommandOutcome>> off_loop;
    for (size_t i = 0; i < f->dones.size(); ++i) {
      storage::CommandOutcome outcome =
          status != 0 ? absl::UnavailableError(absl::StrCat("not committed: ", raft_strerror(status)))
          : !f->applied || i >= f->outcomes.size() ? absl::InternalError("committed but its outcome was lost")
                                                   : std::move(f->outcomes[i]);
      if (f->on_loop[i]) {
        std::move(f->dones[i])(std::move(outcome));
      } else {
        off_loop.emplace_back(std::move(f->dones[i]), std::move(outcome));
      }
    }
    // Each task answers its own run of the shared answers; no two touch the same element.
    auto answers = std::make_shared<std::vector<std::pair<Done, storage::CommandOutcome>>>(std::move(off_loop));
    size_t begin = 0;
    for (const size_t size : AnswerChunks(answers->size(), kCompletionThreads)) {
      f->owner->PostOffLoop([answers, begin, end = begin + size] {
        for (size_t i = begin; i < end; ++i) std::move((*answers)[i].first)(std::move((*answers)[i].second));
      });
      begin += size;
    }
  }

  // ReplicatedFsm::Observer.
  void OnApplied(uint64_t index, uint64_t proposal_id, std::vector<storage::CommandOutcome> outcomes,
                 bool replayed) override {
    state_index_.store(index, std::memory_order_release);
    last_applied_.store(index, std::memory_order_release);
    if (replayed) return;
    revision_.store(sm_->revision(), std::memory_order_relaxed);
    PublishNodeState();
    auto it = inflight_.find(proposal_id);
    if (it != inflight_.end()) {
      it->second->outcomes = std::move(outcomes);
      it->second->applied = true;
    }
    WakeIndexWaiters();
  }

  void OnApplyFailed(uint64_t index, const absl::Status& status) override {
    // Going on would let this replica diverge from the others. Stop; a restart rebuilds the state from the
    // log, and an entry from a newer release needs this replica upgraded.
    spdlog::critical("cannot apply raft entry {}: {}", index, status.ToString());
    std::abort();
  }

  void OnRestored(uint64_t /*raft_index*/, bool installed) override {
    revision_.store(sm_->revision(), std::memory_order_relaxed);
    if (!installed) return;
    PublishNodeState();
    // raft sets the applied index to the snapshot's once the restore returns; the next tick records it.
    restored_ = true;
  }

  void WakeIndexWaiters() {
    const uint64_t have = local_index();
    while (!index_waiters_.empty() && index_waiters_.begin()->first <= have) {
      auto d = std::move(index_waiters_.begin()->second);
      index_waiters_.erase(index_waiters_.begin());
      PostOffLoop([d = std::move(d)]() mutable { std::move(d)(absl::OkStatus()); });
    }
  }

  // Hands the node-state changes of what was just applied to the watch hub (which only enqueues them).
  void PublishNodeState() {
    storage::NodeStateUpdate update = sm_->TakeNodeStateUpdate();
    if (options_.node_state_sink != nullptr) options_.node_state_sink->Publish(std::move(update));
  }

  // libraft 0.15's TCP transport listens with a backlog of 1: members connecting at the same moment (a
  // restart, a new leader) have their SYNs dropped and retry only after 1 s, 3 s, ... Listening again on the
  // same socket only changes the backlog.
  // libraft 0.15's TCP transport leaves Nagle's algorithm on. Its connections carry messages one way only
  // (each member sends on the connections it opened), so the receiver's TCP acknowledgements are delayed
  // (up to 40 ms), and Nagle holds a small message back until the previous one is acknowledged: a follower
  // could get an AppendEntries, and the leader its commit, ~40 ms late. TCP_NODELAY on every raft socket:
  // the connections this member opens (set as they are made) and the listening socket, whose setting
  // accepted connections inherit. libuv applies it to a socket created later, too.
  // A member whose address went away (its pod was deleted; its name now resolves elsewhere) answers nothing,
  // not even a reset. libraft never reads on the connections it opens, so only a failed write ends one, and
  // TCP would retransmit for ~15 minutes first. TCP_USER_TIMEOUT ends a connection whose data stays
  // unacknowledged for three election timeouts, and TCP_SYNCNT ends an attempt to connect there after 2
  // retransmitted SYNs (~7 s instead of ~2 minutes); libraft then connects again, to the new address.
  void TuneSockets() {
    const unsigned user_timeout_ms = 3 * options_.election_timeout_ms;
    uv_walk(
        &loop_,
        [](uv_handle_t* h, void* arg) {
          if (h->type != UV_TCP || uv_is_closing(h)) return;
          if (const int rv = uv_tcp_nodelay(reinterpret_cast<uv_tcp_t*>(h), 1); rv != 0) {
            spdlog::warn("raft transport: cannot set TCP_NODELAY: {}", uv_strerror(rv));
          }
          uv_os_fd_t fd;
          if (uv_fileno(h, &fd) != 0) return;
          const int syn_retries = 2;
          const unsigned timeout_ms = *static_cast<const unsigned*>(arg);
          if (::setsockopt(fd, IPPROTO_TCP, TCP_SYNCNT, &syn_retries, sizeof(syn_retries)) != 0 ||
              ::setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &timeout_ms, sizeof(timeout_ms)) != 0) {
            spdlog::warn("raft transport: cannot set TCP timeouts: {}", strerror(errno));
          }
        },
        const_cast<unsigned*>(&user_timeout_ms));
  }

  void WidenListenBacklog() {
    uv_walk(
        &loop_,
        [](uv_handle_t* h, void*) {
          if (h->type != UV_TCP) return;
          uv_os_fd_t fd;
          if (uv_fileno(h, &fd) != 0) return;
          int listening = 0;
          socklen_t len = sizeof(listening);
          if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || listening == 0) return;
          if (::listen(fd, SOMAXCONN) != 0) spdlog::warn("raft transport: cannot widen the listen backlog: {}", strerror(errno));
        },
        nullptr);
  }

  static void OnTick(uv_timer_t* t) { static_cast<Loop*>(t->data)->Tick(); }

  // Publishes what this replica knows, confirms a new leadership with a barrier, wakes index waiters.
  void Tick() {
    const uint64_t applied = raft_last_applied(&raft_);
    last_applied_.store(applied, std::memory_order_release);
    if (restored_) {
      restored_ = false;
      state_index_.store(std::max(state_index_.load(), applied), std::memory_order_release);
    }
    WakeIndexWaiters();

    const int state = raft_state(&raft_);
    const uint64_t term = raft_.current_term;
    if (state == RAFT_LEADER && leader_barrier_term_ != term) {
      leader_barrier_term_ = term;
      auto* b = new struct raft_barrier();
      b->data = this;
      if (raft_barrier(&raft_, b, &Loop::OnLeaderBarrier) != 0) {
        delete b;
        leader_barrier_term_ = 0;
      }
    }
    if (state != RAFT_LEADER) FailFences(absl::UnavailableError("this replica stopped leading; retry"));

    raft_id leader_id = 0;
    const char* leader_address = nullptr;
    raft_leader(&raft_, &leader_id, &leader_address);
    if (leader_id != 0 && state == RAFT_FOLLOWER && applied >= raft_.commit_index) caught_up_ = true;
    PublishView();
  }

 public:
  // Publishes what this replica knows to view(): on every tick, and as soon as a membership change is done
  // so that its caller's answer shows it.
  void PublishView() {
    const int state = raft_state(&raft_);
    const uint64_t term = raft_.current_term;
    const uint64_t applied = raft_last_applied(&raft_);
    raft_id leader_id = 0;
    const char* leader_address = nullptr;
    raft_leader(&raft_, &leader_id, &leader_address);
    ClusterView v;
    v.id = options_.id;
    v.role = StateName(state);
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
      m.role = s.id == leader_id ? "leader" : RoleName(s.role);
      v.members.push_back(std::move(m));
    }
    std::lock_guard<std::mutex> lock(view_mu_);
    view_ = std::move(v);
  }

 private:

  static void OnLeaderBarrier(struct raft_barrier* req, int status) {
    auto* self = static_cast<Loop*>(req->data);
    if (status == 0) {
      self->leader_ready_term_ = self->raft_.current_term;
      spdlog::info("leading term {} from applied index {}", self->raft_.current_term, raft_last_applied(&self->raft_));
    }
    delete req;
  }

  static void OnHousekeeping(uv_timer_t* t) {
    auto* self = static_cast<Loop*>(t->data);
    self->Housekeeping();
  }

  void Housekeeping() {
    if (raft_state(&raft_) != RAFT_LEADER) return;
    const int64_t now = options_.clock->NowUnixMs();
    if (!expire_pending_) {
      auto next = sm_->EarliestExpiry();
      if (next.ok() && next->has_value() && **next <= now) {
        expire_pending_ = true;
        std::vector<Proposal> p(1);
        p[0].command.mutable_expire_allocations();
        p[0].local = true;
        p[0].on_loop = true;
        p[0].done = [this](storage::CommandOutcome o) {
          expire_pending_ = false;
          if (o.ok() && o->changed() > 0) spdlog::info("reclaimed {} expired allocations", o->changed());
        };
        ProposeAll(p);
      }
    }
    if (options_.history_retention_ms > 0 && now - last_prune_ms_ >= 60'000) {
      last_prune_ms_ = now;
      std::vector<Proposal> p(1);
      p[0].command.mutable_prune_history()->set_older_than_unix_ms(now - options_.history_retention_ms);
      p[0].local = true;
      p[0].on_loop = true;
      p[0].done = [](storage::CommandOutcome) {};
      ProposeAll(p);
    }
  }

  void BeginClose() {
    uv_timer_stop(&housekeeping_);
    uv_timer_stop(&tick_);
    if (raft_initialised_) {
      raft_close(&raft_, &Loop::OnRaftClosed);
    } else {
      if (io_initialised_) raft_uv_close(&io_);
      if (transport_initialised_) raft_uv_tcp_close(&transport_);
      io_initialised_ = false;
      transport_initialised_ = false;
      CloseHandles();
    }
  }

  static void OnRaftClosed(struct raft* r) {
    auto* self = static_cast<Loop*>(r->data);
    raft_uv_close(&self->io_);
    raft_uv_tcp_close(&self->transport_);
    self->io_initialised_ = false;
    self->transport_initialised_ = false;
    self->raft_initialised_ = false;
    self->CloseHandles();
  }

  void CloseHandles() {
    uv_close(reinterpret_cast<uv_handle_t*>(&wakeup_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&housekeeping_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&tick_), nullptr);
  }

  static constexpr uint64_t kTickMs = 5;

  RaftNodeOptions options_;
  std::string self_address_;  // this member's configuration address
  DirLock lock_;
  std::unique_ptr<storage::StateMachine> sm_;
  std::thread thread_;
  std::promise<absl::Status>* ready_ = nullptr;

  std::mutex mu_;
  std::vector<Proposal> queue_;  // guarded by mu_
  std::vector<Proposal> held_;   // loop thread only: proposals waiting for an in-flight entry to complete
  std::vector<std::pair<Task, Task>> tasks_;  // guarded by mu_: (task, what to do if the loop stopped)
  bool stopping_ = false;        // guarded by mu_
  bool running_ = false;         // guarded by mu_

  std::mutex view_mu_;
  ClusterView view_;  // guarded by view_mu_

  // Loop-thread state.
  uv_loop_t loop_{};
  uv_async_t wakeup_{};
  uv_timer_t housekeeping_{};
  uv_timer_t tick_{};
  struct TransportHolder {
    raft_uv_transport transport{};
    Loop* loop = nullptr;
  };
  TransportHolder transport_holder_;
  raft_uv_transport& transport_ = transport_holder_.transport;
  decltype(raft_uv_transport::connect) tcp_connect_ = nullptr;
  std::map<std::string, std::unique_ptr<std::string>> connect_addresses_;  // stable C strings for connect
  std::unique_ptr<PeerResolver> resolver_;  // made at the first connection
  raft_io io_{};
  std::unique_ptr<ReplicatedFsm> fsm_;  // over sm_; raft calls it on this loop (snapshots also on a worker)
  struct raft raft_{};
  struct raft_barrier barrier_{};
  bool raft_initialised_ = false;
  bool io_initialised_ = false;
  bool transport_initialised_ = false;
  absl::flat_hash_map<uint64_t, InFlight*> inflight_;
  std::vector<absl::AnyInvocable<void(absl::StatusOr<uint64_t>) &&>> fences_;
  std::multimap<uint64_t, absl::AnyInvocable<void(absl::Status) &&>> index_waiters_;
  uint64_t proposal_base_ = 0;
  uint64_t proposal_seq_ = 0;
  bool expire_pending_ = false;
  int64_t last_prune_ms_ = 0;
  uint64_t leader_barrier_term_ = 0;  // term in which the leadership barrier was issued
  uint64_t leader_ready_term_ = 0;    // term whose leadership barrier was applied
  bool caught_up_ = false;            // as a follower, applied all it knew to be committed at least once
  bool restored_ = false;

  std::atomic<uint64_t> entries_{0};
  std::atomic<uint64_t> most_inflight_{0};  // written by the loop thread only
  std::atomic<uint64_t> commands_{0};
  // Index of the newest entry that changed the state (a command batch or an installed snapshot). Entries
  // after it up to the applied index are barriers and configuration changes, which leave the state alone.
  std::atomic<uint64_t> state_index_{0};
  std::atomic<uint64_t> last_applied_{0};
  std::atomic<uint64_t> revision_{0};

  OffLoop off_loop_;  // last: its threads stop before the rest goes
};

// Membership operations, on the loop thread.
namespace {
constexpr int kOpAdd = 1;
constexpr int kOpRemove = 2;
constexpr int kOpTransfer = 3;

struct Change {
  struct raft_change change{};
  struct raft_transfer transfer{};
  RaftNode::ChangeDone done;
  struct raft* raft = nullptr;
  RaftNode::Loop* loop = nullptr;
  uint64_t id = 0;
  bool voter = true;
  absl::Status promote_failure;  // why the promotion failed, while the half-added member is removed again
};

absl::Status ChangeStatus(int status, absl::string_view what) {
  if (status == 0) return absl::OkStatus();
  if (status == RAFT_NOTLEADER || status == RAFT_LEADERSHIPLOST) {
    return absl::UnavailableError(absl::StrCat(what, ": leadership changed; retry"));
  }
  if (status == RAFT_CANTCHANGE) {
    return absl::FailedPreconditionError(absl::StrCat(what, ": another membership change is in progress"));
  }
  if (status == RAFT_DUPLICATEID || status == RAFT_DUPLICATEADDRESS) {
    return absl::AlreadyExistsError(absl::StrCat(what, ": ", raft_strerror(status)));
  }
  if (status == RAFT_BADID || status == RAFT_NOTFOUND) {
    return absl::NotFoundError(absl::StrCat(what, ": no such member"));
  }
  return absl::FailedPreconditionError(absl::StrCat(what, ": ", raft_strerror(status)));
}

bool InConfiguration(const raft_configuration& conf, uint64_t id) {
  for (unsigned i = 0; i < conf.n; ++i) {
    if (conf.servers[i].id == id) return true;
  }
  return false;
}

// Refusals naming the field, checked against the configuration raft holds. Raft itself names no field and
// compares whole "RAFT@GRPC" strings: it would take a second member on a raft or gRPC address already in
// use, and one on the leader's own raft address crashes it.
absl::Status CheckNewMember(const raft_configuration& conf, const Member& m) {
  for (unsigned i = 0; i < conf.n; ++i) {
    const raft_server& s = conf.servers[i];
    const Member e = MemberFromConfiguration(s.id, s.address);
    if (e.id == m.id) {
      return absl::AlreadyExistsError(absl::StrCat("id: member ", m.id, " is already in the cluster (",
                                                   RoleName(s.role), " at ", ConfigurationAddress(e), ")"));
    }
    if (e.raft_address == m.raft_address) {
      return absl::AlreadyExistsError(absl::StrCat("raft_address: \"", m.raft_address, "\" is already member ", e.id, "'s"));
    }
    if (e.grpc_address == m.grpc_address) {
      return absl::AlreadyExistsError(absl::StrCat("grpc_address: \"", m.grpc_address, "\" is already member ", e.id, "'s"));
    }
  }
  return absl::OkStatus();
}

void OnRolledBack(struct raft_change* req, int status) {
  auto* c = static_cast<Change*>(req->data);
  if (status != 0) {
    spdlog::warn("member {} could not be promoted and stays a spare: removing it failed: {}", c->id,
                 raft_strerror(status));
  }
  c->loop->PublishView();
  std::move(c->done)(c->promote_failure);
  delete c;
}

// A member that was added but could not be promoted (unreachable, say) would otherwise stay behind as a
// spare, and a retried AddMember would find its id taken: remove it again before answering.
void OnAssigned(struct raft_change* req, int status) {
  auto* c = static_cast<Change*>(req->data);
  if (status == 0 || status == RAFT_NOTLEADER || status == RAFT_LEADERSHIPLOST) {
    if (status == 0) c->loop->PublishView();  // the answer shows the member in its new role
    std::move(c->done)(ChangeStatus(status, "promote member"));
    delete c;
    return;
  }
  c->promote_failure = absl::Status(ChangeStatus(status, "promote member").code(),
                                    absl::StrCat("promote member: ", raft_strerror(status),
                                                 "; the member was removed again, add it once it is reachable"));
  if (raft_remove(c->raft, &c->change, c->id, &OnRolledBack) != 0) {
    spdlog::warn("member {} could not be promoted and stays a spare", c->id);
    std::move(c->done)(ChangeStatus(status, "promote member"));
    delete c;
  }
}

void OnAdded(struct raft_change* req, int status) {
  auto* c = static_cast<Change*>(req->data);
  if (status != 0) {
    std::move(c->done)(ChangeStatus(status, "add member"));
    delete c;
    return;
  }
  // Promotion waits for the new member to catch up with the log (c-raft's catch-up rounds).
  const int rv = raft_assign(c->raft, &c->change, c->id, c->voter ? RAFT_VOTER : RAFT_STANDBY, &OnAssigned);
  if (rv != 0) {
    std::move(c->done)(ChangeStatus(rv, "promote member"));
    delete c;
  }
}

void OnRemoved(struct raft_change* req, int status) {
  auto* c = static_cast<Change*>(req->data);
  if (status == 0) c->loop->PublishView();  // the answer no longer shows the member
  std::move(c->done)(ChangeStatus(status, "remove member"));
  delete c;
}

void OnTransferred(struct raft_transfer* req) {
  auto* c = static_cast<Change*>(req->data);
  raft_id leader = 0;
  const char* address = nullptr;
  raft_leader(c->raft, &leader, &address);
  if (leader == c->raft->id && raft_state(c->raft) == RAFT_LEADER) {
    std::move(c->done)(absl::UnavailableError("transfer leadership: the target did not take over in time"));
  } else {
    std::move(c->done)(absl::OkStatus());
  }
  delete c;
}
}  // namespace

void RaftNode::Loop::ChangeMembership(int op, Member member, bool voter, RaftNode::ChangeDone done) {
  if (raft_state(&raft_) != RAFT_LEADER) {
    std::move(done)(absl::UnavailableError("this replica is not the raft leader; retry"));
    return;
  }
  auto* c = new Change();
  c->done = std::move(done);
  c->raft = &raft_;
  c->loop = this;
  c->id = member.id;
  c->voter = voter;
  c->change.data = c;
  c->transfer.data = c;
  int rv = 0;
  const char* what = "";
  switch (op) {
    case kOpAdd: {
      what = "add member";
      if (absl::Status refused = CheckNewMember(raft_.configuration, member); !refused.ok()) {
        std::move(c->done)(refused);
        delete c;
        return;
      }
      const std::string address = ConfigurationAddress(member);
      rv = raft_add(&raft_, &c->change, member.id, address.c_str(), &OnAdded);
      break;
    }
    case kOpRemove:
      what = "remove member";
      if (!InConfiguration(raft_.configuration, member.id)) {
        std::move(c->done)(absl::NotFoundError(absl::StrCat("id: member ", member.id, " is not in the cluster")));
        delete c;
        return;
      }
      rv = raft_remove(&raft_, &c->change, member.id, &OnRemoved);
      break;
    case kOpTransfer:
      what = "transfer leadership";
      rv = raft_transfer(&raft_, &c->transfer, member.id, &OnTransferred);
      break;
  }
  if (rv != 0) {
    std::move(c->done)(ChangeStatus(rv, what));
    delete c;
  }
}

void RaftNode::Loop::TakeChecksum(absl::AnyInvocable<void(absl::StatusOr<StateChecksum>) &&> done) {
  // Between two applies the store holds exactly the state at the applied index: pin it here, serialise and
  // hash it off the loop.
  StateChecksum c;
  c.applied_index = raft_last_applied(&raft_);
  c.revision = sm_->revision();
  auto pinned = storage::PinnedState::Pin(sm_->db_path());
  if (!pinned.ok()) {
    std::move(done)(pinned.status());
    return;
  }
  PostOffLoop([c, pinned = std::move(*pinned), done = std::move(done)]() mutable {
    auto snap = pinned->Dump();
    pinned.reset();
    if (!snap.ok()) {
      std::move(done)(snap.status());
      return;
    }
    c.checksum = Fnv1a64(*snap);
    c.allocations = SnapshotAllocations(*snap);
    std::move(done)(c);
  });
}

RaftNode::RaftNode(std::unique_ptr<Loop> loop) : loop_(std::move(loop)) {}
RaftNode::~RaftNode() {
  reader_.reset();
  loop_.reset();
}

std::vector<size_t> AnswerChunks(size_t answers, size_t threads) {
  if (answers == 0) return {};
  const size_t chunks = std::clamp<size_t>(answers / kMinAnswersPerChunk, 1, std::max<size_t>(threads, 1));
  std::vector<size_t> sizes(chunks, answers / chunks);
  for (size_t i = 0; i < answers % chunks; ++i) ++sizes[i];
  return sizes;
}

bool RaftLogIsPristine(const std::string& data_dir) {
  return ::access((data_dir + "/raft/metadata1").c_str(), F_OK) != 0 &&
         ::access((data_dir + "/raft/metadata2").c_str(), F_OK) != 0;
}

namespace {

// c-raft's disk half, opened by a one-off command while the member is down (its data dir stays locked
// meanwhile). The transport is made because raft_uv needs one, and never started.
class OfflineRaftStorage {
 public:
  OfflineRaftStorage() = default;
  OfflineRaftStorage(const OfflineRaftStorage&) = delete;
  OfflineRaftStorage& operator=(const OfflineRaftStorage&) = delete;
  ~OfflineRaftStorage() {
    if (!loop_up_) return;
    if (io_open_) {
      io_.close(&io_, [](struct raft_io*) {});
      uv_run(&loop_, UV_RUN_DEFAULT);
    }
    if (io_up_) raft_uv_close(&io_);
    if (transport_up_) raft_uv_tcp_close(&transport_);
    uv_run(&loop_, UV_RUN_DEFAULT);
    uv_loop_close(&loop_);
  }

  absl::Status Open(const std::string& data_dir, absl::string_view what) {
    if (RaftLogIsPristine(data_dir)) {
      return absl::FailedPreconditionError(absl::StrCat(what, ": ", data_dir, " holds no raft log"));
    }
    if (absl::Status s = lock_.Acquire(data_dir); !s.ok()) return s;  // refuses while the member runs
    if (const int rv = uv_loop_init(&loop_); rv != 0) {
      return absl::InternalError(absl::StrCat(what, ": uv loop: ", uv_strerror(rv)));
    }
    loop_up_ = true;
    if (const int rv = raft_uv_tcp_init(&transport_, &loop_); rv != 0) {
      return RaftError(rv, absl::StrCat(what, ": raft transport"), transport_.errmsg);
    }
    transport_up_ = true;
    if (const int rv = raft_uv_init(&io_, &loop_, (data_dir + "/raft").c_str(), &transport_); rv != 0) {
      return RaftError(rv, absl::StrCat(what, ": raft storage"), io_.errmsg);
    }
    io_up_ = true;
    return absl::OkStatus();
  }

  // For reading: initialises the storage itself (raft_init does that for a raft instance).
  absl::Status Init(uint64_t id, absl::string_view what) {
    if (const int rv = io_.init(&io_, id, "offline"); rv != 0) return RaftError(rv, what, io_.errmsg);
    io_open_ = true;
    return absl::OkStatus();
  }

  struct raft_io* io() { return &io_; }
  uv_loop_t* loop() { return &loop_; }

 private:
  DirLock lock_;
  uv_loop_t loop_{};
  struct raft_uv_transport transport_{};
  struct raft_io io_{};
  bool loop_up_ = false;
  bool transport_up_ = false;
  bool io_up_ = false;
  bool io_open_ = false;
};

}  // namespace

absl::StatusOr<RaftLogState> ReadRaftLogState(const std::string& data_dir, uint64_t id) {
  OfflineRaftStorage storage;
  if (absl::Status s = storage.Open(data_dir, "log state"); !s.ok()) return s;
  if (absl::Status s = storage.Init(id, "log state: raft storage"); !s.ok()) return s;
  raft_term term = 0;
  raft_id voted_for = 0;
  struct raft_snapshot* snapshot = nullptr;
  raft_index start_index = 0;
  struct raft_entry* entries = nullptr;
  size_t n = 0;
  struct raft_io* io = storage.io();
  if (const int rv = io->load(io, &term, &voted_for, &snapshot, &start_index, &entries, &n); rv != 0) {
    return RaftError(rv, "log state: load", io->errmsg);
  }
  RaftLogState state;
  state.term = term;
  state.voted_for = voted_for;
  if (snapshot != nullptr) {
    state.snapshot_index = snapshot->index;
    state.last_index = snapshot->index;
    state.last_term = snapshot->term;
    raft_configuration_close(&snapshot->configuration);
    for (unsigned i = 0; i < snapshot->n_bufs; ++i) raft_free(snapshot->bufs[i].base);
    raft_free(snapshot->bufs);
    raft_free(snapshot);
  }
  if (n > 0) {
    state.last_index = start_index + n - 1;
    state.last_term = entries[n - 1].term;
  }
  // Entries loaded together share one batch allocation each.
  void* freed = nullptr;
  for (size_t i = 0; i < n; ++i) {
    if (entries[i].batch != nullptr && entries[i].batch != freed) {
      freed = entries[i].batch;
      raft_free(freed);
    }
  }
  raft_free(entries);
  return state;
}

absl::Status RecoverConfiguration(const std::string& data_dir, uint64_t id, const std::vector<Member>& members) {
  const Member* self = FindMember(members, id);
  if (self == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("recover: this member (id ", id, ") must be in the new configuration"));
  }
  OfflineRaftStorage storage;
  if (absl::Status s = storage.Open(data_dir, "recover"); !s.ok()) return s;
  struct raft r {};
  struct raft_fsm fsm {};  // never called: nothing is applied
  fsm.version = 1;
  if (const int rv = raft_init(&r, storage.io(), &fsm, id, ConfigurationAddress(*self).c_str()); rv != 0) {
    return RaftError(rv, "recover: raft init", r.errmsg);
  }
  struct raft_configuration conf;
  raft_configuration_init(&conf);
  for (const Member& m : members) raft_configuration_add(&conf, m.id, ConfigurationAddress(m).c_str(), RAFT_VOTER);
  const int rv = raft_recover(&r, &conf);  // synchronous disk I/O
  raft_configuration_close(&conf);
  absl::Status result = rv == 0 ? absl::OkStatus() : RaftError(rv, "recover", r.errmsg);
  raft_close(&r, [](struct raft*) {});  // closes the storage's I/O too
  uv_run(storage.loop(), UV_RUN_DEFAULT);
  return result;
}

absl::StatusOr<std::unique_ptr<RaftNode>> RaftNode::Start(const RaftNodeOptions& options) {
  auto loop = std::make_unique<Loop>(options);
  if (absl::Status s = loop->Start(); !s.ok()) return s;
  auto reader = storage::StateReader::Open(options.data_dir + "/state.db", loop->owner_index());
  if (!reader.ok()) return reader.status();
  std::unique_ptr<RaftNode> node(new RaftNode(std::move(loop)));
  node->reader_ = std::move(*reader);
  return node;
}

void RaftNode::Propose(v1::Command command, Deadline deadline, Done done) {
  loop_->Enqueue(Proposal{std::move(command), std::move(done), false, false, deadline});
}

void RaftNode::ProposeLocal(std::vector<v1::Command> commands, std::vector<Done> dones) {
  loop_->EnqueueLocal(std::move(commands), std::move(dones));
}

void RaftNode::Await(ReadConsistency consistency, Deadline deadline,
                     absl::AnyInvocable<void(absl::Status) &&> done) {
  // A single voter's configuration never changes under it: its applied state is the committed state.
  if (loop_->single_voter()) {
    std::move(done)(absl::OkStatus());
    return;
  }
  const ClusterView v = view();
  if (consistency == ReadConsistency::kStale) {
    if (v.ready) {
      std::move(done)(absl::OkStatus());
    } else if (v.leader_id == 0) {
      std::move(done)(absl::UnavailableError("no raft leader is known to this replica"));
    } else {
      std::move(done)(absl::UnavailableError("this replica has not caught up with the leader yet"));
    }
    return;
  }
  if (v.leader_id == 0) {
    std::move(done)(absl::UnavailableError(
        "no raft leader is known to this replica (an election is under way or a quorum is unreachable)"));
    return;
  }
  Loop* loop = loop_.get();
  auto wait_for = [loop](uint64_t index, absl::AnyInvocable<void(absl::Status) &&> done) {
    if (loop->local_index() >= index) {
      std::move(done)(absl::OkStatus());
      return;
    }
    auto shared = std::make_shared<absl::AnyInvocable<void(absl::Status) &&>>(std::move(done));
    loop->RunOnLoop([loop, index, shared] { loop->AddIndexWaiter(index, std::move(*shared)); },
                    [shared] { std::move (*shared)(absl::UnavailableError("allocator is shutting down")); });
  };
  if (v.role == "leader") {
    auto shared = std::make_shared<absl::AnyInvocable<void(absl::Status) &&>>(std::move(done));
    loop->RunOnLoop(
        [loop, shared] {
          loop->AddFence([loop, shared](absl::StatusOr<uint64_t> index) {
            // Everything up to the barrier is applied here already: the read may go ahead, off the loop.
            loop->PostOffLoop([shared, s = index.status()]() mutable { std::move(*shared)(s); });
          });
        },
        [shared] { std::move (*shared)(absl::UnavailableError("allocator is shutting down")); });
    return;
  }
  loop->leader_link()->ReadIndex(
      v.leader_grpc_address, deadline, [wait_for, done = std::move(done)](absl::StatusOr<uint64_t> index) mutable {
        if (!index.ok()) {
          std::move(done)(index.status());
          return;
        }
        wait_for(*index, std::move(done));
      });
}

void RaftNode::LocalReadIndex(absl::AnyInvocable<void(absl::StatusOr<uint64_t>) &&> done) {
  Loop* loop = loop_.get();
  auto shared = std::make_shared<absl::AnyInvocable<void(absl::StatusOr<uint64_t>) &&>>(std::move(done));
  loop->RunOnLoop([loop, shared] { loop->AddFence(std::move(*shared)); },
                  [shared] { std::move (*shared)(absl::UnavailableError("allocator is shutting down")); });
}

namespace {
void QueueChange(RaftNode::Loop* loop, int op, Member member, bool voter, RaftNode::ChangeDone done) {
  auto shared = std::make_shared<RaftNode::ChangeDone>(std::move(done));
  loop->RunOnLoop([loop, op, member = std::move(member), voter,
                   shared] { loop->ChangeMembership(op, member, voter, std::move(*shared)); },
                  [shared] { std::move (*shared)(absl::UnavailableError("allocator is shutting down")); });
}
}  // namespace

void RaftNode::AddMember(const Member& member, bool voter, ChangeDone done) {
  QueueChange(loop_.get(), kOpAdd, member, voter, std::move(done));
}

void RaftNode::RemoveMember(uint64_t id, ChangeDone done) {
  Member m;
  m.id = id;
  QueueChange(loop_.get(), kOpRemove, std::move(m), true, std::move(done));
}

void RaftNode::TransferLeadership(uint64_t id, ChangeDone done) {
  Member m;
  m.id = id;
  QueueChange(loop_.get(), kOpTransfer, std::move(m), true, std::move(done));
}

void RaftNode::Checksum(absl::AnyInvocable<void(absl::StatusOr<StateChecksum>) &&> done) {
  Loop* loop = loop_.get();
  auto shared = std::make_shared<absl::AnyInvocable<void(absl::StatusOr<StateChecksum>) &&>>(std::move(done));
  loop->RunOnLoop([loop, shared] { loop->TakeChecksum(std::move(*shared)); },
                  [shared] { std::move (*shared)(absl::UnavailableError("allocator is shutting down")); });
}

ClusterView RaftNode::view() { return loop_->view(); }

RaftNode::Stats RaftNode::stats() { return loop_->stats(); }

}  // namespace abode::allocator

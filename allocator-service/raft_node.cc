#include "allocator-service/raft_node.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

// c-raft's headers carry no extern "C" of their own.
extern "C" {
#include <raft.h>
#include <raft/uv.h>
}

#include <atomic>
#include <chrono>
#include <cerrno>
#include <cstring>
#include <future>
#include <mutex>
#include <random>
#include <thread>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace abode::allocator {
namespace {

struct Proposal {
  v1::Command command;
  CommandLog::Done done;
};

// One log entry proposed by this node and waiting to be committed.
struct InFlight {
  struct raft_apply req{};
  class RaftNode::Loop* owner = nullptr;
  uint64_t proposal_id = 0;
  std::vector<CommandLog::Done> dones;
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

// Log entry framing: an 8-byte little-endian payload length, the serialized CommandBatch, zero padding to
// a multiple of 8 bytes. c-raft's segment writer requires 8-byte multiples; the length makes the padding
// unambiguous. The CommandBatch carries its own format version.
raft_buffer EncodeEntry(const v1::CommandBatch& batch) {
  const size_t payload = batch.ByteSizeLong();
  raft_buffer buf;
  buf.len = 8 + ((payload + 7) & ~size_t{7});
  buf.base = raft_calloc(1, buf.len);
  auto* p = static_cast<uint8_t*>(buf.base);
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>((uint64_t{payload} >> (8 * i)) & 0xff);
  batch.SerializeWithCachedSizesToArray(p + 8);
  return buf;
}

absl::Status DecodeEntry(const raft_buffer& buf, v1::CommandBatch* batch) {
  if (buf.len < 8) return absl::DataLossError("entry shorter than its header");
  const auto* p = static_cast<const uint8_t*>(buf.base);
  uint64_t payload = 0;
  for (int i = 0; i < 8; ++i) payload |= uint64_t{p[i]} << (8 * i);
  if (payload > buf.len - 8) return absl::DataLossError("entry length exceeds the entry");
  if (!batch->ParseFromArray(p + 8, static_cast<int>(payload))) return absl::DataLossError("unreadable command batch");
  return absl::OkStatus();
}

// Snapshot framing: the magic "ABODERIX", the 8-byte little-endian raft index the snapshot was taken at,
// then the state snapshot (storage/snapshot.h). The index lets a replica whose database is already past the
// snapshot skip restoring it. A buffer without the frame is a bare state snapshot (index unknown).
constexpr char kSnapshotFrameMagic[8] = {'A', 'B', 'O', 'D', 'E', 'R', 'I', 'X'};

raft_buffer FrameSnapshot(uint64_t raft_index, const std::string& state) {
  raft_buffer buf;
  buf.len = 16 + state.size();
  buf.base = raft_malloc(buf.len);
  auto* p = static_cast<uint8_t*>(buf.base);
  std::memcpy(p, kSnapshotFrameMagic, 8);
  for (int i = 0; i < 8; ++i) p[8 + i] = static_cast<uint8_t>((raft_index >> (8 * i)) & 0xff);
  std::memcpy(p + 16, state.data(), state.size());
  return buf;
}

struct SnapshotFrame {
  uint64_t raft_index = 0;
  absl::string_view state;
};

SnapshotFrame UnframeSnapshot(const raft_buffer& buf) {
  const auto* p = static_cast<const char*>(buf.base);
  if (buf.len < 16 || std::memcmp(p, kSnapshotFrameMagic, 8) != 0) return {0, absl::string_view(p, buf.len)};
  uint64_t index = 0;
  for (int i = 0; i < 8; ++i) index |= uint64_t{static_cast<uint8_t>(p[8 + i])} << (8 * i);
  return {index, absl::string_view(p + 16, buf.len - 16)};
}

absl::Status RaftError(int rv, absl::string_view what, const char* detail) {
  return absl::UnavailableError(absl::StrCat(what, ": ", raft_strerror(rv), detail && *detail ? ": " : "",
                                             detail ? detail : ""));
}

}  // namespace

class RaftNode::Loop {
 public:
  explicit Loop(RaftNodeOptions options) : options_(std::move(options)) {
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

  absl::Status Start() {
    if (options_.clock == nullptr) return absl::InvalidArgumentError("clock: required");
    if (options_.id == 0) return absl::InvalidArgumentError("id: must be greater than 0");
    if (absl::Status s = MakeDir(options_.data_dir); !s.ok()) return s;
    if (absl::Status s = lock_.Acquire(options_.data_dir); !s.ok()) return s;
    const std::string raft_dir = options_.data_dir + "/raft";
    if (absl::Status s = MakeDir(raft_dir); !s.ok()) return s;

    storage::StateMachineOptions sm_options;
    sm_options.db_path = options_.data_dir + "/state.db";
    // A database is only as good as the log it was built from: reuse it only next to a raft log that has
    // been started before (a wiped or new raft dir rebuilds it from scratch).
    sm_options.reuse_existing = ::access((raft_dir + "/metadata1").c_str(), F_OK) == 0 ||
                                ::access((raft_dir + "/metadata2").c_str(), F_OK) == 0;
    auto sm = storage::StateMachine::Open(sm_options);
    if (!sm.ok()) return sm.status();
    sm_ = std::move(*sm);

    std::promise<absl::Status> ready;
    ready_ = &ready;
    auto ready_future = ready.get_future();
    thread_ = std::thread([this, raft_dir] { Run(raft_dir); });
    absl::Status s = ready_future.get();
    return s;
  }

  void Propose(v1::Command command, Done done) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!stopping_ && running_) {
        queue_.push_back(Proposal{std::move(command), std::move(done)});
        if (queue_.size() == 1) uv_async_send(&wakeup_);
        return;
      }
    }
    std::move(done)(absl::UnavailableError("allocator is shutting down"));
  }

  storage::StateMachine& state_machine() { return *sm_; }
  const RaftNodeOptions& options() const { return options_; }

  RaftNode::Stats stats() {
    RaftNode::Stats s;
    s.entries = entries_.load();
    s.commands = commands_.load();
    s.applied_index = applied_index_.load();
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
    uv_timer_start(&housekeeping_, &Loop::OnHousekeeping, options_.housekeeping_interval_ms,
                   options_.housekeeping_interval_ms);
    uv_run(&loop_, UV_RUN_DEFAULT);
    // Whatever raft did not call back about was not committed as far as its callers can know.
    for (auto& [id, f] : inflight_) {
      for (auto& d : f->dones) std::move(d)(absl::UnavailableError("allocator shut down before commit"));
      delete f;
    }
    inflight_.clear();
    uv_loop_close(&loop_);
  }

  absl::Status InitRaft(const std::string& raft_dir) {
    fsm_.version = 1;
    fsm_.data = this;
    fsm_.apply = &Loop::FsmApply;
    fsm_.snapshot = &Loop::FsmSnapshot;
    fsm_.restore = &Loop::FsmRestore;

    int rv = raft_uv_tcp_init(&transport_, &loop_);
    if (rv != 0) return RaftError(rv, "raft transport", transport_.errmsg);
    transport_initialised_ = true;
    rv = raft_uv_init(&io_, &loop_, raft_dir.c_str(), &transport_);
    if (rv != 0) return RaftError(rv, absl::StrCat("raft storage in ", raft_dir), io_.errmsg);
    rv = raft_init(&raft_, &io_, &fsm_, options_.id, options_.raft_address.c_str());
    if (rv != 0) {
      raft_uv_close(&io_);
      return RaftError(rv, "raft init", raft_.errmsg);
    }
    raft_initialised_ = true;
    raft_.data = this;
    raft_set_election_timeout(&raft_, options_.election_timeout_ms);
    raft_set_heartbeat_timeout(&raft_, options_.heartbeat_timeout_ms);
    raft_set_snapshot_threshold(&raft_, options_.snapshot_threshold);
    raft_set_snapshot_trailing(&raft_, options_.snapshot_trailing);
    raft_set_pre_vote(&raft_, true);

    // Bootstrapping is refused (RAFT_CANTBOOTSTRAP) once the log holds anything: a restarted member never
    // starts a second cluster.
    struct raft_configuration conf;
    raft_configuration_init(&conf);
    raft_configuration_add(&conf, options_.id, options_.raft_address.c_str(), RAFT_VOTER);
    rv = raft_bootstrap(&raft_, &conf);
    raft_configuration_close(&conf);
    if (rv != 0 && rv != RAFT_CANTBOOTSTRAP) return CloseWithError(RaftError(rv, "raft bootstrap", raft_.errmsg));
    if (rv == 0) spdlog::info("bootstrapped a new single-member cluster in {}", raft_dir);

    rv = raft_start(&raft_);
    if (rv != 0) return CloseWithError(RaftError(rv, "raft start", raft_.errmsg));
    if (raft_state(&raft_) != RAFT_LEADER) {
      return CloseWithError(absl::UnavailableError("raft: this single voter did not become leader"));
    }
    // Everything already in the log is applied once a barrier after it is.
    barrier_.data = this;
    rv = raft_barrier(&raft_, &barrier_, &Loop::OnBarrier);
    if (rv != 0) return CloseWithError(RaftError(rv, "raft barrier", raft_.errmsg));
    return absl::OkStatus();
  }

  // The caller (Run) closes raft and the loop handles.
  static absl::Status CloseWithError(absl::Status s) { return s; }

  static void OnBarrier(struct raft_barrier* req, int status) {
    auto* self = static_cast<Loop*>(req->data);
    if (status != 0) {
      self->SetReady(RaftError(status, "raft barrier", nullptr));
      return;
    }
    spdlog::info("state restored: applied index {}, revision {}", raft_last_applied(&self->raft_),
                 self->sm_->revision());
    self->SetReady(absl::OkStatus());
  }

  static void OnWakeup(uv_async_t* handle) {
    auto* self = static_cast<Loop*>(handle->data);
    std::vector<Proposal> batch;
    bool stopping;
    {
      std::lock_guard<std::mutex> lock(self->mu_);
      batch.swap(self->queue_);
      stopping = self->stopping_;
      if (stopping) self->running_ = false;
    }
    if (stopping) {
      for (auto& p : batch) std::move(p.done)(absl::UnavailableError("allocator is shutting down"));
      self->BeginClose();
      return;
    }
    self->ProposeAll(batch);
  }

  void ProposeAll(std::vector<Proposal>& proposals) {
    if (proposals.empty()) return;
    if (raft_state(&raft_) != RAFT_LEADER) {
      for (auto& p : proposals) std::move(p.done)(absl::UnavailableError("this replica is not the raft leader"));
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
      commands_.fetch_add(end - start, std::memory_order_relaxed);
    }
  }

  static void OnApplied(struct raft_apply* req, int status, void* /*result*/) {
    auto* f = static_cast<InFlight*>(req->data);
    f->owner->inflight_.erase(f->proposal_id);
    for (size_t i = 0; i < f->dones.size(); ++i) {
      if (status != 0) {
        std::move(f->dones[i])(absl::UnavailableError(absl::StrCat("not committed: ", raft_strerror(status))));
      } else if (!f->applied || i >= f->outcomes.size()) {
        std::move(f->dones[i])(absl::InternalError("committed but its outcome was lost"));
      } else {
        std::move(f->dones[i])(std::move(f->outcomes[i]));
      }
    }
    delete f;
  }

  static int FsmApply(raft_fsm* fsm, const raft_buffer* buf, void** result) {
    auto* self = static_cast<Loop*>(fsm->data);
    *result = nullptr;
    v1::CommandBatch batch;
    if (absl::Status s = DecodeEntry(*buf, &batch); !s.ok()) {
      spdlog::critical("refusing to apply raft entry: {}", s.ToString());
      return RAFT_MALFORMED;
    }
    const uint64_t index = raft_last_applied(&self->raft_) + 1;
    if (index <= self->sm_->raft_index()) {
      // Replayed at start-up: the reopened database already holds this entry.
      self->applied_index_.store(index, std::memory_order_relaxed);
      return 0;
    }
    auto outcomes = self->sm_->Apply(batch, index);
    if (!outcomes.ok()) {
      // Going on would let this replica diverge from the others. Stop; a restart rebuilds the state from
      // the log, and an entry from a newer release needs this replica upgraded.
      spdlog::critical("cannot apply raft entry: {}", outcomes.status().ToString());
      std::abort();
    }
    self->applied_index_.store(index, std::memory_order_relaxed);
    self->revision_.store(self->sm_->revision(), std::memory_order_relaxed);
    auto it = self->inflight_.find(batch.proposal_id());
    if (it != self->inflight_.end()) {
      it->second->outcomes = std::move(*outcomes);
      it->second->applied = true;
    }
    return 0;
  }

  static int FsmSnapshot(raft_fsm* fsm, raft_buffer* bufs[], unsigned* n_bufs) {
    auto* self = static_cast<Loop*>(fsm->data);
    auto snap = self->sm_->Snapshot();
    if (!snap.ok()) {
      spdlog::error("snapshot failed: {}", snap.status().ToString());
      return RAFT_IOERR;
    }
    auto* out = static_cast<raft_buffer*>(raft_malloc(sizeof(raft_buffer)));
    *out = FrameSnapshot(raft_last_applied(&self->raft_), *snap);
    *bufs = out;
    *n_bufs = 1;
    spdlog::info("snapshot taken at revision {} ({} bytes)", self->sm_->revision(), out->len);
    return 0;
  }

  static int FsmRestore(raft_fsm* fsm, raft_buffer* buf) {
    auto* self = static_cast<Loop*>(fsm->data);
    const auto started = std::chrono::steady_clock::now();
    const SnapshotFrame frame = UnframeSnapshot(*buf);
    if (frame.raft_index != 0 && frame.raft_index <= self->sm_->raft_index()) {
      // Start-up with a reopened database that is already past this snapshot.
      spdlog::info("state.db already reflects raft index {} (snapshot at {}): not restoring",
                   self->sm_->raft_index(), frame.raft_index);
      raft_free(buf->base);
      self->revision_.store(self->sm_->revision(), std::memory_order_relaxed);
      return 0;
    }
    absl::Status s = self->sm_->Restore(frame.state, frame.raft_index);
    spdlog::info("snapshot of {} bytes restored in {} ms", buf->len,
                 std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count());
    if (!s.ok()) {
      spdlog::error("snapshot restore failed: {}", s.ToString());
      return RAFT_MALFORMED;
    }
    raft_free(buf->base);
    self->revision_.store(self->sm_->revision(), std::memory_order_relaxed);
    return 0;
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
      p[0].done = [](storage::CommandOutcome) {};
      ProposeAll(p);
    }
  }

  void BeginClose() {
    uv_timer_stop(&housekeeping_);
    if (raft_initialised_) {
      raft_close(&raft_, &Loop::OnRaftClosed);
    } else {
      if (transport_initialised_) raft_uv_tcp_close(&transport_);
      transport_initialised_ = false;
      CloseHandles();
    }
  }

  static void OnRaftClosed(struct raft* r) {
    auto* self = static_cast<Loop*>(r->data);
    raft_uv_close(&self->io_);
    raft_uv_tcp_close(&self->transport_);
    self->transport_initialised_ = false;
    self->raft_initialised_ = false;
    self->CloseHandles();
  }

  void CloseHandles() {
    uv_close(reinterpret_cast<uv_handle_t*>(&wakeup_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&housekeeping_), nullptr);
  }

  RaftNodeOptions options_;
  DirLock lock_;
  std::unique_ptr<storage::StateMachine> sm_;
  std::thread thread_;
  std::promise<absl::Status>* ready_ = nullptr;

  std::mutex mu_;
  std::vector<Proposal> queue_;  // guarded by mu_
  bool stopping_ = false;        // guarded by mu_
  bool running_ = false;         // guarded by mu_

  // Loop-thread state.
  uv_loop_t loop_{};
  uv_async_t wakeup_{};
  uv_timer_t housekeeping_{};
  raft_uv_transport transport_{};
  raft_io io_{};
  raft_fsm fsm_{};
  struct raft raft_{};
  struct raft_barrier barrier_{};
  bool raft_initialised_ = false;
  bool transport_initialised_ = false;
  absl::flat_hash_map<uint64_t, InFlight*> inflight_;
  uint64_t proposal_base_ = 0;
  uint64_t proposal_seq_ = 0;
  bool expire_pending_ = false;
  int64_t last_prune_ms_ = 0;

  std::atomic<uint64_t> entries_{0};
  std::atomic<uint64_t> commands_{0};
  std::atomic<uint64_t> applied_index_{0};
  std::atomic<uint64_t> revision_{0};
};

RaftNode::RaftNode(std::unique_ptr<Loop> loop) : loop_(std::move(loop)) {}
RaftNode::~RaftNode() {
  reader_.reset();
  loop_.reset();
}

absl::StatusOr<std::unique_ptr<RaftNode>> RaftNode::Start(const RaftNodeOptions& options) {
  auto loop = std::make_unique<Loop>(options);
  if (absl::Status s = loop->Start(); !s.ok()) return s;
  auto reader = storage::StateReader::Open(options.data_dir + "/state.db");
  if (!reader.ok()) return reader.status();
  std::unique_ptr<RaftNode> node(new RaftNode(std::move(loop)));
  node->reader_ = std::move(*reader);
  return node;
}

void RaftNode::Propose(v1::Command command, Done done) { loop_->Propose(std::move(command), std::move(done)); }

RaftNode::Stats RaftNode::stats() { return loop_->stats(); }

}  // namespace abode::allocator

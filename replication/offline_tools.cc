#include "replication/offline_tools.h"

#include <uv.h>

// c-raft's headers carry no extern "C" of their own.
extern "C" {
#include <raft.h>
#include <raft/uv.h>
}

#include "absl/strings/str_cat.h"
#include "replication/data_dir.h"
#include "replication/raft_error.h"

namespace abode::replication {
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

}  // namespace abode::replication

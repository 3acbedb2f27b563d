#include "replication/offline_tools.h"

#include <uv.h>

// c-raft's headers carry no extern "C" of their own.
extern "C" {
#include <raft.h>
#include <raft/uv.h>
}

#include "absl/strings/str_cat.h"
#include "replication/data_dir.h"
#include "replication/raft_codec.h"
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

  // An existing log (locked here: refused while the member runs), or with `new_log` a pristine one whose
  // lock the caller holds.
  absl::Status Open(const std::string& data_dir, absl::string_view what, bool new_log = false) {
    if (RaftLogIsPristine(data_dir) != new_log) {
      return absl::FailedPreconditionError(
          absl::StrCat(what, ": ", data_dir, new_log ? " already holds a raft log" : " holds no raft log"));
    }
    if (!new_log) {
      if (absl::Status s = lock_.Acquire(data_dir); !s.ok()) return s;
    }
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
  // The caller initialised the storage itself: close it at the end.
  void MarkOpen() { io_open_ = true; }

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

// Frees what raft_io.load handed out.
void FreeLoaded(struct raft_snapshot* snapshot, struct raft_entry* entries, size_t n) {
  if (snapshot != nullptr) {
    raft_configuration_close(&snapshot->configuration);
    for (unsigned i = 0; i < snapshot->n_bufs; ++i) raft_free(snapshot->bufs[i].base);
    raft_free(snapshot->bufs);
    raft_free(snapshot);
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
}

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
  }
  if (n > 0) {
    state.last_index = start_index + n - 1;
    state.last_term = entries[n - 1].term;
  }
  FreeLoaded(snapshot, entries, n);
  return state;
}

namespace {

// Runs `change` on a raft instance over the offline storage (synchronous disk I/O), then closes it.
template <typename Change>
absl::Status WithOfflineRaft(OfflineRaftStorage& storage, uint64_t id, const std::vector<Member>& members,
                             absl::string_view what, Change change) {
  const Member* self = FindMember(members, id);
  if (self == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": this member (id ", id, ") must be in the new configuration"));
  }
  struct raft r {};
  struct raft_fsm fsm {};  // never called: nothing is applied
  fsm.version = 1;
  if (const int rv = raft_init(&r, storage.io(), &fsm, id, ConfigurationAddress(*self).c_str()); rv != 0) {
    return RaftError(rv, absl::StrCat(what, ": raft init"), r.errmsg);
  }
  struct raft_configuration conf;
  raft_configuration_init(&conf);
  for (const Member& m : members) raft_configuration_add(&conf, m.id, ConfigurationAddress(m).c_str(), RAFT_VOTER);
  const int rv = change(&r, &conf);
  raft_configuration_close(&conf);
  absl::Status result = rv == 0 ? absl::OkStatus() : RaftError(rv, what, r.errmsg);
  raft_close(&r, [](struct raft*) {});  // closes the storage's I/O too
  uv_run(storage.loop(), UV_RUN_DEFAULT);
  return result;
}

}  // namespace

absl::Status BootstrapFromSnapshot(const std::string& data_dir, uint64_t id, const std::vector<Member>& members,
                                   const std::string& state) {
  const Member* self = FindMember(members, id);
  if (self == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("bootstrap: this member (id ", id, ") must be in the configuration"));
  }
  OfflineRaftStorage storage;
  if (absl::Status s = storage.Open(data_dir, "bootstrap", /*new_log=*/true); !s.ok()) return s;
  struct raft_io* io = storage.io();
  if (const int rv = io->init(io, id, ConfigurationAddress(*self).c_str()); rv != 0) {
    return RaftError(rv, "bootstrap: raft storage", io->errmsg);
  }
  storage.MarkOpen();
  struct raft_configuration conf;
  raft_configuration_init(&conf);
  for (const Member& m : members) raft_configuration_add(&conf, m.id, ConfigurationAddress(m).c_str(), RAFT_VOTER);
  // As a follower installs a snapshot: the configuration entry (term 1, index 1) is written, the log truncated,
  // and a snapshot at that index put in its place, so the log starts after the state.
  absl::Status result = [&]() -> absl::Status {
    if (const int rv = io->bootstrap(io, &conf); rv != 0) return RaftError(rv, "bootstrap", io->errmsg);
    struct raft_buffer buf = FrameSnapshot(1, state);
    struct raft_snapshot snapshot {};
    snapshot.index = 1;
    snapshot.term = 1;
    snapshot.configuration = conf;
    snapshot.configuration_index = 1;
    snapshot.bufs = &buf;
    snapshot.n_bufs = 1;
    struct raft_io_snapshot_put req {};
    int status = -1;
    req.data = &status;
    const int rv = io->snapshot_put(io, 0, &req, &snapshot,
                                    [](struct raft_io_snapshot_put* r, int st) { *static_cast<int*>(r->data) = st; });
    if (rv == 0) {
      while (status < 0 && uv_run(storage.loop(), UV_RUN_ONCE) != 0) {
      }
    }
    raft_free(buf.base);
    if (rv != 0) return RaftError(rv, "bootstrap: snapshot", io->errmsg);
    if (status != 0) return RaftError(status < 0 ? RAFT_IOERR : status, "bootstrap: snapshot", io->errmsg);
    return absl::OkStatus();
  }();
  raft_configuration_close(&conf);
  return result;
}

absl::Status RecoverConfiguration(const std::string& data_dir, uint64_t id, const std::vector<Member>& members) {
  if (FindMember(members, id) == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("recover: this member (id ", id, ") must be in the new configuration"));
  }
  OfflineRaftStorage storage;
  if (absl::Status s = storage.Open(data_dir, "recover"); !s.ok()) return s;
  return WithOfflineRaft(storage, id, members, "recover",
                         [](struct raft* r, struct raft_configuration* conf) { return raft_recover(r, conf); });
}

}  // namespace abode::replication

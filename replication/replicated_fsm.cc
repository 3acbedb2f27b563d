#include "replication/replicated_fsm.h"

#include <chrono>
#include <string>
#include <utility>

#include "google/protobuf/arena.h"
#include "replication/raft_codec.h"
#include "spdlog/spdlog.h"

namespace abode::replication {

ReplicatedFsm::ReplicatedFsm(StateMachine* sm, Observer* observer, bool asynchronous_snapshots)
    : sm_(sm), observer_(observer) {
  fsm_.version = 3;
  fsm_.data = this;
  fsm_.apply = &ReplicatedFsm::Apply;
  fsm_.snapshot = &ReplicatedFsm::Snapshot;
  fsm_.restore = &ReplicatedFsm::Restore;
  fsm_.snapshot_finalize = &ReplicatedFsm::SnapshotFinalize;
  fsm_.snapshot_async = asynchronous_snapshots ? &ReplicatedFsm::SnapshotAsync : nullptr;
}

int ReplicatedFsm::Apply(raft_fsm* fsm, const raft_buffer* buf, void** result) {
  auto* self = static_cast<ReplicatedFsm*>(fsm->data);
  *result = nullptr;
  if (self->pacer_) {
    self->pacer_->OnEntry(buf->len);
    self->Repace();
  }
  // The decoded batch lives only for this call: one arena instead of an allocation per field and command.
  google::protobuf::Arena arena;
  v1::CommandBatch& batch = *google::protobuf::Arena::CreateMessage<v1::CommandBatch>(&arena);
  if (absl::Status s = DecodeEntry(*buf, &batch); !s.ok()) {
    spdlog::critical("refusing to apply raft entry: {}", s.ToString());
    ++self->stats_.refused_entries;
    return RAFT_MALFORMED;
  }
  const uint64_t index = raft_last_applied(self->raft_) + 1;
  if (index <= self->sm_->raft_index()) {
    // Replayed at start-up: the reopened database already holds this entry.
    self->observer_->OnEntryApplied(index, batch.proposal_id(), /*replayed=*/true);
    return 0;
  }
  const uint64_t proposal_id = batch.proposal_id();
  auto outcomes =
      self->sm_->Apply(batch, index, [self, index, proposal_id](const std::vector<CommandOutcome>& decided) {
        self->observer_->OnOutcomesDecided(index, proposal_id, decided);
      });
  if (!outcomes.ok()) {
    self->observer_->OnApplyFailed(index, outcomes.status());
    return RAFT_MALFORMED;
  }
  self->observer_->OnEntryApplied(index, batch.proposal_id(), /*replayed=*/false);
  if (self->observer_->AwaitsOutcomes(batch.proposal_id())) *result = new EntryOutcomes(std::move(*outcomes));
  return 0;
}

int ReplicatedFsm::Snapshot(raft_fsm* fsm, raft_buffer* bufs[], unsigned* n_bufs) {
  auto* self = static_cast<ReplicatedFsm*>(fsm->data);
  *bufs = nullptr;
  *n_bufs = 0;
  auto pinned = self->sm_->Pin();
  if (!pinned.ok()) {
    spdlog::error("snapshot: cannot pin the state: {}", pinned.status().ToString());
    return RAFT_IOERR;
  }
  self->pin_ = std::move(*pinned);
  self->pin_index_ = raft_last_applied(self->raft_);
  self->stats_.last_snapshot_index = self->pin_index_;
  self->pin_revision_ = self->sm_->revision();
  if (self->fsm_.snapshot_async != nullptr) return 0;
  return SnapshotAsync(fsm, bufs, n_bufs);  // no worker: serialise here
}

int ReplicatedFsm::SnapshotAsync(raft_fsm* fsm, raft_buffer* bufs[], unsigned* n_bufs) {
  auto* self = static_cast<ReplicatedFsm*>(fsm->data);
  const auto started = std::chrono::steady_clock::now();
  auto snap = self->pin_->Serialize();
  if (!snap.ok()) {
    spdlog::error("snapshot failed: {}", snap.status().ToString());
    return RAFT_IOERR;
  }
  auto* out = static_cast<raft_buffer*>(raft_malloc(sizeof(raft_buffer)));
  *out = FrameSnapshot(self->pin_index_, *snap);
  *bufs = out;
  *n_bufs = 1;
  ++self->stats_.snapshots;
  spdlog::info("snapshot taken at raft index {}, revision {} ({} bytes in {} ms)", self->pin_index_,
               self->pin_revision_, out->len,
               std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count());
  return 0;
}

void ReplicatedFsm::Repace() {
  const unsigned threshold = pacer_->threshold();
  if (threshold == paced_threshold_ || raft_ == nullptr) return;
  raft_set_snapshot_threshold(raft_, threshold);
  paced_threshold_ = threshold;
}

int ReplicatedFsm::SnapshotFinalize(raft_fsm* fsm, raft_buffer* bufs[], unsigned* n_bufs) {
  auto* self = static_cast<ReplicatedFsm*>(fsm->data);
  if (*bufs != nullptr && self->pacer_) {
    size_t bytes = 0;
    for (unsigned i = 0; i < *n_bufs; ++i) bytes += (*bufs)[i].len;
    self->pacer_->OnSnapshot(bytes);
    self->Repace();
    spdlog::info("next snapshot after {} log entries (entries average {:.0f} bytes)", self->paced_threshold_,
                 self->pacer_->mean_entry_bytes());
  }
  if (*bufs != nullptr) {
    for (unsigned i = 0; i < *n_bufs; ++i) raft_free((*bufs)[i].base);
    raft_free(*bufs);
  }
  *bufs = nullptr;
  *n_bufs = 0;
  self->pin_.reset();
  return 0;
}

int ReplicatedFsm::Restore(raft_fsm* fsm, raft_buffer* buf) {
  auto* self = static_cast<ReplicatedFsm*>(fsm->data);
  const auto started = std::chrono::steady_clock::now();
  const SnapshotFrame frame = UnframeSnapshot(*buf);
  if (self->pacer_) {
    self->pacer_->OnSnapshot(buf->len);
    self->Repace();
  }
  if (frame.raft_index != 0 && frame.raft_index <= self->sm_->raft_index()) {
    // Start-up with a reopened database that is already past this snapshot.
    spdlog::info("state.db already reflects raft index {} (snapshot at {}): not restoring", self->sm_->raft_index(),
                 frame.raft_index);
    raft_free(buf->base);
    self->observer_->OnRestored(frame.raft_index, /*installed=*/false);
    return 0;
  }
  if (absl::Status s = self->sm_->Restore(frame.state, frame.raft_index); !s.ok()) {
    spdlog::error("snapshot restore failed: {}", s.ToString());
    return RAFT_MALFORMED;
  }
  spdlog::info("snapshot of {} bytes restored in {} ms", buf->len,
               std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count());
  raft_free(buf->base);
  ++self->stats_.restores;
  self->observer_->OnRestored(frame.raft_index, /*installed=*/true);
  spdlog::info("installed a snapshot at revision {}", self->sm_->revision());
  return 0;
}

}  // namespace abode::replication

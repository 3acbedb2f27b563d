#include "allocator-service/watch_hub.h"

#include <utility>

#include "storage/thread_name.h"

namespace abode::allocator {

WatchHub::WatchHub(WatchHubOptions options)
    : options_(options),
      view_(std::make_shared<domain::NodeStateView>()),
      applied_view_(view_),
      thread_([this] {
        storage::NameThisThread("abode-watch");
        FanOut();
      }) {}

WatchHub::~WatchHub() {
  {
    absl::MutexLock lock(&queue_mu_);
    stopping_ = true;
  }
  queue_cv_.SignalAll();
  thread_.join();
}

void WatchHub::Publish(domain::NodeStateUpdate update) {
  if (update.view) {
    absl::MutexLock lock(&view_mu_);
    view_ = update.view;
  }
  const bool revision_only = update.changes.empty() && !update.view;
  {
    absl::MutexLock lock(&queue_mu_);
    if (revision_only && queue_.empty() && applied_ == published_) {
      // Nothing is queued or being fanned out, and a bare revision wakes no watcher: record it here instead
      // of waking the fan-out thread for every entry that touched no node.
      absl::MutexLock state(&mu_);
      if (update.revision > revision_) revision_ = update.revision;
      return;
    }
    queue_.push_back(std::move(update));
    ++published_;
  }
  queue_cv_.Signal();
}

std::shared_ptr<const domain::NodeStateView> WatchHub::view() {
  absl::MutexLock lock(&view_mu_);
  return view_;
}

uint64_t WatchHub::revision() {
  absl::MutexLock lock(&mu_);
  return revision_;
}

std::vector<v1::Assignment> WatchHub::Assignments(const std::string& node) {
  absl::MutexLock lock(&mu_);
  std::vector<v1::Assignment> out;
  auto it = nodes_.find(node);
  if (it == nodes_.end()) return out;
  for (const auto& [id, a] : it->second.assignments) out.push_back(a);
  return out;
}

void WatchHub::Flush() {
  absl::MutexLock lock(&queue_mu_);
  const uint64_t target = published_;
  while (applied_ < target && !stopping_) queue_cv_.Wait(&queue_mu_);
}

void WatchHub::FanOut() {
  for (;;) {
    std::deque<domain::NodeStateUpdate> work;
    {
      absl::MutexLock lock(&queue_mu_);
      while (!stopping_ && queue_.empty()) queue_cv_.Wait(&queue_mu_);
      if (stopping_ && queue_.empty()) return;
      work.swap(queue_);
    }
    std::vector<Watcher*> wake;
    {
      absl::MutexLock lock(&mu_);
      for (auto& u : work) Apply(u, &wake);
    }
    {
      absl::MutexLock lock(&notify_mu_);
      std::sort(wake.begin(), wake.end());
      wake.erase(std::unique(wake.begin(), wake.end()), wake.end());
      // A watcher unsubscribed since is not in `wake` any more: Unsubscribe removes it under notify_mu_.
      for (Watcher* w : wake) w->Notify();
    }
    {
      absl::MutexLock lock(&queue_mu_);
      applied_ += work.size();
    }
    queue_cv_.SignalAll();
  }
}

bool WatchHub::Ready(const std::string& node) {
  absl::MutexLock lock(&mu_);
  auto it = applied_view_->nodes.find(node);
  return it != applied_view_->nodes.end() && it->second->ready();
}

void WatchHub::Apply(domain::NodeStateUpdate& update, std::vector<Watcher*>* wake) {
  if (update.revision > revision_) revision_ = update.revision;
  if (update.view) {
    auto ready = [](const domain::NodeStateView& view, const std::string& node) {
      auto it = view.nodes.find(node);
      return it != view.nodes.end() && it->second->ready();
    };
    for (const auto& [node, entry] : nodes_) {
      if (!entry.watchers.empty() && ready(*applied_view_, node) != ready(*update.view, node)) {
        wake->insert(wake->end(), entry.watchers.begin(), entry.watchers.end());
      }
    }
    applied_view_ = update.view;
  }
  if (update.changes.empty()) return;
  Batch batch;
  batch.revision = revision_;
  batch.changes = update.changes.size();
  for (v1::AssignmentChange& c : update.changes) {
    NodeEntry& entry = nodes_[c.node()];
    if (c.has_assignment()) {
      entry.assignments[c.id()] = c.assignment();
    } else {
      entry.assignments.erase(c.id());
    }
    if (entry.last_change != revision_) {
      entry.last_change = revision_;
      wake->insert(wake->end(), entry.watchers.begin(), entry.watchers.end());
    }
    std::string node = c.node();
    batch.by_node[node].push_back(std::move(c));
  }
  retained_changes_ += batch.changes;
  batches_.push_back(std::move(batch));
  while (!batches_.empty() &&
         (batches_.size() > options_.retained_batches || retained_changes_ > options_.retained_changes)) {
    retained_changes_ -= batches_.front().changes;
    retained_after_ = batches_.front().revision;
    batches_.pop_front();
  }
}

void WatchHub::Subscribe(const std::string& node, Watcher* watcher) {
  absl::MutexLock lock(&mu_);
  nodes_[node].watchers.insert(watcher);
}

void WatchHub::Unsubscribe(const std::string& node, Watcher* watcher) {
  absl::MutexLock notify(&notify_mu_);
  absl::MutexLock lock(&mu_);
  auto it = nodes_.find(node);
  if (it == nodes_.end()) return;
  it->second.watchers.erase(watcher);
  if (it->second.watchers.empty() && it->second.assignments.empty() && it->second.last_change == 0) nodes_.erase(it);
}

v1::WatchAssignmentsResponse WatchHub::SnapshotOf(const NodeEntry* entry) {
  v1::WatchAssignmentsResponse out;
  out.set_revision(revision_);
  out.set_snapshot(true);
  if (entry != nullptr) {
    for (const auto& [id, a] : entry->assignments) *out.add_assignments() = a;
  }
  return out;
}

std::optional<v1::WatchAssignmentsResponse> WatchHub::Next(const std::string& node, uint64_t* after, bool first) {
  absl::MutexLock lock(&mu_);
  auto it = nodes_.find(node);
  const NodeEntry* entry = it == nodes_.end() ? nullptr : &it->second;
  const uint64_t last_change = entry ? entry->last_change : 0;
  const bool resumable = *after > 0 && *after <= revision_ && (*after >= retained_after_ || last_change <= *after);
  if (!resumable) {
    if (!first && *after >= revision_) return std::nullopt;
    *after = revision_;
    return SnapshotOf(entry);
  }
  if (last_change <= *after) {
    *after = revision_;
    if (!first) return std::nullopt;
    v1::WatchAssignmentsResponse synced;  // nothing missed: an empty delta at the current revision
    synced.set_revision(revision_);
    return synced;
  }
  // Coalesce the retained changes after *after, in order: the last word on each id wins.
  std::map<std::string, const v1::AssignmentChange*> latest;
  for (auto b = batches_.rbegin(); b != batches_.rend() && b->revision > *after; ++b) {
    auto n = b->by_node.find(node);
    if (n == b->by_node.end()) continue;
    for (auto c = n->second.rbegin(); c != n->second.rend(); ++c) latest.emplace(c->id(), &*c);
  }
  v1::WatchAssignmentsResponse out;
  out.set_revision(revision_);
  for (const auto& [id, c] : latest) {
    if (c->has_assignment()) {
      *out.add_assignments() = c->assignment();
    } else {
      out.add_removed(id);
    }
  }
  *after = revision_;
  return out;
}

}  // namespace abode::allocator

#include "kube/informer.h"

#include <utility>

namespace abode::kube {

std::string ObjectKey(const json& object) {
  const json meta = object.value("metadata", json::object());
  const std::string ns = meta.value("namespace", std::string());
  const std::string name = meta.value("name", std::string());
  return ns.empty() ? name : ns + "/" + name;
}

bool ResourceVersionLess(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return a.size() < b.size();
  return a < b;
}

namespace {

ObjectPtr MakeObject(json body) {
  // metadata.managedFields (server-side apply's field ownership) is often the largest part of an object and
  // nothing here reads it: the cache does not keep it.
  if (auto meta = body.find("metadata"); meta != body.end() && meta->is_object()) meta->erase("managedFields");
  auto o = std::make_shared<Object>();
  o->key = ObjectKey(body);
  const json meta = body.value("metadata", json::object());
  o->uid = meta.value("uid", std::string());
  o->resource_version = meta.value("resourceVersion", std::string());
  o->body = std::move(body);
  return o;
}

}  // namespace

Informer::Informer(KubeClient& client, std::string collection_path, std::string label_selector, Handler handler,
                   uint64_t seed, int watch_timeout_seconds)
    : client_(client),
      path_(std::move(collection_path)),
      selector_(std::move(label_selector)),
      handler_(std::move(handler)),
      backoff_(500, 30'000, seed),
      watch_timeout_seconds_(watch_timeout_seconds) {}

void Informer::Report(const ObjectPtr& before, const ObjectPtr& after) {
  if (handler_) handler_(before, after);
}

absl::StatusOr<std::string> Informer::Relist() {
  auto listed = client_.List(path_, selector_);
  {
    absl::MutexLock lock(&mu_);
    ++stats_.lists;
    if (!listed.ok()) ++stats_.errors;
  }
  if (!listed.ok()) return listed.status();
  std::map<std::string, ObjectPtr> fresh;
  for (json& item : listed->items) {
    ObjectPtr o = MakeObject(std::move(item));
    fresh[o->key] = o;
  }
  std::vector<std::pair<ObjectPtr, ObjectPtr>> changes;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [key, old] : objects_) {
      auto it = fresh.find(key);
      if (it == fresh.end()) {
        changes.emplace_back(old, nullptr);
      } else if (it->second->resource_version != old->resource_version) {
        changes.emplace_back(old, it->second);
      }
    }
    for (const auto& [key, now] : fresh) {
      if (!objects_.count(key)) changes.emplace_back(nullptr, now);
    }
    objects_ = std::move(fresh);
    synced_ = true;
    list_rv_ = listed->resource_version;
    seen_rv_ = listed->resource_version;
  }
  for (const auto& [before, after] : changes) Report(before, after);
  return listed->resource_version;
}

void Informer::Apply(const WatchEvent& event) {
  ObjectPtr now = MakeObject(event.object);
  ObjectPtr before;
  {
    absl::MutexLock lock(&mu_);
    ++stats_.watch_events;
    if (ResourceVersionLess(seen_rv_, now->resource_version)) seen_rv_ = now->resource_version;
    if (event.type == "BOOKMARK") return;  // only its resourceVersion matters
    auto it = objects_.find(now->key);
    if (it != objects_.end()) before = it->second;
    if (event.type == "DELETED") {
      if (it == objects_.end()) return;
      objects_.erase(it);
    } else {
      if (before && before->resource_version == now->resource_version) return;  // seen already
      objects_[now->key] = now;
    }
  }
  if (event.type == "DELETED") {
    Report(before, nullptr);
  } else {
    Report(before, now);
  }
}

void Informer::Run(const StopSignal& stop) {
  std::string rv;
  while (!stop.stopped()) {
    if (rv.empty()) {
      auto listed = Relist();
      if (!listed.ok()) {
        if (stop.Sleep(backoff_.NextMs())) return;
        continue;
      }
      rv = *listed;
    }
    auto resumed = client_.Watch(
        path_, selector_, rv,
        [&](const WatchEvent& ev) {
          Apply(ev);
          return !stop.stopped();
        },
        [&] { return stop.stopped(); }, watch_timeout_seconds_);
    if (resumed.ok()) {
      rv = *resumed;  // the server ended the stream (timeout): resume from the last version seen
      backoff_.Reset();
      continue;
    }
    {
      absl::MutexLock lock(&mu_);
      if (IsGone(resumed.status())) {
        ++stats_.gone;
      } else {
        ++stats_.errors;
      }
    }
    // 410: too old, list again at once. Anything else (a restarted server): resume after a wait; the resume
    // itself answers 410 if the version went away meanwhile.
    if (IsGone(resumed.status())) {
      rv.clear();
      continue;
    }
    if (stop.Sleep(backoff_.NextMs())) return;
  }
}

bool Informer::synced() const {
  absl::MutexLock lock(&mu_);
  return synced_;
}

ObjectPtr Informer::Get(const std::string& key) const {
  absl::MutexLock lock(&mu_);
  auto it = objects_.find(key);
  return it == objects_.end() ? nullptr : it->second;
}

std::vector<ObjectPtr> Informer::List() const {
  absl::MutexLock lock(&mu_);
  std::vector<ObjectPtr> out;
  out.reserve(objects_.size());
  for (const auto& [k, o] : objects_) out.push_back(o);
  return out;
}

size_t Informer::size() const {
  absl::MutexLock lock(&mu_);
  return objects_.size();
}

InformerStats Informer::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

std::string Informer::seen_resource_version() const {
  absl::MutexLock lock(&mu_);
  return seen_rv_;
}

std::string Informer::list_resource_version() const {
  absl::MutexLock lock(&mu_);
  return list_rv_;
}

}  // namespace abode::kube

#include "kube/event_recorder.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace abode::kube {
namespace {

// What makes two Events the same one (client-go's aggregation key, with the message).
std::string EventKey(const json& object, const std::string& type, const std::string& reason,
                     const std::string& message, const std::string& component) {
  const json meta = object.value("metadata", json::object());
  return absl::StrJoin({component, object.value("apiVersion", std::string()), object.value("kind", std::string()),
                        meta.value("namespace", std::string()), meta.value("name", std::string()),
                        meta.value("uid", std::string()), type, reason, message},
                       "\x1f");
}

}  // namespace

EventRecorder::EventRecorder(KubeClient& client, replication::Clock& clock, std::string component,
                             size_t max_entries)
    : client_(client), clock_(clock), component_(std::move(component)), max_entries_(max_entries) {}

absl::StatusOr<int64_t> EventRecorder::Record(const json& object, const std::string& type, const std::string& reason,
                                              const std::string& message) {
  const std::string key = EventKey(object, type, reason, message, component_);
  absl::MutexLock lock(&mu_);
  auto it = events_.find(key);
  if (it == events_.end()) return Create(key, object, type, reason, message);
  Recorded& r = it->second;
  recent_.splice(recent_.begin(), recent_, r.age);
  const json patch = {{"count", r.count + 1}, {"lastTimestamp", Rfc3339(clock_.NowUnixMs())}};
  auto patched = client_.MergePatch(r.path, patch);
  if (patched.status().code() == absl::StatusCode::kNotFound) {  // expired or deleted: start again
    recent_.erase(r.age);
    events_.erase(it);
    return Create(key, object, type, reason, message);
  }
  if (!patched.ok()) return patched.status();
  r.count = patched->value("count", r.count + 1);
  return r.count;
}

absl::StatusOr<int64_t> EventRecorder::Create(const std::string& key, const json& object, const std::string& type,
                                              const std::string& reason, const std::string& message) {
  auto created = client_.RecordEvent(object, type, reason, message, component_, clock_.NowUnixMs());
  if (!created.ok()) return created.status();
  const json meta = created->value("metadata", json::object());
  const std::string name = meta.value("name", std::string());
  if (name.empty()) return int64_t{1};  // nothing to count repeats on
  recent_.push_front(key);
  events_[key] = Recorded{ResourcePath("v1", "events", meta.value("namespace", std::string()), name), 1,
                          recent_.begin()};
  while (recent_.size() > max_entries_) {
    events_.erase(recent_.back());
    recent_.pop_back();
  }
  return int64_t{1};
}

}  // namespace abode::kube

// Kubernetes Events aggregated the way client-go's event correlator does it: the first occurrence of an
// event (same involved object, by kind, namespace, name and UID; same type, reason, message and component)
// creates a core/v1 Event with count 1; every repeat patches that Event's `count` and `lastTimestamp`
// instead of creating another. So a refusal repeated on every retry or resync is one Event whose count
// says how often, not a flood of Events.
//
// The recorder remembers the Events it made (the newest `max_entries` keys; older ones are forgotten and
// start a new Event when they recur). An Event deleted meanwhile (the API server's TTL, an hour by default)
// is created again with count 1. A new process starts with an empty memory, as client-go's does.
//
// Thread-safe: one Record at a time (Events are rare; the lock keeps a repeat from racing its create).
#ifndef ABODE_KUBE_EVENT_RECORDER_H_
#define ABODE_KUBE_EVENT_RECORDER_H_

#include <cstdint>
#include <list>
#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "kube/client.h"
#include "replication/clock.h"

namespace abode::kube {

class EventRecorder {
 public:
  // `client` and `clock` outlive this. `component` is the Event's source and reportingComponent.
  EventRecorder(KubeClient& client, replication::Clock& clock, std::string component, size_t max_entries = 4096);

  // Creates the Event, or counts a repeat on the existing one. The count of the Event after this call.
  absl::StatusOr<int64_t> Record(const json& object, const std::string& type, const std::string& reason,
                                 const std::string& message);

 private:
  struct Recorded {
    std::string path;  // /api/v1/namespaces/<ns>/events/<name>
    int64_t count = 0;
    std::list<std::string>::iterator age;  // in recent_
  };
  absl::StatusOr<int64_t> Create(const std::string& key, const json& object, const std::string& type,
                                 const std::string& reason, const std::string& message)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  KubeClient& client_;
  replication::Clock& clock_;
  const std::string component_;
  const size_t max_entries_;

  absl::Mutex mu_;
  std::map<std::string, Recorded> events_ ABSL_GUARDED_BY(mu_);
  std::list<std::string> recent_ ABSL_GUARDED_BY(mu_);  // keys, most recently recorded first
};

}  // namespace abode::kube

#endif  // ABODE_KUBE_EVENT_RECORDER_H_

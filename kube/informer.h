// A cache of one kind of object kept in step with the API server: list, then watch from the list's
// resourceVersion with bookmarks; on 410 Gone (or any broken watch that cannot resume) list again after a
// capped, jittered backoff. Objects are keyed by namespace/name and carry their UID and resourceVersion.
//
// A relist replaces the cache and reports only differences (an object whose resourceVersion is unchanged is
// no event), so an API server restart during a watch causes no duplicate action. A handler sees an object
// replaced under the same name (a StatefulSet pod re-created) as a change whose UID differs. Cached objects
// lack metadata.managedFields.
//
// Thread safety: Run on one thread; Get / Keys / synced from any thread. Handlers run on Run's thread with
// no lock held, after the cache changed.
#ifndef ABODE_KUBE_INFORMER_H_
#define ABODE_KUBE_INFORMER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "kube/backoff.h"
#include "kube/client.h"
#include "kube/stop_signal.h"

namespace abode::kube {

struct Object {
  std::string key;  // "namespace/name", or "name" when cluster-scoped
  std::string uid;
  std::string resource_version;
  json body;
};
using ObjectPtr = std::shared_ptr<const Object>;

// The informer's key for an object's metadata.
std::string ObjectKey(const json& object);

struct InformerStats {
  uint64_t lists = 0;
  uint64_t watch_events = 0;
  uint64_t gone = 0;     // 410 answers (relists they caused)
  uint64_t errors = 0;   // other failures
};

class Informer {
 public:
  // before == nullptr: added; after == nullptr: deleted.
  using Handler = std::function<void(const ObjectPtr& before, const ObjectPtr& after)>;

  Informer(KubeClient& client, std::string collection_path, std::string label_selector, Handler handler,
           uint64_t seed = 1, int watch_timeout_seconds = 300);

  // Lists and watches until `stop`; resumes by resourceVersion, relists on 410 Gone.
  void Run(const StopSignal& stop);
  // One list: replaces the cache and reports the differences. Returns the list's resourceVersion.
  absl::StatusOr<std::string> Relist();

  bool synced() const;
  ObjectPtr Get(const std::string& key) const;
  std::vector<ObjectPtr> List() const;
  size_t size() const;
  InformerStats stats() const;
  // The resourceVersion the last list started from: objects created later carry a larger one.
  std::string list_resource_version() const;
  // The newest resourceVersion the cache reflects (list, events, bookmarks): every change up to it is in.
  std::string seen_resource_version() const;

 private:
  // Applies one watch event; returns the changed pair for the handler.
  void Apply(const WatchEvent& event);
  void Report(const ObjectPtr& before, const ObjectPtr& after);

  KubeClient& client_;
  const std::string path_;
  const std::string selector_;
  const Handler handler_;
  Backoff backoff_;
  const int watch_timeout_seconds_;

  mutable absl::Mutex mu_;
  std::map<std::string, ObjectPtr> objects_ ABSL_GUARDED_BY(mu_);
  bool synced_ ABSL_GUARDED_BY(mu_) = false;
  std::string list_rv_ ABSL_GUARDED_BY(mu_);
  std::string seen_rv_ ABSL_GUARDED_BY(mu_);
  InformerStats stats_ ABSL_GUARDED_BY(mu_);
};

// Compares resourceVersions. They are opaque in general; the API server's are decimal etcd revisions, and
// only they are compared (equal length then lexical order is numeric order).
bool ResourceVersionLess(const std::string& a, const std::string& b);

}  // namespace abode::kube

#endif  // ABODE_KUBE_INFORMER_H_

// A narrow Kubernetes API client: JSON objects (nlohmann::json) by path, GET / LIST (every page) / WATCH /
// POST / PUT / PATCH (merge and server-side apply), Events. No Kubernetes client library for C++ is
// packaged for Debian 12, so abode carries this one over libcurl (curl_transport.h) and nlohmann-json.
//
// Errors are absl::Status from the API server's answer: 404 NOT_FOUND, 409 ABORTED (a conflict: stale
// resourceVersion) or ALREADY_EXISTS (a create), 410 OUT_OF_RANGE (a resourceVersion too old: relist; see
// IsGone), 401 UNAUTHENTICATED (after one retry with a re-read token), 403 PERMISSION_DENIED, 400/422
// INVALID_ARGUMENT, 429 and 5xx UNAVAILABLE; the message carries the server's Status message.
//
// Thread-safe: every call makes its own exchange.
#ifndef ABODE_KUBE_CLIENT_H_
#define ABODE_KUBE_CLIENT_H_

#include <functional>
#include <string>
#include "absl/strings/string_view.h"

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "kube/config.h"
#include "kube/transport.h"

namespace abode::kube {

using nlohmann::json;

// "/api/v1/namespaces/ns/pods/name/status" and the like. `group_version` is "v1" for the core group,
// "coordination.k8s.io/v1" otherwise; empty `ns` for cluster-scoped resources or all namespaces.
std::string ResourcePath(absl::string_view group_version, absl::string_view resource, absl::string_view ns = "",
                         absl::string_view name = "", absl::string_view subresource = "");
// "2026-12-06T01:02:03Z" (metav1.Time) of a Unix time in milliseconds.
std::string Rfc3339(int64_t unix_ms);
// Percent-encodes a query value.
std::string QueryEscape(absl::string_view value);

// The status of an API answer (OK for 2xx).
absl::Status StatusOfAnswer(int http_status, absl::string_view body, absl::string_view what);
// Whether a list or watch must start over from a fresh list (the server answered 410 Gone).
inline bool IsGone(const absl::Status& s) { return s.code() == absl::StatusCode::kOutOfRange; }

struct ListResult {
  json items = json::array();
  std::string resource_version;
};

struct WatchEvent {
  std::string type;  // ADDED, MODIFIED, DELETED, BOOKMARK
  json object;
};

class KubeClient {
 public:
  // Both outlive the client.
  KubeClient(Transport& transport, TokenSource& tokens) : transport_(transport), tokens_(tokens) {}

  absl::StatusOr<json> Get(const std::string& path);
  absl::StatusOr<json> Create(const std::string& collection_path, const json& object);
  // PUT: with metadata.resourceVersion set, a concurrent change makes it ABORTED.
  absl::StatusOr<json> Replace(const std::string& path, const json& object);
  absl::StatusOr<json> MergePatch(const std::string& path, const json& patch);
  // A strategic merge patch: lists with a merge key (a pod's status.conditions, by type) merge item by item,
  // so a patch of one condition leaves the others (the kubelet's) as they are.
  absl::StatusOr<json> StrategicMergePatch(const std::string& path, const json& patch);
  // Server-side apply under `field_manager`, taking fields from other managers when `force`.
  absl::StatusOr<json> Apply(const std::string& path, const json& object, const std::string& field_manager,
                             bool force = true);
  absl::Status Delete(const std::string& path);

  // Every page (`limit` per page, continue tokens) at one resourceVersion. `label_selector` may be empty.
  absl::StatusOr<ListResult> List(const std::string& collection_path, const std::string& label_selector = "",
                                  int limit = 500);
  // Watches from `resource_version` with bookmarks, for at most `timeout_seconds` (the server ends the stream
  // then). `on_event` gets each event and returns false to stop. Returns the last resourceVersion seen (the
  // one to resume from), OUT_OF_RANGE when it is too old (relist), or UNAVAILABLE on a broken stream.
  absl::StatusOr<std::string> Watch(const std::string& collection_path, const std::string& label_selector,
                                    const std::string& resource_version,
                                    const std::function<bool(const WatchEvent&)>& on_event,
                                    const std::function<bool()>& stopped, int timeout_seconds = 300);

  // Creates a core/v1 Event about `object` (its kind, namespace, name, uid from the object), by `component`,
  // with count 1; returns it as created. EventRecorder aggregates repeats.
  absl::StatusOr<json> RecordEvent(const json& object, const std::string& type, const std::string& reason,
                           const std::string& message, const std::string& component, int64_t now_unix_ms);

 private:
  absl::StatusOr<json> Call(const std::string& method, const std::string& path, const std::string& body,
                            const std::string& content_type, const std::string& what);

  Transport& transport_;
  TokenSource& tokens_;
};

}  // namespace abode::kube

#endif  // ABODE_KUBE_CLIENT_H_

#include "kube/client.h"

#include <cstdio>
#include <ctime>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace abode::kube {
std::string Rfc3339(int64_t unix_ms) {
  const std::time_t secs = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

namespace {

std::string ApiVersionPath(absl::string_view group_version) {
  return group_version.find('/') == absl::string_view::npos ? absl::StrCat("/api/", group_version)
                                                           : absl::StrCat("/apis/", group_version);
}

}  // namespace

std::string ResourcePath(absl::string_view group_version, absl::string_view resource, absl::string_view ns,
                         absl::string_view name, absl::string_view subresource) {
  std::string out = ApiVersionPath(group_version);
  if (!ns.empty()) absl::StrAppend(&out, "/namespaces/", ns);
  absl::StrAppend(&out, "/", resource);
  if (!name.empty()) absl::StrAppend(&out, "/", name);
  if (!subresource.empty()) absl::StrAppend(&out, "/", subresource);
  return out;
}

std::string QueryEscape(absl::string_view value) {
  std::string out;
  for (unsigned char c : value) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
        c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

absl::Status StatusOfAnswer(int http_status, absl::string_view body, absl::string_view what) {
  if (http_status >= 200 && http_status < 300) return absl::OkStatus();
  std::string message;
  std::string reason;
  json parsed = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_object()) {
    message = parsed.value("message", std::string());
    reason = parsed.value("reason", std::string());
  }
  if (message.empty()) message = std::string(body.substr(0, 200));
  const std::string text = absl::StrCat(what, ": HTTP ", http_status, ": ", message);
  switch (http_status) {
    case 400:
    case 422: return absl::InvalidArgumentError(text);
    case 401: return absl::UnauthenticatedError(text);
    case 403: return absl::PermissionDeniedError(text);
    case 404: return absl::NotFoundError(text);
    case 409: return reason == "AlreadyExists" ? absl::AlreadyExistsError(text) : absl::AbortedError(text);
    case 410: return absl::OutOfRangeError(text);
    case 429: return absl::UnavailableError(text);
    default: return http_status >= 500 ? absl::UnavailableError(text) : absl::InternalError(text);
  }
}

absl::StatusOr<json> KubeClient::Call(const std::string& method, const std::string& path, const std::string& body,
                                      const std::string& content_type, const std::string& what) {
  for (int attempt = 0;; ++attempt) {
    auto token = tokens_.Token();
    if (!token.ok()) return token.status();
    HttpRequest req{method, path, body, content_type, *token};
    auto answer = transport_.Send(req);
    if (!answer.ok()) return answer.status();
    if (answer->status == 401 && attempt == 0) {
      tokens_.Invalidate();  // rotated: read it again once
      continue;
    }
    if (absl::Status s = StatusOfAnswer(answer->status, answer->body, what); !s.ok()) return s;
    json out = json::parse(answer->body, nullptr, /*allow_exceptions=*/false);
    if (out.is_discarded()) return absl::DataLossError(absl::StrCat(what, ": the answer is not JSON"));
    return out;
  }
}

absl::StatusOr<json> KubeClient::Get(const std::string& path) {
  return Call("GET", path, "", "", absl::StrCat("GET ", path));
}

absl::StatusOr<json> KubeClient::Create(const std::string& collection_path, const json& object) {
  return Call("POST", collection_path, object.dump(), "application/json", absl::StrCat("POST ", collection_path));
}

absl::StatusOr<json> KubeClient::Replace(const std::string& path, const json& object) {
  return Call("PUT", path, object.dump(), "application/json", absl::StrCat("PUT ", path));
}

absl::StatusOr<json> KubeClient::MergePatch(const std::string& path, const json& patch) {
  return Call("PATCH", path, patch.dump(), "application/merge-patch+json", absl::StrCat("PATCH ", path));
}

absl::StatusOr<json> KubeClient::StrategicMergePatch(const std::string& path, const json& patch) {
  return Call("PATCH", path, patch.dump(), "application/strategic-merge-patch+json", absl::StrCat("PATCH ", path));
}

absl::StatusOr<json> KubeClient::Apply(const std::string& path, const json& object, const std::string& field_manager,
                                       bool force) {
  const std::string full =
      absl::StrCat(path, "?fieldManager=", QueryEscape(field_manager), force ? "&force=true" : "");
  return Call("PATCH", full, object.dump(), "application/apply-patch+yaml", absl::StrCat("apply ", path));
}

absl::Status KubeClient::Delete(const std::string& path) {
  return Call("DELETE", path, "", "", absl::StrCat("DELETE ", path)).status();
}

absl::StatusOr<ListResult> KubeClient::List(const std::string& collection_path, const std::string& label_selector,
                                            int limit) {
  ListResult out;
  std::string cont;
  do {
    std::string path = absl::StrCat(collection_path, "?limit=", limit);
    if (!label_selector.empty()) absl::StrAppend(&path, "&labelSelector=", QueryEscape(label_selector));
    if (!cont.empty()) absl::StrAppend(&path, "&continue=", QueryEscape(cont));
    auto page = Call("GET", path, "", "", absl::StrCat("LIST ", collection_path));
    if (!page.ok()) return page.status();
    const json& meta = (*page)["metadata"];
    if (out.resource_version.empty()) out.resource_version = meta.value("resourceVersion", std::string());
    cont = meta.value("continue", std::string());
    // The server leaves kind and apiVersion out of a list's items; they are the list's, less "List" (as a
    // watch event's object carries them), so an object reads the same however it reached the cache.
    std::string kind = page->value("kind", std::string());
    if (absl::EndsWith(kind, "List")) kind.resize(kind.size() - 4);
    const std::string api_version = page->value("apiVersion", std::string());
    if (auto items = page->find("items"); items != page->end() && items->is_array()) {
      for (auto& item : *items) {
        if (item.is_object() && !item.contains("kind") && !kind.empty()) item["kind"] = kind;
        if (item.is_object() && !item.contains("apiVersion") && !api_version.empty()) item["apiVersion"] = api_version;
        out.items.push_back(std::move(item));
      }
    }
  } while (!cont.empty());
  return out;
}

absl::StatusOr<std::string> KubeClient::Watch(const std::string& collection_path, const std::string& label_selector,
                                              const std::string& resource_version,
                                              const std::function<bool(const WatchEvent&)>& on_event,
                                              const std::function<bool()>& stopped, int timeout_seconds) {
  auto token = tokens_.Token();
  if (!token.ok()) return token.status();
  HttpRequest req;
  req.path = absl::StrCat(collection_path, "?watch=1&allowWatchBookmarks=true&timeoutSeconds=", timeout_seconds,
                          "&resourceVersion=", QueryEscape(resource_version));
  if (!label_selector.empty()) absl::StrAppend(&req.path, "&labelSelector=", QueryEscape(label_selector));
  req.bearer_token = *token;
  std::string last = resource_version;
  absl::Status failure;
  auto answer = transport_.Stream(
      req,
      [&](absl::string_view line) {
        if (line.empty()) return true;
        json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
        if (!j.is_object() || !j.contains("type") || !j.contains("object")) {
          failure = absl::DataLossError(absl::StrCat("WATCH ", collection_path, ": unreadable event"));
          return false;
        }
        WatchEvent ev{j["type"].get<std::string>(), std::move(j["object"])};
        if (ev.type == "ERROR") {
          const int code = ev.object.value("code", 500);
          failure = StatusOfAnswer(code, ev.object.dump(), absl::StrCat("WATCH ", collection_path));
          return false;
        }
        if (ev.object.contains("metadata")) {
          last = ev.object["metadata"].value("resourceVersion", last);
        }
        return on_event(ev);
      },
      stopped);
  if (!answer.ok()) return answer.status();
  if (answer->status == 401) tokens_.Invalidate();
  if (absl::Status s = StatusOfAnswer(answer->status, answer->body, absl::StrCat("WATCH ", collection_path)); !s.ok()) {
    return s;
  }
  if (!failure.ok()) return failure;
  return last;
}

absl::StatusOr<json> KubeClient::RecordEvent(const json& object, const std::string& type, const std::string& reason,
                                     const std::string& message, const std::string& component, int64_t now_unix_ms) {
  const json meta = object.value("metadata", json::object());
  std::string ns = meta.value("namespace", std::string());
  if (ns.empty()) ns = "default";  // events about cluster-scoped objects (Nodes)
  const std::string now = Rfc3339(now_unix_ms);
  json ev = {
      {"apiVersion", "v1"},
      {"kind", "Event"},
      {"metadata", {{"generateName", meta.value("name", std::string("object")) + "."}, {"namespace", ns}}},
      {"involvedObject",
       {{"apiVersion", object.value("apiVersion", std::string("v1"))},
        {"kind", object.value("kind", std::string())},
        {"namespace", meta.value("namespace", std::string())},
        {"name", meta.value("name", std::string())},
        {"uid", meta.value("uid", std::string())},
        {"resourceVersion", meta.value("resourceVersion", std::string())}}},
      {"type", type},
      {"reason", reason},
      {"message", message},
      {"source", {{"component", component}}},
      {"reportingComponent", component},
      {"firstTimestamp", now},
      {"lastTimestamp", now},
      {"count", 1},
  };
  return Create(ResourcePath("v1", "events", ns), ev);
}

}  // namespace abode::kube

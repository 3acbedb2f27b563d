#include "kube/config.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "kube/yaml_json.h"

namespace abode::kube {
namespace {

using nlohmann::json;

std::string Folder(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

std::string Resolve(const std::string& folder, const std::string& path) {
  return path.empty() || path.front() == '/' ? path : folder + "/" + path;
}

// The entry named `name` of the list `field` ({name, <kind>: {...}}), or an error naming the field.
absl::StatusOr<json> Named(const json& doc, const std::string& field, const std::string& kind,
                           const std::string& name, const std::string& file) {
  auto list = doc.find(field);
  if (list != doc.end() && list->is_array()) {
    for (const json& entry : *list) {
      if (entry.is_object() && entry.value("name", json()).is_string() && entry["name"] == name) {
        auto inner = entry.find(kind);
        if (inner == entry.end() || !inner->is_object()) break;
        return *inner;
      }
    }
  }
  return absl::InvalidArgumentError(absl::StrCat(file, ": ", field, ": no ", kind, " named \"", name, "\""));
}

std::string Text(const json& obj, const char* key) {
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// `<field>-data` (base64) or `<field>` (a file), as PEM text.
absl::StatusOr<std::string> Pem(const json& obj, const std::string& field, const std::string& folder,
                                const std::string& where) {
  const std::string data = Text(obj, (field + "-data").c_str());
  if (!data.empty()) {
    std::string out;
    if (!absl::Base64Unescape(data, &out)) {
      return absl::InvalidArgumentError(absl::StrCat(where, ".", field, "-data: not base64"));
    }
    return out;
  }
  const std::string file = Text(obj, field.c_str());
  if (file.empty()) return std::string();
  auto pem = ReadFile(Resolve(folder, file));
  if (!pem.ok()) return absl::Status(pem.status().code(), absl::StrCat(where, ".", field, ": ", pem.status().message()));
  return pem;
}

absl::Status CheckServer(const std::string& server, const std::string& where) {
  if (server.rfind("https://", 0) != 0 && server.rfind("http://", 0) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": \"", server, "\" is not an http(s) URL"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    const std::string why = absl::StrCat(path, ": ", std::strerror(err));
    return err == EACCES ? absl::PermissionDeniedError(why) : absl::NotFoundError(why);
  }
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

absl::StatusOr<ClusterConfig> InClusterConfig(const std::function<std::optional<std::string>(const char*)>& getenv,
                                              const std::string& sa_dir) {
  auto host = getenv("KUBERNETES_SERVICE_HOST");
  auto port = getenv("KUBERNETES_SERVICE_PORT");
  if (!host || host->empty() || !port || port->empty()) {
    return absl::FailedPreconditionError(
        "in-cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set; not running in a pod? "
        "Use --kubeconfig");
  }
  ClusterConfig c;
  const std::string h = host->find(':') != std::string::npos ? absl::StrCat("[", *host, "]") : *host;
  c.tls.server = absl::StrCat("https://", h, ":", *port);
  auto ca = ReadFile(sa_dir + "/ca.crt");
  if (!ca.ok()) return absl::Status(ca.status().code(), absl::StrCat("in-cluster CA: ", ca.status().message()));
  c.tls.ca_pem = std::move(*ca);
  c.token_file = sa_dir + "/token";
  if (auto token = ReadFile(c.token_file); !token.ok()) {
    return absl::Status(token.status().code(), absl::StrCat("in-cluster token: ", token.status().message()));
  }
  if (auto ns = ReadFile(sa_dir + "/namespace"); ns.ok()) c.namespace_ = std::string(absl::StripAsciiWhitespace(*ns));
  return c;
}

absl::StatusOr<ClusterConfig> KubeconfigConfig(const std::string& path, const std::string& context) {
  auto text = ReadFile(path);
  if (!text.ok()) return absl::Status(text.status().code(), absl::StrCat("kubeconfig ", text.status().message()));
  auto doc = ParseYaml(*text);
  if (!doc.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ": ", doc.status().message()));
  if (!doc->is_object()) return absl::InvalidArgumentError(absl::StrCat(path, ": not a kubeconfig mapping"));
  const std::string want = context.empty() ? Text(*doc, "current-context") : context;
  if (want.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": current-context: not set"));
  auto ctx = Named(*doc, "contexts", "context", want, path);
  if (!ctx.ok()) return ctx.status();
  auto cluster = Named(*doc, "clusters", "cluster", Text(*ctx, "cluster"), path);
  if (!cluster.ok()) return cluster.status();
  ClusterConfig c;
  const std::string folder = Folder(path);
  const std::string cwhere = absl::StrCat(path, ": clusters[", Text(*ctx, "cluster"), "]");
  c.tls.server = Text(*cluster, "server");
  while (!c.tls.server.empty() && c.tls.server.back() == '/') c.tls.server.pop_back();
  if (absl::Status s = CheckServer(c.tls.server, cwhere + ".server"); !s.ok()) return s;
  auto ca = Pem(*cluster, "certificate-authority", folder, cwhere);
  if (!ca.ok()) return ca.status();
  c.tls.ca_pem = std::move(*ca);
  c.tls.insecure_skip_verify = cluster->value("insecure-skip-tls-verify", false) == true;
  c.namespace_ = Text(*ctx, "namespace");
  const std::string user_name = Text(*ctx, "user");
  if (user_name.empty()) return c;  // anonymous
  auto user = Named(*doc, "users", "user", user_name, path);
  if (!user.ok()) return user.status();
  const std::string uwhere = absl::StrCat(path, ": users[", user_name, "]");
  c.token = Text(*user, "token");
  c.token_file = Resolve(folder, Text(*user, "tokenFile"));
  auto cert = Pem(*user, "client-certificate", folder, uwhere);
  if (!cert.ok()) return cert.status();
  auto key = Pem(*user, "client-key", folder, uwhere);
  if (!key.ok()) return key.status();
  if (cert->empty() != key->empty()) {
    return absl::InvalidArgumentError(absl::StrCat(uwhere, ": client-certificate and client-key go together"));
  }
  c.tls.client_cert_pem = std::move(*cert);
  c.tls.client_key_pem = std::move(*key);
  if (user->contains("exec") || user->contains("auth-provider")) {
    return absl::InvalidArgumentError(absl::StrCat(uwhere, ": exec and auth-provider credentials are not supported; "
                                                   "use a token or a client certificate"));
  }
  return c;
}

absl::StatusOr<std::string> TokenSource::Token() {
  if (file_.empty()) return fixed_;
  absl::MutexLock lock(&mu_);
  const int64_t now = clock_.NowUnixMs();
  if (read_at_ms_ < 0 || now - read_at_ms_ >= max_age_ms_) {
    auto token = ReadFile(file_);
    if (!token.ok()) {
      if (read_at_ms_ >= 0) return cached_;  // keep the last one while the file is being replaced
      return token.status();
    }
    cached_ = std::string(absl::StripAsciiWhitespace(*token));
    read_at_ms_ = now;
  }
  return cached_;
}

void TokenSource::Invalidate() {
  absl::MutexLock lock(&mu_);
  if (read_at_ms_ >= 0) read_at_ms_ = clock_.NowUnixMs() - max_age_ms_;
}

}  // namespace abode::kube

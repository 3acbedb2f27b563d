#include "kube/curl_transport.h"

#include <curl/curl.h>

#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"

namespace abode::kube {
namespace {

struct ListDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
using HeaderList = std::unique_ptr<curl_slist, ListDeleter>;

// Appends one header; the list owns the copies curl makes.
void AddHeader(HeaderList& list, const std::string& header) {
  curl_slist* next = curl_slist_append(list.get(), header.c_str());
  if (next != nullptr) {
    (void)list.release();
    list.reset(next);
  }
}

// What a transfer collects: the whole body, or lines handed to a callback.
struct Sink {
  std::string body;
  std::string pending;  // a streamed line not yet complete
  const std::function<bool(absl::string_view)>* on_line = nullptr;
  const std::function<bool()>* stopped = nullptr;
  long status = 0;
  bool streaming_lines = false;
  bool stop = false;
};

size_t OnData(char* data, size_t size, size_t count, void* user) {
  auto* sink = static_cast<Sink*>(user);
  const size_t n = size * count;
  if (!sink->streaming_lines) {
    sink->body.append(data, n);
    return n;
  }
  sink->pending.append(data, n);
  size_t start = 0;
  for (size_t nl = sink->pending.find('\n'); nl != std::string::npos; nl = sink->pending.find('\n', start)) {
    if (!(*sink->on_line)(absl::string_view(sink->pending).substr(start, nl - start))) {
      sink->stop = true;
      return 0;  // aborts the transfer
    }
    start = nl + 1;
  }
  sink->pending.erase(0, start);
  return n;
}

// Decides, once the status line is known, whether the body is streamed as lines.
size_t OnHeader(char* data, size_t size, size_t count, void* user) {
  auto* sink = static_cast<Sink*>(user);
  absl::string_view line(data, size * count);
  if (line.rfind("HTTP/", 0) == 0) {
    const size_t sp = line.find(' ');
    if (sp != absl::string_view::npos) sink->status = std::strtol(std::string(line.substr(sp + 1, 3)).c_str(), nullptr, 10);
    sink->streaming_lines = sink->on_line != nullptr && sink->status >= 200 && sink->status < 300;
  }
  return size * count;
}

int OnProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* sink = static_cast<Sink*>(user);
  if (sink->stopped != nullptr && (*sink->stopped)()) {
    sink->stop = true;
    return 1;
  }
  return 0;
}

}  // namespace

CurlTransport::CurlTransport(TlsSettings tls) : tls_(std::move(tls)) {}

absl::StatusOr<HttpResponse> CurlTransport::Send(const HttpRequest& request) {
  return Stream(request, nullptr, nullptr);
}

absl::StatusOr<HttpResponse> CurlTransport::Stream(const HttpRequest& request,
                                                   const std::function<bool(absl::string_view line)>& on_line,
                                                   const std::function<bool()>& stopped) {
  Easy easy;
  if (on_line == nullptr) {
    absl::MutexLock lock(&mu_);
    if (!idle_.empty()) {
      easy = std::move(idle_.back());
      idle_.pop_back();
    }
  }
  if (!easy) easy.reset(curl_easy_init());
  if (!easy) return absl::ResourceExhaustedError("curl: cannot create a handle");
  CURL* c = easy.get();
  const std::string url = tls_.server + request.path;
  Sink sink;
  sink.on_line = on_line ? &on_line : nullptr;
  sink.stopped = stopped ? &stopped : nullptr;
  HeaderList headers;
  AddHeader(headers, "Accept: application/json");
  if (!request.content_type.empty()) AddHeader(headers, "Content-Type: " + request.content_type);
  if (!request.bearer_token.empty()) AddHeader(headers, "Authorization: Bearer " + request.bearer_token);
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
  if (on_line == nullptr) curl_easy_setopt(c, CURLOPT_TIMEOUT, static_cast<long>(request.timeout_seconds));
  if (!request.body.empty() || request.method != "GET") {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, request.body.c_str());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(request.body.size()));
  }
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, OnData);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &sink);
  if (stopped) {
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, OnProgress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &sink);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  }
  // The blobs are copied by curl (CURL_BLOB_COPY).
  curl_blob ca{const_cast<char*>(tls_.ca_pem.data()), tls_.ca_pem.size(), CURL_BLOB_COPY};
  curl_blob cert{const_cast<char*>(tls_.client_cert_pem.data()), tls_.client_cert_pem.size(), CURL_BLOB_COPY};
  curl_blob key{const_cast<char*>(tls_.client_key_pem.data()), tls_.client_key_pem.size(), CURL_BLOB_COPY};
  if (!tls_.ca_pem.empty()) curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &ca);
  if (!tls_.client_cert_pem.empty()) {
    curl_easy_setopt(c, CURLOPT_SSLCERT_BLOB, &cert);
    curl_easy_setopt(c, CURLOPT_SSLCERTTYPE, "PEM");
  }
  if (!tls_.client_key_pem.empty()) {
    curl_easy_setopt(c, CURLOPT_SSLKEY_BLOB, &key);
    curl_easy_setopt(c, CURLOPT_SSLKEYTYPE, "PEM");
  }
  if (tls_.insecure_skip_verify) {
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  const CURLcode rc = curl_easy_perform(c);
  if (rc != CURLE_OK && !sink.stop) {
    return absl::UnavailableError(absl::StrCat(request.method, " ", tls_.server, request.path, ": ",
                                               curl_easy_strerror(rc)));
  }
  HttpResponse out;
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  out.status = static_cast<int>(status != 0 ? status : sink.status);
  out.body = std::move(sink.body);
  if (on_line == nullptr && rc == CURLE_OK) {
    curl_easy_reset(c);  // keeps its open connection
    absl::MutexLock lock(&mu_);
    if (idle_.size() < kIdleHandles) idle_.push_back(std::move(easy));
  }
  return out;
}

}  // namespace abode::kube

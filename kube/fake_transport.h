// A scripted Transport for unit tests: a handler answers each exchange; watch streams deliver the lines
// queued for them. Records every request. Thread-safe.
#ifndef ABODE_KUBE_FAKE_TRANSPORT_H_
#define ABODE_KUBE_FAKE_TRANSPORT_H_

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "kube/transport.h"

namespace abode::kube {

class FakeTransport final : public Transport {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;
  // One scripted watch: its status, and its lines (for a 2xx answer) or body.
  struct Watch {
    int status = 200;
    std::vector<std::string> lines;
    std::string body;
  };

  void SetHandler(Handler h) {
    absl::MutexLock lock(&mu_);
    handler_ = std::make_shared<Handler>(std::move(h));
  }
  void QueueWatch(Watch w) {
    absl::MutexLock lock(&mu_);
    watches_.push_back(std::move(w));
  }
  std::vector<HttpRequest> requests() {
    absl::MutexLock lock(&mu_);
    return requests_;
  }

  absl::StatusOr<HttpResponse> Send(const HttpRequest& request) override {
    std::shared_ptr<Handler> h;  // shared, so that a handler's own state lives across calls
    {
      absl::MutexLock lock(&mu_);
      requests_.push_back(request);
      h = handler_;
    }
    if (!h) return absl::UnavailableError("fake: no handler");
    return (*h)(request);
  }

  // With no watch queued, the stream fails as a broken connection would.
  absl::StatusOr<HttpResponse> Stream(const HttpRequest& request, const std::function<bool(absl::string_view)>& on_line,
                                      const std::function<bool()>&) override {
    Watch w;
    {
      absl::MutexLock lock(&mu_);
      requests_.push_back(request);
      if (watches_.empty()) return absl::UnavailableError("fake: connection refused");
      w = std::move(watches_.front());
      watches_.pop_front();
    }
    if (w.status < 200 || w.status >= 300) return HttpResponse{w.status, w.body};
    for (const std::string& line : w.lines) {
      if (!on_line(line)) break;
    }
    return HttpResponse{w.status, ""};
  }

 private:
  absl::Mutex mu_;
  std::shared_ptr<Handler> handler_;
  std::deque<Watch> watches_;
  std::vector<HttpRequest> requests_;
};

}  // namespace abode::kube

#endif  // ABODE_KUBE_FAKE_TRANSPORT_H_

#include "cni_socket.h"

#include <errno.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <chrono>
#include <cstring>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "cni/cni_result.h"
#include "cni/plugin.h"

namespace abode::node {
namespace {

absl::Status Errno(const std::string& what) {
  return absl::UnavailableError(absl::StrCat("--cni-socket: ", what, ": ", std::strerror(errno)));
}

}  // namespace

absl::StatusOr<std::unique_ptr<CniSocketServer>> CniSocketServer::Start(const std::string& path, Handler handler,
                                                                        Recorder recorder, int workers,
                                                                        uid_t allowed_uid) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof address.sun_path) {
    return absl::InvalidArgumentError(
        absl::StrCat("--cni-socket: \"", path, "\" must be a path of 1 to ", sizeof address.sun_path - 1, " bytes"));
  }
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return absl::FailedPreconditionError(absl::StrCat("--cni-socket: ", path, " exists and is not a socket"));
    }
    ::unlink(path.c_str());  // a previous abode-node's
  }
  std::unique_ptr<CniSocketServer> server(
      new CniSocketServer(path, std::move(handler), std::move(recorder), allowed_uid));
  server->listener_ = UniqueFd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!server->listener_.valid()) return Errno("socket");
  // Mode 0600 from the start: the file never exists with wider permissions. The umask is process-wide;
  // abode-node binds once at start-up, before its other threads create files.
  const mode_t old_mask = ::umask(0177);
  const int bound = ::bind(server->listener_.get(), reinterpret_cast<sockaddr*>(&address), sizeof address);
  ::umask(old_mask);
  if (bound != 0) return Errno(absl::StrCat("bind ", path));
  if (::chmod(path.c_str(), 0600) != 0) return Errno(absl::StrCat("chmod ", path));
  if (::listen(server->listener_.get(), 512) != 0) return Errno("listen");
  server->stop_ = UniqueFd(::eventfd(0, EFD_CLOEXEC));
  if (!server->stop_.valid()) return Errno("eventfd");
  for (int i = 0; i < workers; ++i) server->workers_.emplace_back([s = server.get()] { s->Work(); });
  return server;
}

CniSocketServer::~CniSocketServer() {
  if (stop_.valid()) {
    const uint64_t one = 1;
    (void)!::write(stop_.get(), &one, sizeof one);
  }
  for (std::thread& t : workers_) t.join();
  ::unlink(path_.c_str());
}

void CniSocketServer::Work() {
  // Each worker waits on its own epoll set holding the listener with EPOLLEXCLUSIVE, so a connection wakes
  // one idle worker rather than all of them (with a shared poll() every connection woke the whole pool, a
  // burst of context switches per request on a small machine). The stop eventfd is not exclusive: it wakes
  // every worker.
  UniqueFd epoll(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll.valid()) return;
  epoll_event listen_event{};
  listen_event.events = EPOLLIN | EPOLLEXCLUSIVE;
  listen_event.data.fd = listener_.get();
  epoll_event stop_event{};
  stop_event.events = EPOLLIN;
  stop_event.data.fd = stop_.get();
  if (::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, listener_.get(), &listen_event) != 0 ||
      ::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, stop_.get(), &stop_event) != 0) {
    return;
  }
  while (true) {
    epoll_event ready[2];
    const int n = ::epoll_wait(epoll.get(), ready, 2, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    for (int i = 0; i < n; ++i) {
      if (ready[i].data.fd == stop_.get()) return;
    }
    // Several connections may be queued behind one wake-up: serve until the backlog is empty.
    while (true) {
      UniqueFd connection(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!connection.valid()) break;  // empty (another worker took it), or the peer went away
      Serve(connection.get());
    }
  }
}

void CniSocketServer::Serve(int fd) {
  const Clock::time_point received = Clock::now();
  CniRequestRecord record;
  auto answer = [&](const cni::LocalResponse& response, Clock::time_point deadline) {
    record.code = response.error ? response.error->code : 0;
    if (response.error) record.message = response.error->msg;
    (void)cni::WriteFrame(fd, cni::EncodeResponse(response), deadline);
    record.node_seconds = std::chrono::duration<double>(Clock::now() - received).count();
  };
  ucred peer{};
  socklen_t length = sizeof peer;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &length) != 0 ||
      (peer.uid != 0 && peer.uid != allowed_uid_)) {
    cni::LocalResponse refused;
    refused.error = cni::CniError{cni::kInvalidEnvironment,
                                  absl::StrCat("abode-node serves CNI requests from root only (peer uid ", peer.uid, ")"),
                                  ""};
    answer(refused, received + std::chrono::seconds(1));
    recorder_(record);
    return;
  }
  // A client that connects and says nothing gets a few seconds, not a worker forever.
  auto frame = cni::ReadFrame(fd, received + std::chrono::seconds(5));
  if (!frame.ok()) {
    cni::LocalResponse bad;
    bad.error = frame.error();
    if (bad.error->code == cni::kTryAgainLater) bad.error->code = cni::kDecodeFailure;
    answer(bad, received + std::chrono::seconds(1));
    recorder_(record);
    return;
  }
  if (cni::IsInvocation(*frame)) {
    ServeInvocation(fd, *frame, received, record);
    return;
  }
  auto request = cni::DecodeRequest(*frame);
  if (!request.ok()) {
    cni::LocalResponse bad;
    bad.error = request.error();
    answer(bad, received + std::chrono::seconds(1));
    recorder_(record);
    return;
  }
  record.verb = request->verb;
  record.traceparent = request->traceparent;
  record.parent_traceparent = request->parent_traceparent;
  record.container_id = request->container_id;
  record.ifname = request->ifname;
  record.plugin_start_unix_ns = request->plugin_start_unix_ns;
  answer(handler_(*request), Clock::now() + std::chrono::seconds(2));
  FinishRecord(fd, record);
}

void CniSocketServer::ServeInvocation(int fd, const std::string& frame, Clock::time_point received,
                                      CniRequestRecord& record) {
  auto environment = cni::DecodeInvocation(frame);
  cni::PluginOutput output;
  if (!environment.ok()) {
    output = cni::PluginOutput{1, cni::ErrorJson(environment.error(), ""), "", ""};
    record.code = environment.error().code;
    record.message = environment.error().msg;
  } else {
    // The plugin's own logic, with this process's handler where the plugin would call abode-node.
    auto command = environment->env.find("CNI_COMMAND");
    record.verb = command == environment->env.end() ? "" : command->second;
    record.plugin_start_unix_ns = environment->start_unix_ns;
    output = cni::RunPlugin(*environment, [&](const std::string&, const cni::LocalRequest& request,
                                              Clock::time_point) {
      record.traceparent = request.traceparent;
      record.parent_traceparent = request.parent_traceparent;
      record.container_id = request.container_id;
      record.ifname = request.ifname;
      return cni::Result<cni::LocalResponse>(handler_(request));
    });
    if (output.exit_code != 0) {
      const auto error = nlohmann::json::parse(output.stdout_text, nullptr, false);
      record.code = error.is_object() && error.contains("code") && error["code"].is_number_integer()
                        ? error["code"].get<int>()
                        : cni::kNodeInternal;
      if (error.is_object() && error.contains("msg") && error["msg"].is_string()) {
        record.message = error["msg"].get<std::string>();
      }
    }
  }
  (void)cni::WriteFrame(fd, cni::EncodeOutput(output), Clock::now() + std::chrono::seconds(2));
  record.node_seconds = std::chrono::duration<double>(Clock::now() - received).count();
  FinishRecord(fd, record);
}

void CniSocketServer::FinishRecord(int fd, CniRequestRecord& record) {
  // The closing frame: the plugin's end time, sent right after it read the answer.
  auto closing = cni::ReadFrame(fd, Clock::now() + std::chrono::milliseconds(200));
  if (closing.ok() && record.plugin_start_unix_ns > 0) {
    const int64_t end = cni::DecodeClosing(*closing);
    if (end > record.plugin_start_unix_ns) {
      record.plugin_seconds = (end - record.plugin_start_unix_ns) / 1e9;
      record.plugin_end_unix_ns = end;
    }
  }
  recorder_(record);
}

}  // namespace abode::node

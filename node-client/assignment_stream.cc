#include "assignment_stream.h"

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <thread>
#include <utility>

#include "abode/v1/nodes.grpc.pb.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace abode::node {
namespace {

class GrpcWatchConnection final : public WatchConnection {
 public:
  explicit GrpcWatchConnection(v1::Nodes::Stub* stub) { stream_ = stub->WatchAssignments(&context_); }
  bool Write(const v1::WatchAssignmentsRequest& request) override { return stream_->Write(request); }
  bool Read(v1::WatchAssignmentsResponse* response) override { return stream_->Read(response); }
  void Cancel() override { context_.TryCancel(); }
  absl::Status Finish() override {
    const grpc::Status status = stream_->Finish();
    if (status.ok()) return absl::OkStatus();
    return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
  }

 private:
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::WatchAssignmentsRequest, v1::WatchAssignmentsResponse>> stream_;
};

class GrpcWatchTransport final : public WatchTransport {
 public:
  explicit GrpcWatchTransport(GrpcWatchTransportOptions options) : options_(options) {}

  absl::StatusOr<std::unique_ptr<WatchConnection>> Open(const std::string& endpoint) override {
    auto it = endpoints_.find(endpoint);
    if (it == endpoints_.end()) {
      grpc::ChannelArguments args;
      // The default reconnect backoff grows to two minutes; an allocator that comes back must be found soon.
      args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
      args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 200);
      args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
      args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, options_.keepalive_time_ms);
      args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, options_.keepalive_timeout_ms);
      args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
      args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
      auto channel = grpc::CreateCustomChannel(endpoint, grpc::InsecureChannelCredentials(), args);
      auto stub = v1::Nodes::NewStub(channel);
      it = endpoints_.emplace(endpoint, Endpoint{std::move(channel), std::move(stub)}).first;
    }
    if (!it->second.channel->WaitForConnected(std::chrono::system_clock::now() +
                                              std::chrono::milliseconds(options_.connect_timeout_ms))) {
      return absl::UnavailableError(
          absl::StrCat("no connection within ", options_.connect_timeout_ms, " ms"));
    }
    return std::make_unique<GrpcWatchConnection>(it->second.stub.get());
  }

 private:
  struct Endpoint {
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<v1::Nodes::Stub> stub;
  };
  const GrpcWatchTransportOptions options_;
  std::map<std::string, Endpoint> endpoints_;
};

}  // namespace

std::unique_ptr<WatchTransport> NewGrpcWatchTransport(GrpcWatchTransportOptions options) {
  return std::make_unique<GrpcWatchTransport>(options);
}

absl::StatusOr<std::vector<std::string>> ParseEndpoints(const std::string& text) {
  std::vector<std::string> endpoints;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    part = absl::StripAsciiWhitespace(part);
    const size_t colon = part.rfind(':');
    if (colon == absl::string_view::npos || colon == 0 || colon + 1 == part.size()) {
      return absl::InvalidArgumentError(absl::StrCat("allocator endpoint '", part, "': want host:port"));
    }
    endpoints.emplace_back(part);
  }
  if (endpoints.empty()) return absl::InvalidArgumentError("allocator: at least one host:port is required");
  return endpoints;
}

AssignmentStreamClient::AssignmentStreamClient(AssignmentStreamOptions options, WatchTransport* transport,
                                               AssignmentSink* sink)
    : options_(std::move(options)), transport_(transport), sink_(sink), random_(std::random_device{}()) {}

std::chrono::milliseconds AssignmentStreamClient::Jittered(std::chrono::milliseconds base) {
  // Uniform in [base/2, base]: nodes that lost the same allocator do not all come back at once.
  std::uniform_int_distribution<int64_t> dist(base.count() / 2, std::max<int64_t>(base.count(), 1));
  return std::chrono::milliseconds(dist(random_));
}

void AssignmentStreamClient::Run() {
  size_t endpoint = 0;
  std::chrono::milliseconds backoff = options_.initial_backoff;
  while (true) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopped_) return;
    }
    const std::string& target = options_.endpoints[endpoint];
    bool established = false;
    absl::StatusOr<std::unique_ptr<WatchConnection>> connection = transport_->Open(target);
    if (connection.ok()) {
      established = Serve(**connection, target);
    } else {
      spdlog::warn("allocator {}: {}", target, connection.status().ToString());
    }
    if (established) backoff = options_.initial_backoff;
    // A failed or broken stream: try the next endpoint, after a pause that grows while nothing works.
    endpoint = (endpoint + 1) % options_.endpoints.size();
    const std::chrono::milliseconds pause = Jittered(backoff);
    backoff = std::min(backoff * 2, options_.max_backoff);
    std::unique_lock<std::mutex> lock(mu_);
    if (cv_.wait_for(lock, pause, [&] { return stopped_; })) return;
  }
}

bool AssignmentStreamClient::Serve(WatchConnection& connection, const std::string& endpoint) {
  {
    std::scoped_lock lock(write_mu_, mu_);
    if (stopped_) return false;
    current_ = &connection;
    stream_done_ = false;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    next_sequence_ = 1;
    sent_.clear();
    acknowledging_ = false;
  }
  v1::WatchAssignmentsRequest start;
  start.mutable_start()->set_heartbeat_sequence(NextSequence());
  start.mutable_start()->set_node(options_.registration.name());
  start.mutable_start()->set_resume_revision(sink_->AppliedRevision());
  *start.mutable_start()->mutable_registration() = options_.registration;

  bool established = false;
  std::thread heartbeats;
  v1::WatchAssignmentsResponse response;
  if (Write(start) && connection.Read(&response)) {
    established = true;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++established_;
      streaming_ = true;
    }
    spdlog::info("allocator {}: stream open at revision {} ({}), lease {} ms", endpoint, response.revision(),
                 response.snapshot() ? "snapshot" : "resumed", response.lease_ms());
    const int64_t lease_ms = response.lease_ms() > 0 ? response.lease_ms() : 5000;
    {
      std::lock_guard<std::mutex> lock(mu_);
      lease_length_ = std::chrono::milliseconds(lease_ms);
      acknowledging_ = response.acknowledges_heartbeats();
    }
    // An allocator that does not acknowledge heartbeats: the lease runs from each message written.
    if (!response.acknowledges_heartbeats()) Acknowledged(1);
    const auto interval = std::chrono::milliseconds(std::max<int64_t>(lease_ms / options_.heartbeats_per_lease, 50));
    heartbeats = std::thread([this, interval] {
      while (true) {
        bool acknowledging;
        {
          std::unique_lock<std::mutex> lock(mu_);
          if (cv_.wait_for(lock, interval, [&] { return stopped_ || stream_done_; })) return;
          acknowledging = acknowledging_;
        }
        v1::WatchAssignmentsRequest heartbeat;
        const uint64_t sequence = NextSequence();
        heartbeat.mutable_heartbeat()->set_sequence(sequence);
        if (!Write(heartbeat)) return;
        if (!acknowledging) Acknowledged(sequence);
      }
    });
    // The acknowledgement first: the state it brings is applied under the renewed lease.
    if (response.heartbeat_acknowledged() != 0) Acknowledged(response.heartbeat_acknowledged());
    sink_->OnUpdate(response);
    Report(sink_->AllStatuses());  // a new stream (maybe another replica) starts with the full picture
    while (connection.Read(&response)) {
      if (response.heartbeat_acknowledged() != 0) {
        Acknowledged(response.heartbeat_acknowledged());
        const bool acknowledgement_only = response.revision() == 0 && !response.snapshot() &&
                                          response.assignments().empty() && response.removed().empty();
        if (acknowledgement_only) {
          Report(sink_->OnLeaseRenewed());
          continue;
        }
      }
      Report(sink_->OnUpdate(response));
    }
  }
  connection.Cancel();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stream_done_ = true;
    streaming_ = false;
  }
  cv_.notify_all();
  if (heartbeats.joinable()) heartbeats.join();
  {
    std::scoped_lock lock(write_mu_, mu_);
    current_ = nullptr;
  }
  const absl::Status status = connection.Finish();
  bool stopped;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopped = stopped_;
  }
  if (!stopped) spdlog::warn("allocator {}: stream ended: {}", endpoint, status.ToString());
  return established;
}

uint64_t AssignmentStreamClient::NextSequence() {
  std::lock_guard<std::mutex> lock(mu_);
  const uint64_t sequence = next_sequence_++;
  sent_[sequence] = options_.lease != nullptr ? options_.lease->Now() : std::chrono::steady_clock::now();
  // Acknowledgements come within a heartbeat or two; older entries are of no use.
  while (sent_.size() > 64) sent_.erase(sent_.begin());
  return sequence;
}

void AssignmentStreamClient::Acknowledged(uint64_t sequence) {
  if (options_.lease == nullptr) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sent_.find(sequence);
  if (it == sent_.end() || lease_length_.count() == 0) return;
  options_.lease->Renew(it->second, lease_length_);
}

bool AssignmentStreamClient::Write(const v1::WatchAssignmentsRequest& request) {
  std::lock_guard<std::mutex> write_lock(write_mu_);
  WatchConnection* connection;
  {
    std::lock_guard<std::mutex> lock(mu_);
    connection = current_;
  }
  return connection != nullptr && connection->Write(request);
}

void AssignmentStreamClient::Report(const std::vector<v1::AssignmentStatus>& statuses) {
  if (statuses.empty()) return;
  v1::WatchAssignmentsRequest request;
  for (const v1::AssignmentStatus& status : statuses) *request.mutable_status()->add_statuses() = status;
  Write(request);
}

void AssignmentStreamClient::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopped_ = true;
    if (current_ != nullptr) current_->Cancel();
  }
  cv_.notify_all();
}

bool AssignmentStreamClient::streaming() const {
  std::lock_guard<std::mutex> lock(mu_);
  return streaming_;
}

int64_t AssignmentStreamClient::established_streams() const {
  std::lock_guard<std::mutex> lock(mu_);
  return established_;
}

}  // namespace abode::node

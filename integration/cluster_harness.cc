#include "integration/cluster_harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <thread>

#include <grpcpp/create_channel.h>

#include "abode/v1/pools.grpc.pb.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "integration/allocator_process.h"

namespace abode::integration {
namespace {

// Binds a probe socket to 127.0.0.1:`port` (0: the kernel picks) and returns the port it got, or 0.
int ProbeLoopbackPort(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  socklen_t len = sizeof(a);
  int got = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    got = ntohs(a.sin_port);
  }
  ::close(fd);
  return got;
}

// A free port on 127.0.0.1 for a member to listen on later. Picked at random below the kernel's ephemeral
// range: the kernel hands ports from that range to every outgoing connection (and the tests running beside
// this one make many), and one of them could take the port before the member binds it.
int FreeLoopbackPort() {
  int ephemeral_low = 32768;
  std::ifstream range("/proc/sys/net/ipv4/ip_local_port_range");
  range >> ephemeral_low;
  if (ephemeral_low > 2048) {
    std::mt19937 rng(std::random_device{}());
    std::uniform_int_distribution<int> pick(ephemeral_low / 2, ephemeral_low - 1);
    for (int attempt = 0; attempt < 100; ++attempt) {
      if (const int port = ProbeLoopbackPort(pick(rng)); port != 0) return port;
    }
  }
  return ProbeLoopbackPort(0);
}

std::chrono::system_clock::time_point DeadlineIn(int ms) {
  return std::chrono::system_clock::now() + std::chrono::milliseconds(ms);
}

}  // namespace

std::string Slurp(const std::string& path) {
  std::string text;
  FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) return text;
  char buf[4096];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) text.append(buf, n);
  std::fclose(f);
  return text;
}

ProcessResult RunProcess(const std::vector<std::string>& argv) {
  ProcessResult result;
  char out_tmpl[] = "/tmp/abode-run-out-XXXXXX";
  char err_tmpl[] = "/tmp/abode-run-err-XXXXXX";
  const int out_fd = ::mkstemp(out_tmpl);
  const int err_fd = ::mkstemp(err_tmpl);
  if (out_fd >= 0) ::close(out_fd);
  if (err_fd >= 0) ::close(err_fd);
  if (out_fd >= 0 && err_fd >= 0) {
    const pid_t pid = SpawnProcess(argv, out_tmpl, err_tmpl);
    int status = 0;
    pid_t waited = -1;
    if (pid > 0) {
      do {
        waited = ::waitpid(pid, &status, 0);
      } while (waited < 0 && errno == EINTR);
    }
    if (waited == pid) {
      result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    }
    result.out = Slurp(out_tmpl);
    result.err = Slurp(err_tmpl);
  }
  ::unlink(out_tmpl);
  ::unlink(err_tmpl);
  return result;
}

grpc::Status CreatePool(ClusterHarness& c, int member, const std::string& name, const std::string& cidr) {
  auto stub = v1::Pools::NewStub(c.channel(member));
  grpc::ClientContext ctx;
  ctx.set_deadline(DeadlineIn(5000));
  v1::CreatePoolRequest req;
  req.mutable_pool()->set_name(name);
  req.mutable_pool()->set_cidr(cidr);
  v1::Pool out;
  return stub->CreatePool(&ctx, req, &out);
}

grpc::Status Allocate(ClusterHarness& c, int member, const std::string& pool, const std::string& owner,
                      v1::Allocation* out, int timeout_ms) {
  auto stub = v1::Allocator::NewStub(c.channel(member));
  grpc::ClientContext ctx;
  ctx.set_deadline(DeadlineIn(timeout_ms));
  v1::AllocateRequest req;
  req.set_pool(pool);
  req.set_owner(owner);
  return stub->Allocate(&ctx, req, out);
}

grpc::Status GetByOwner(ClusterHarness& c, int member, const std::string& owner, v1::GetAllocationResponse* out,
                        bool stale, int timeout_ms) {
  auto stub = v1::Allocator::NewStub(c.channel(member));
  grpc::ClientContext ctx;
  ctx.set_deadline(DeadlineIn(timeout_ms));
  if (stale) ctx.AddMetadata("abode-read-stale", "true");
  v1::GetAllocationRequest req;
  req.set_owner(owner);
  return stub->GetAllocation(&ctx, req, out);
}

absl::Status Shell(const std::string& command) {
  const std::string full = command + " 2>&1";
  FILE* p = ::popen(full.c_str(), "r");
  if (p == nullptr) return absl::InternalError(absl::StrCat("cannot run: ", command));
  std::string out;
  char buf[512];
  while (std::fgets(buf, sizeof(buf), p) != nullptr) out += buf;
  const int rc = ::pclose(p);
  if (rc != 0) return absl::InternalError(absl::StrCat("`", command, "` failed (", rc, "): ", out));
  return absl::OkStatus();
}

ClusterHarness::ClusterHarness(std::string binary, ClusterOptions options)
    : binary_(std::move(binary)), options_(options) {}

absl::StatusOr<std::unique_ptr<ClusterHarness>> ClusterHarness::Create(std::string binary, ClusterOptions options) {
  std::unique_ptr<ClusterHarness> h(new ClusterHarness(std::move(binary), options));
  char tmpl[] = "/tmp/abode-cluster-XXXXXX";
  const char* root = ::mkdtemp(tmpl);
  if (root == nullptr) return absl::InternalError("mkdtemp failed");
  h->root_ = root;
  for (int i = 0; i < options.members; ++i) h->AddMemberSlot();
  if (options.network_namespaces) {
    h->bridge_ = absl::StrCat("abr", ::getpid() % 100000);
    if (absl::Status s = h->SetUpNamespaces(); !s.ok()) return s;
  }
  return h;
}

void ClusterHarness::AddMemberSlot() {
  const int i = size();
  members_.emplace_back();
  auto& m = members_.back();
  m.data_dir = absl::StrCat(root_, "/member", i + 1);
  m.log = absl::StrCat(root_, "/member", i + 1, ".log");
  if (options_.network_namespaces) {
    const int tag = static_cast<int>(::getpid() % 200) + 20;
    m.ip = absl::StrCat("10.199.", tag, ".", i + 1);
    m.netns = absl::StrCat("abode-it-", ::getpid(), "-", i + 1);
    m.grpc_port = 7443;
    m.raft_port = 7444;
  } else {
    m.ip = "127.0.0.1";
    m.grpc_port = FreeLoopbackPort();
    m.raft_port = FreeLoopbackPort();
  }
  m.host = !options_.host_names        ? m.ip
           : options_.network_namespaces ? absl::StrCat("abode-", i + 1, ".abode.test")
                                        : "localhost";
  ConnectChannel(i);
}

void ClusterHarness::ConnectChannel(int i) {
  auto& m = members_[i];
  grpc::ChannelArguments args;
  // Members come and go during a test: reconnect fast (gRPC waits up to 20 s by default).
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 500);
  m.channel = grpc::CreateCustomChannel(absl::StrCat(m.ip, ":", m.grpc_port), grpc::InsecureChannelCredentials(), args);
}

absl::StatusOr<int> ClusterHarness::AddJoiner() {
  if (options_.network_namespaces) return absl::UnimplementedError("joining members run on loopback only");
  AddMemberSlot();
  members_.back().join = true;
  return size() - 1;
}

ClusterHarness::~ClusterHarness() {
  for (int i = 0; i < size(); ++i) Kill(i);
  TearDownNamespaces();
  std::error_code ec;
  std::filesystem::remove_all(root_, ec);
}

// Member i's veth pair: `avh...` on the bridge, `avn...` in its namespace.
std::string ClusterHarness::VethEnd(const char* side, int i) { return absl::StrCat(side, ::getpid() % 100000, "-", i + 1); }

absl::Status ClusterHarness::SetUpNamespaces() {
  namespaces_up_ = true;  // tear down whatever part got made
  const std::string subnet_host = TestHostIp();
  if (absl::Status s = Shell(absl::StrCat("ip link add ", bridge_, " type bridge && ip addr add ", subnet_host,
                                          "/24 dev ", bridge_, " && ip link set ", bridge_, " up"));
      !s.ok()) {
    return s;
  }
  for (int i = 0; i < size(); ++i) {
    const auto& m = members_[i];
    const std::string host_end = VethEnd("avh", i);
    const std::string ns_end = VethEnd("avn", i);
    const std::string in_ns = absl::StrCat("ip netns exec ", m.netns, " ");
    const std::string cmd = absl::StrCat(
        "ip netns add ", m.netns, " && ip link add ", host_end, " type veth peer name ", ns_end, " && ip link set ",
        ns_end, " netns ", m.netns, " && ip link set ", host_end, " master ", bridge_, " up && ", in_ns,
        "ip addr add ", m.ip, "/24 dev ", ns_end, " && ", in_ns, "ip link set ", ns_end, " up && ", in_ns,
        "ip link set lo up");
    if (absl::Status s = Shell(cmd); !s.ok()) return s;
  }
  return options_.host_names ? WriteHostsFiles() : absl::OkStatus();
}

absl::Status ClusterHarness::WriteHostsFiles() {
  std::string hosts = "127.0.0.1 localhost\n";
  for (const auto& m : members_) absl::StrAppend(&hosts, m.ip, " ", m.host, "\n");
  for (const auto& m : members_) {
    const std::string dir = absl::StrCat("/etc/netns/", m.netns);
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return absl::InternalError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
    // Rewritten in place: `ip netns exec` bind-mounts this very file over /etc/hosts, so a running member
    // sees new contents only in the same file (a file renamed over it would stay unseen). A member that
    // reads it half-written finds no answer and keeps its last one until the next lookup.
    const std::string path = dir + "/hosts";
    std::ofstream out(path, std::ios::trunc);
    out << hosts;
    if (!out.flush()) return absl::InternalError(absl::StrCat("cannot write ", path));
  }
  return absl::OkStatus();
}

absl::Status ClusterHarness::Readdress(int i) {
  if (!options_.network_namespaces || !options_.host_names) {
    return absl::FailedPreconditionError("readdressing needs network namespaces and host names");
  }
  auto& m = members_[i];
  if (m.pid > 0) return absl::FailedPreconditionError("member is running");
  const std::string old_ip = m.ip;
  const std::string prefix = old_ip.substr(0, old_ip.rfind('.') + 1);
  m.ip = absl::StrCat(prefix, std::stoi(old_ip.substr(prefix.size())) + 100);
  const std::string ns_end = VethEnd("avn", i);
  const std::string in_ns = absl::StrCat("ip netns exec ", m.netns, " ");
  if (absl::Status s = Shell(absl::StrCat(in_ns, "ip addr flush dev ", ns_end, " && ", in_ns, "ip addr add ", m.ip,
                                          "/24 dev ", ns_end));
      !s.ok()) {
    return s;
  }
  ConnectChannel(i);
  return WriteHostsFiles();
}

void ClusterHarness::TearDownNamespaces() {
  if (!namespaces_up_) return;
  namespaces_up_ = false;
  for (int i = 0; i < size(); ++i) {
    // The pair goes with the namespace too, but only once the kernel gets round to freeing the namespace:
    // deleting it first frees the names for the next harness in this process at once.
    (void)Shell(absl::StrCat("ip link del ", VethEnd("avh", i)));
    (void)Shell(absl::StrCat("ip netns del ", members_[i].netns));
    std::error_code ec;
    std::filesystem::remove_all(absl::StrCat("/etc/netns/", members_[i].netns), ec);
  }
  (void)Shell(absl::StrCat("ip link del ", bridge_));
}

std::string ClusterHarness::grpc_address(int i) const {
  return absl::StrCat(members_[i].host, ":", members_[i].grpc_port);
}

std::string ClusterHarness::raft_address(int i) const {
  return absl::StrCat(members_[i].host, ":", members_[i].raft_port);
}

std::string ClusterHarness::PeerEntry(int i) const {
  return absl::StrCat(i + 1, "=", raft_address(i), "@", grpc_address(i));
}

std::string ClusterHarness::Peers() const {
  std::vector<std::string> parts;
  for (int i = 0; i < size(); ++i) {
    if (!members_[i].join) parts.push_back(PeerEntry(i));
  }
  return absl::StrJoin(parts, ",");
}

absl::Status ClusterHarness::Start(int i) {
  if (absl::Status s = Spawn(i); !s.ok()) return s;
  return AwaitServing(i);
}

absl::Status ClusterHarness::Spawn(int i) {
  auto& m = members_[i];
  if (m.pid > 0) return absl::FailedPreconditionError("already running");
  const pid_t pid = SpawnProcess(Argv(i), m.log, m.log);
  if (pid < 0) return absl::InternalError("fork failed");
  m.pid = pid;
  return absl::OkStatus();
}

ProcessResult ClusterHarness::RunOnce(int i, const std::vector<std::string>& extra) {
  std::vector<std::string> argv = Argv(i);
  argv.insert(argv.end(), extra.begin(), extra.end());
  return RunProcess(argv);
}

std::vector<std::string> ClusterHarness::Argv(int i) const {
  const auto& m = members_[i];
  std::vector<std::string> argv;
  if (!m.netns.empty()) argv = {"/usr/sbin/ip", "netns", "exec", m.netns};
  const std::vector<std::string> own = {
      binary_,
      "--id", std::to_string(i + 1),
      "--listen", absl::StrCat(m.ip, ":", m.grpc_port),
      "--raft-listen", absl::StrCat(m.ip, ":", m.raft_port),
      // A joining member's own entry (where it listens), then the initial members (whom it may ask).
      "--peers", m.join ? absl::StrCat(PeerEntry(i), ",", Peers()) : Peers(),
      "--data-dir", m.data_dir,
      "--election-timeout-ms", std::to_string(options_.election_timeout_ms),
      "--heartbeat-timeout-ms", std::to_string(options_.heartbeat_timeout_ms),
      "--snapshot-threshold", std::to_string(options_.snapshot_threshold),
      "--snapshot-trailing", std::to_string(options_.snapshot_trailing),
      "--snapshot-log-ratio", std::to_string(options_.snapshot_log_ratio),
      "--forward-timeout-ms", "2000",
  };
  argv.insert(argv.end(), own.begin(), own.end());
  if (options_.node_lease_ms > 0) {
    argv.push_back("--node-lease-ms");
    argv.push_back(std::to_string(options_.node_lease_ms));
  }
  if (m.join) argv.push_back("--join");
  return argv;
}

absl::Status ClusterHarness::AwaitServing(int i, std::chrono::milliseconds timeout) {
  auto& m = members_[i];
  if (m.pid <= 0) return absl::FailedPreconditionError(absl::StrCat("member ", i + 1, " is not running"));
  // Serving once the Cluster service answers.
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    // A call that fails fast leaves reconnecting to gRPC's backup poller, which runs every 5 s; waiting on
    // the channel drives the connection attempts instead.
    m.channel->WaitForConnected(DeadlineIn(250));
    if (Status(i, 500).ok()) return absl::OkStatus();
    int status = 0;
    if (::waitpid(m.pid, &status, WNOHANG) == m.pid) {
      m.pid = -1;
      return absl::InternalError(absl::StrCat("member ", i + 1, " exited before serving; see ", m.log));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return absl::DeadlineExceededError(absl::StrCat("member ", i + 1, " did not serve in time; see ", m.log));
}

// All at once, as a StatefulSet with parallel pod management starts them: every member finds the others
// pristine and bootstraps. (A member started after the others formed the cluster rejoins instead: it leaves
// the configuration and is added back, see allocator-service/rejoin.h.)
// On loopback, a fresh cluster whose member could not listen (a port taken meanwhile by another process)
// starts again afresh on other ports.
absl::Status ClusterHarness::StartAll() {
  bool fresh = !options_.network_namespaces;
  for (const auto& m : members_) {
    std::error_code ec;
    if (std::filesystem::exists(m.data_dir, ec) && !std::filesystem::is_empty(m.data_dir, ec)) fresh = false;
  }
  absl::Status status;
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (attempt > 0) {
      for (int i = 0; i < size(); ++i) {
        Kill(i);
        std::filesystem::remove_all(members_[i].data_dir);
        members_[i].grpc_port = FreeLoopbackPort();
        members_[i].raft_port = FreeLoopbackPort();
        ConnectChannel(i);
      }
    }
    std::vector<size_t> logged;  // where this attempt's lines start in each member's log
    for (const auto& m : members_) {
      std::error_code ec;
      const auto size = std::filesystem::file_size(m.log, ec);
      logged.push_back(ec ? 0 : static_cast<size_t>(size));
    }
    status = StartAllOnce();
    if (status.ok()) return status;
    std::fprintf(stderr, "cluster start, attempt %d: %s\n", attempt + 1, std::string(status.message()).c_str());
    bool port_taken = false;
    for (int i = 0; i < size(); ++i) {
      const std::string log = Slurp(members_[i].log);
      const std::string since = log.substr(std::min(logged[static_cast<size_t>(i)], log.size()));
      for (const char* refusal : {"cannot listen on", "cannot serve gRPC on"}) {
        if (since.find(refusal) != std::string::npos) port_taken = true;
      }
    }
    if (!fresh || !port_taken) return status;
  }
  return status;
}

absl::Status ClusterHarness::StartAllOnce() {
  for (int i = 0; i < size(); ++i) {
    if (absl::Status s = Spawn(i); !s.ok()) return s;
  }
  for (int i = 0; i < size(); ++i) {
    if (absl::Status s = AwaitServing(i); !s.ok()) return s;
  }
  return absl::OkStatus();
}

void ClusterHarness::Kill(int i) {
  auto& m = members_[i];
  if (m.pid <= 0) return;
  ::kill(m.pid, SIGKILL);
  int status = 0;
  ::waitpid(m.pid, &status, 0);
  m.pid = -1;
}

void ClusterHarness::Wipe(int i) {
  std::error_code ec;
  std::filesystem::remove_all(members_[i].data_dir, ec);
}

namespace {

// Calls `method` of the Cluster service on `channel` with an empty request, within `timeout_ms`.
template <typename Response, typename Request>
absl::StatusOr<Response> CallCluster(const std::shared_ptr<grpc::Channel>& channel, int timeout_ms,
                                     grpc::Status (v1::Cluster::Stub::*method)(grpc::ClientContext*, const Request&,
                                                                                Response*)) {
  auto stub = v1::Cluster::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(DeadlineIn(timeout_ms));
  Response out;
  grpc::Status s = ((*stub).*method)(&ctx, Request(), &out);
  if (!s.ok()) return absl::UnavailableError(s.error_message());
  return out;
}

}  // namespace

absl::StatusOr<v1::ClusterStatus> ClusterHarness::Status(int i, int timeout_ms) {
  return CallCluster<v1::ClusterStatus, v1::ClusterStatusRequest>(members_[i].channel, timeout_ms,
                                                                  &v1::Cluster::Stub::Status);
}

absl::StatusOr<v1::ChecksumResponse> ClusterHarness::Checksum(int i, int timeout_ms) {
  return CallCluster<v1::ChecksumResponse, v1::ChecksumRequest>(members_[i].channel, timeout_ms,
                                                                &v1::Cluster::Stub::Checksum);
}

std::vector<int> ClusterHarness::RunningMembers() const {
  std::vector<int> out;
  for (int i = 0; i < size(); ++i) {
    if (running(i)) out.push_back(i);
  }
  return out;
}

absl::StatusOr<int> ClusterHarness::WaitForLeader(std::chrono::milliseconds timeout, std::vector<int> among) {
  if (among.empty()) among = RunningMembers();
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string last;
  while (std::chrono::steady_clock::now() < deadline) {
    std::map<uint64_t, int> votes;
    int leader = -1;
    bool all_ready = true;
    for (int i : among) {
      auto st = Status(i, 500);
      if (!st.ok() || !st->ready() || st->leader_id() == 0) {
        all_ready = false;
        last = st.ok() ? absl::StrCat("member ", i + 1, " role ", st->role(), " ready ", st->ready())
                       : std::string(st.status().message());
        break;
      }
      votes[st->leader_id()]++;
      if (st->role() == "leader") leader = i;
    }
    if (all_ready && votes.size() == 1 && leader >= 0 && votes.begin()->first == static_cast<uint64_t>(leader + 1)) {
      return leader;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return absl::DeadlineExceededError(absl::StrCat("no agreed leader in time (last: ", last, ")"));
}

absl::StatusOr<v1::ChecksumResponse> ClusterHarness::WaitConverged(std::chrono::milliseconds timeout,
                                                                   std::vector<int> among) {
  if (among.empty()) among = RunningMembers();
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string last;
  while (std::chrono::steady_clock::now() < deadline) {
    std::vector<v1::ChecksumResponse> sums;
    bool ok = true;
    for (int i : among) {
      if (!ok) break;
      auto c = Checksum(i);
      if (!c.ok()) {
        ok = false;
        last = std::string(c.status().message());
      } else {
        sums.push_back(*c);
      }
    }
    if (ok && !sums.empty()) {
      bool same = true;
      for (const auto& c : sums) {
        same = same && c.applied_index() == sums[0].applied_index() && c.checksum() == sums[0].checksum();
      }
      if (same) return sums[0];
      // Equal index must mean equal state: that is the check that matters.
      for (const auto& a : sums) {
        for (const auto& b : sums) {
          if (a.applied_index() == b.applied_index() && a.checksum() != b.checksum()) {
            return absl::DataLossError(absl::StrCat("members ", a.member_id(), " and ", b.member_id(),
                                                    " differ at applied index ", a.applied_index()));
          }
        }
      }
      last = "applied indexes differ";
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return absl::DeadlineExceededError(absl::StrCat("members did not converge in time (last: ", last, ")"));
}

absl::Status ClusterHarness::Isolate(int i) {
  std::vector<int> others;
  for (int j = 0; j < size(); ++j) {
    if (j != i) others.push_back(j);
  }
  return Cut(i, others);
}

absl::Status ClusterHarness::Cut(int at, const std::vector<int>& peers) {
  std::vector<std::string> ips;
  for (int j : peers) ips.push_back(members_[j].ip);
  return DropBetween(at, ips);
}

absl::Status ClusterHarness::CutFromTestHost(int at) { return DropBetween(at, {TestHostIp()}); }

std::string ClusterHarness::TestHostIp() const {
  return members_[0].ip.substr(0, members_[0].ip.rfind('.')) + ".254";
}

absl::Status ClusterHarness::DropBetween(int at, const std::vector<std::string>& ips) {
  if (members_[at].netns.empty()) return absl::FailedPreconditionError("cutting links needs network namespaces");
  const std::string set = absl::StrCat("{ ", absl::StrJoin(ips, ", "), " }");
  const std::string nft = absl::StrCat("ip netns exec ", members_[at].netns, " nft ");
  return Shell(absl::StrCat(nft, "add table inet abode_cut && ", nft,
                            "'add chain inet abode_cut in { type filter hook input priority -10; }' && ", nft,
                            "'add chain inet abode_cut out { type filter hook output priority -10; }' && ", nft,
                            "'add rule inet abode_cut in ip saddr ", set, " drop' && ", nft,
                            "'add rule inet abode_cut out ip daddr ", set, " drop'"));
}

absl::Status ClusterHarness::Heal(int i) {
  return Shell(absl::StrCat("ip netns exec ", members_[i].netns, " nft delete table inet abode_cut"));
}

}  // namespace abode::integration

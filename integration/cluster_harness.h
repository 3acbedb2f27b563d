// A cluster of real abode-allocator processes for replication tests: on loopback with free ports, or each
// member in its own network namespace joined by veth pairs to a bridge (root only), where links between
// members can be cut with nftables. RAII: processes are killed and namespaces, links and data removed
// when the harness goes away, also when a test fails half-way.
#ifndef ABODE_INTEGRATION_CLUSTER_HARNESS_H_
#define ABODE_INTEGRATION_CLUSTER_HARNESS_H_

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/channel.h>

#include "abode/v1/allocator.grpc.pb.h"
#include "abode/v1/cluster.grpc.pb.h"
#include "absl/status/statusor.h"

namespace abode::integration {

struct ClusterOptions {
  int members = 3;
  bool network_namespaces = false;  // REQUIRES: root
  int election_timeout_ms = 600;
  int heartbeat_timeout_ms = 60;
  int snapshot_threshold = 8192;
  int snapshot_trailing = 2048;
  // The allocator's default (0.5) paces snapshots by the size of the state; the tests that lower the
  // threshold want snapshots exactly that often, so a fixed threshold unless a test asks.
  double snapshot_log_ratio = 0;
  int node_lease_ms = 0;  // --node-lease-ms; 0: the allocator's default
  // Members know each other by host name, as a StatefulSet's members do by their DNS names: "localhost" on
  // loopback; with network namespaces, abode-N.abode.test from a hosts file in every member's namespace
  // (/etc/netns/NAMESPACE/hosts, which `ip netns exec` puts over /etc/hosts).
  bool host_names = false;
};

// A program run to its end (argv[0] is its path), with what it wrote to stdout and stderr.
struct ProcessResult {
  int exit_code = -1;  // 128 + signal when killed by one
  std::string out;
  std::string err;
};
ProcessResult RunProcess(const std::vector<std::string>& argv);

class ClusterHarness {
 public:
  // Creates data dirs (and namespaces); starts nothing.
  static absl::StatusOr<std::unique_ptr<ClusterHarness>> Create(std::string binary, ClusterOptions options);
  ~ClusterHarness();
  ClusterHarness(const ClusterHarness&) = delete;
  ClusterHarness& operator=(const ClusterHarness&) = delete;

  int size() const { return static_cast<int>(members_.size()); }
  // Members are numbered 0..size-1; member i has raft id i + 1.
  absl::Status Start(int i);  // Spawn, then AwaitServing
  absl::Status StartAll();
  absl::Status Spawn(int i);  // starts the process and returns at once
  // Runs member i's binary with its usual flags and `extra` to its end (a one-off command such as --recover).
  ProcessResult RunOnce(int i, const std::vector<std::string>& extra);
  absl::Status AwaitServing(int i, std::chrono::milliseconds timeout = std::chrono::seconds(60));
  // Makes room for one more member, started (by Start) with --join: it never bootstraps and waits to be
  // added with Cluster.AddMember. It is not in the initial configuration the other members bootstrap.
  // Returns its member number. Loopback only.
  absl::StatusOr<int> AddJoiner();
  void Kill(int i);   // SIGKILL
  void Wipe(int i);   // removes the member's data dir; REQUIRES: not running
  bool running(int i) const { return members_[i].pid > 0; }
  // The members whose process runs.
  std::vector<int> RunningMembers() const;
  pid_t pid(int i) const { return members_[i].pid; }
  std::string grpc_address(int i) const;
  std::string raft_address(int i) const;
  std::shared_ptr<grpc::Channel> channel(int i) const { return members_[i].channel; }
  const std::string& log_path(int i) const { return members_[i].log; }
  const std::string& data_dir(int i) const { return members_[i].data_dir; }
  // Network namespaces only: the bridge joining the members, and the test process's address on it (a /24;
  // addresses .200 to .249 of it are free for the test's own namespaces).
  const std::string& bridge() const { return bridge_; }
  std::string test_host_ip() const { return TestHostIp(); }

  absl::StatusOr<v1::ClusterStatus> Status(int i, int timeout_ms = 2000);
  absl::StatusOr<v1::ChecksumResponse> Checksum(int i, int timeout_ms = 5000);
  // Polls until a running member reports itself leader and ready, and every other running member in
  // `among` (all running members when empty) agrees and is ready. Returns the leader's member number.
  absl::StatusOr<int> WaitForLeader(std::chrono::milliseconds timeout, std::vector<int> among = {});
  // Polls until the running members in `among` (all running members when empty) report the same applied
  // index and equal checksums at it.
  absl::StatusOr<v1::ChecksumResponse> WaitConverged(std::chrono::milliseconds timeout, std::vector<int> among = {});

  // Network namespaces only: drop all traffic between member i and the other members (the test process
  // still reaches it), and undo that.
  absl::Status Isolate(int i);
  // Drops traffic between member `at` and the members in `peers`, on `at`'s side only (its own input and
  // output); the other members still reach each other. Heal(at) undoes it.
  absl::Status Cut(int at, const std::vector<int>& peers);
  // Drops traffic between member `at` and the test process (the host's address on the bridge), on `at`'s
  // side; the members still reach each other. Heal(at) undoes it.
  absl::Status CutFromTestHost(int at);
  absl::Status Heal(int i);
  // Network namespaces with host names only: moves member i to a new IP address and updates every hosts file,
  // as when a StatefulSet's pod is rescheduled (same name, new address). REQUIRES: member i is not running.
  absl::Status Readdress(int i);

 private:
  absl::Status StartAllOnce();
  absl::Status DropBetween(int at, const std::vector<std::string>& ips);
  std::string TestHostIp() const;
  struct MemberProcess {
    std::string data_dir;
    std::string log;
    std::string ip;
    std::string host;  // how the other members know it: the IP, or a name with ClusterOptions::host_names
    std::string netns;
    int grpc_port = 0;
    int raft_port = 0;
    pid_t pid = -1;
    bool join = false;  // started with --join; not in the initial configuration
    std::shared_ptr<grpc::Channel> channel;
  };

  ClusterHarness(std::string binary, ClusterOptions options);
  absl::Status SetUpNamespaces();
  void TearDownNamespaces();
  std::string Peers() const;
  std::vector<std::string> Argv(int i) const;
  std::string PeerEntry(int i) const;
  void AddMemberSlot();  // data dir, ports and channel of the next member
  absl::Status WriteHostsFiles();
  static std::string VethEnd(const char* side, int i);
  void ConnectChannel(int i);

  std::string binary_;
  ClusterOptions options_;
  std::string root_;
  std::string bridge_;
  std::vector<MemberProcess> members_;
  bool namespaces_up_ = false;
};

// Runs a shell command; OK when it exits 0, else an error holding its output.
absl::Status Shell(const std::string& command);

// The whole text of a file ("" when it cannot be read).
std::string Slurp(const std::string& path);

// Client calls the cluster tests share, against member `member`.
grpc::Status CreatePool(ClusterHarness& c, int member, const std::string& name, const std::string& cidr);
grpc::Status Allocate(ClusterHarness& c, int member, const std::string& pool, const std::string& owner,
                      v1::Allocation* out, int timeout_ms = 3000);
// GetAllocation by owner: linearizable, or the member's own state with `stale`.
grpc::Status GetByOwner(ClusterHarness& c, int member, const std::string& owner, v1::GetAllocationResponse* out,
                        bool stale = false, int timeout_ms = 5000);

}  // namespace abode::integration

#endif  // ABODE_INTEGRATION_CLUSTER_HARNESS_H_

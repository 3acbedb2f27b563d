// A replicated allocator cluster of real abode-allocator processes: forwarding, linearizable and stale
// reads, leader kill -9 under load, wiped-member rejoin by snapshot, all-members restart, node leases
// decided by the leader for nodes streaming to followers, and a minority partition in network namespaces.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <grpcpp/create_channel.h>
#include <gtest/gtest.h>

#include "abode/v1/allocator.grpc.pb.h"
#include "abode/v1/cluster.grpc.pb.h"
#include "abode/v1/nodes.grpc.pb.h"
#include "integration/cluster_harness.h"
#include "integration/cluster_test_support.h"
#include "integration/require_root.h"
#include "test-support/eventually.h"

namespace abode::integration::cluster_testing {
namespace {

TEST(ClusterTest, AnyMemberServesWritesAndReadsWithOneLeader) {
  absl::StatusOr<int> leader;
  auto c = StartedCluster({}, &leader);
  ASSERT_NE(c, nullptr);
  const int follower = (*leader + 1) % c->size();

  // Status: every member, roles and addresses, one leader.
  auto st = c->Status(follower);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->member_id(), static_cast<uint64_t>(follower + 1));
  EXPECT_EQ(st->role(), "follower");
  EXPECT_EQ(st->leader_id(), static_cast<uint64_t>(*leader + 1));
  EXPECT_EQ(st->leader_address(), c->grpc_address(*leader));
  ASSERT_EQ(st->members_size(), 3);
  int leaders = 0;
  for (const auto& m : st->members()) {
    EXPECT_EQ(m.grpc_address(), c->grpc_address(static_cast<int>(m.id()) - 1));
    leaders += m.role() == "leader";
  }
  EXPECT_EQ(leaders, 1);

  // A write through a follower is forwarded; a linearizable read on another follower sees it at once.
  ASSERT_TRUE(CreatePool(*c, follower, "p", "10.0.0.0/16").ok());
  for (int i = 0; i < 30; ++i) {
    const int writer = i % c->size();
    const int reader = (i + 1) % c->size();
    v1::Allocation a;
    const std::string owner = "owner-" + std::to_string(i);
    ASSERT_TRUE(Allocate(*c, writer, "p", owner, &a).ok()) << "via member " << writer + 1;
    v1::GetAllocationResponse got;
    ASSERT_TRUE(GetByOwner(*c, reader, owner, &got).ok());
    ASSERT_EQ(got.allocations_size(), 1) << "member " << reader + 1 << " read before applying a write";
    EXPECT_EQ(got.allocations(0).address(), a.address());
  }
  // Validation errors and outcomes travel back through forwarding unchanged.
  EXPECT_EQ(CreatePool(*c, follower, "p", "10.1.0.0/16").error_code(), grpc::StatusCode::ALREADY_EXISTS);
  v1::Allocation none;
  EXPECT_EQ(Allocate(*c, follower, "nope", "x", &none).error_code(), grpc::StatusCode::NOT_FOUND);
  // A stale read is answered from the member's own state.
  v1::GetAllocationResponse stale;
  EXPECT_TRUE(GetByOwner(*c, follower, "owner-0", &stale, true).ok());
  // A command added after the first release goes through once every member lists it (the version gate).
  bool lists_many = false;
  for (uint32_t op : st->known_commands()) lists_many |= op == static_cast<uint32_t>(v1::Command::kAllocateMany);
  EXPECT_TRUE(lists_many);
  {
    auto alloc = v1::Allocator::NewStub(c->channel(follower));
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(10000));
    v1::AllocateManyRequest req;
    req.set_owner("many");
    req.add_items()->set_pool("p");
    v1::AllocateManyResponse resp;
    const grpc::Status s = alloc->AllocateMany(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(resp.allocations_size(), 1);
  }

  // Leadership moves on request, and writes follow it. On a loaded machine a transfer can lose to an
  // ordinary election; ask again (a bounded number of times) until the requested member leads.
  auto moved = c->WaitForLeader(seconds(30));
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto cluster = v1::Cluster::NewStub(c->channel(follower));
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(10000));
    v1::TransferLeadershipRequest treq;
    treq.set_id(follower + 1);
    v1::ClusterStatus after;
    const grpc::Status transferred = cluster->TransferLeadership(&ctx, treq, &after);
    moved = c->WaitForLeader(seconds(30));
    if (transferred.ok() && moved.ok() && *moved == follower) break;
  }
  ASSERT_TRUE(moved.ok()) << moved.status();
  EXPECT_EQ(*moved, follower);
  v1::Allocation b;
  ASSERT_TRUE(Allocate(*c, *leader, "p", "after-transfer", &b).ok());

  std::map<std::string, std::string> none_acked;
  ExpectConsistent(*c, "p", none_acked);
  auto sum = c->Checksum(0);
  ASSERT_TRUE(sum.ok());
  EXPECT_EQ(sum->allocations(), 32u);
}

TEST(ClusterTest, LeaderKill9UnderLoadLosesNoAcknowledgedAllocation) {
  ClusterOptions o;
  o.snapshot_threshold = 256;  // compaction happens during the run too
  o.snapshot_trailing = 64;
  absl::StatusOr<int> leader;
  auto c = StartedCluster(o, &leader);
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(CreatePool(*c, 0, "storm", "10.8.0.0/16").ok());

  Load load(*c, "storm", 12);
  ASSERT_TRUE(test_support::Eventually([&] { return load.acks() >= 500; }, seconds(20)))
      << "no sustained load before the kill: " << load.acks() << " acknowledged";

  const int64_t killed_at = Load::NowMs();
  c->Kill(*leader);
  // A new leader serves: some allocation is acknowledged after the kill.
  const int acks_at_kill = load.acks();
  test_support::Eventually([&] { return load.acks() > acks_at_kill + 50; }, seconds(30), milliseconds(10));
  int64_t first_ack_after = 0;
  {
    // The first acknowledgement after the kill is at most last_ack_ms; measure from the survivors' view.
    auto st = c->WaitForLeader(seconds(30));
    ASSERT_TRUE(st.ok()) << st.status();
    first_ack_after = load.last_ack_ms() - killed_at;
  }
  EXPECT_GT(load.acks(), acks_at_kill + 50) << "no writes acknowledged after the leader was killed";
  std::this_thread::sleep_for(milliseconds(500));
  load.Stop();
  std::printf("failover: %d acks before the kill, %d in all; writes served again within %lld ms\n", acks_at_kill,
              load.acks(), static_cast<long long>(first_ack_after));

  ASSERT_TRUE(c->Start(*leader).ok());
  EXPECT_TRUE(load.conflicts().empty()) << "an owner got two different addresses";
  ExpectConsistent(*c, "storm", load.acknowledged());
}

TEST(ClusterTest, NewLeaderServesWithinThreeSecondsOfKill9) {
  absl::StatusOr<int> leader;
  auto c = StartedCluster({}, &leader);
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(CreatePool(*c, 0, "p", "10.9.0.0/16").ok());
  const int survivor = (*leader + 1) % c->size();
  v1::Allocation a;
  ASSERT_TRUE(Allocate(*c, survivor, "p", "before", &a).ok());

  const auto killed = std::chrono::steady_clock::now();
  c->Kill(*leader);
  int tries = 0;
  ASSERT_TRUE(test_support::Eventually(
      [&] {
        ++tries;
        return Allocate(*c, survivor, "p", "after", &a, 1000).ok();
      },
      seconds(30)))
      << "no leader after the kill";
  const auto took = std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - killed);
  std::printf("write served %lld ms after kill -9 of the leader (%d tries)\n", static_cast<long long>(took.count()),
              tries);
  EXPECT_LE(took.count(), 3000);
}

// A node client streaming to one member: registers, heartbeats every `heartbeat_ms` until closed, and can
// report an assignment status.
class StreamingNode {
 public:
  StreamingNode(std::shared_ptr<grpc::Channel> channel, const std::string& name, int heartbeat_ms)
      : stub_(v1::Nodes::NewStub(std::move(channel))) {
    stream_ = stub_->WatchAssignments(&ctx_);
    v1::WatchAssignmentsRequest start;
    start.mutable_start()->set_node(name);
    start.mutable_start()->mutable_registration()->set_name(name);
    stream_->Write(start);
    reader_ = std::thread([this] {
      v1::WatchAssignmentsResponse r;
      while (stream_->Read(&r)) {
      }
    });
    heartbeats_ = std::thread([this, heartbeat_ms] {
      std::unique_lock<std::mutex> lock(mu_);
      while (!cv_.wait_for(lock, milliseconds(heartbeat_ms), [this] { return closed_; })) {
        v1::WatchAssignmentsRequest hb;
        hb.mutable_heartbeat();
        stream_->Write(hb);
      }
    });
  }
  ~StreamingNode() { Close(); }
  void Report(const std::string& id, const std::string& message) {
    std::lock_guard<std::mutex> lock(mu_);
    v1::WatchAssignmentsRequest r;
    auto* s = r.mutable_status()->add_statuses();
    s->set_id(id);
    s->set_revision(1);
    s->set_state(v1::ASSIGNMENT_STATE_ERROR);
    s->set_message(message);
    stream_->Write(r);
  }
  // Ends the stream the way a node client that dies does: no more heartbeats, connection gone.
  void Close() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (closed_) return;
      closed_ = true;
    }
    cv_.notify_all();
    heartbeats_.join();
    ctx_.TryCancel();
    reader_.join();
  }

 private:
  std::unique_ptr<v1::Nodes::Stub> stub_;
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::WatchAssignmentsRequest, v1::WatchAssignmentsResponse>> stream_;
  std::mutex mu_;  // writes
  std::condition_variable cv_;
  bool closed_ = false;
  std::thread reader_, heartbeats_;
};

absl::StatusOr<v1::Node> GetNode(ClusterHarness& c, int member, const std::string& name, bool stale = false) {
  auto stub = v1::Nodes::NewStub(c.channel(member));
  grpc::ClientContext ctx;
  ctx.set_deadline(DeadlineIn(5000));
  if (stale) ctx.AddMetadata("abode-read-stale", "true");
  v1::GetNodeRequest req;
  req.set_name(name);
  v1::Node out;
  grpc::Status s = stub->GetNode(&ctx, req, &out);
  if (!s.ok()) return absl::UnavailableError(s.error_message());
  return out;
}

// Polls member `member` until `pred` holds for the node (up to `limit`).
bool WaitNode(ClusterHarness& c, int member, const std::string& name, const std::function<bool(const v1::Node&)>& pred,
              milliseconds limit) {
  return test_support::Eventually(
      [&] {
        auto n = GetNode(c, member, name);
        return n.ok() && pred(*n);
      },
      limit, milliseconds(50));
}

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(ClusterTest, NodeLeasesAreDecidedByTheLeaderForNodesStreamingToFollowers) {
  ClusterOptions o;
  // Leases long enough that a heartbeat held up on a busy machine (ctest runs tests in parallel) does not
  // look like a dead node.
  o.node_lease_ms = 3000;
  absl::StatusOr<int> leader;
  auto c = StartedCluster(o, &leader);
  ASSERT_NE(c, nullptr);
  const int follower = (*leader + 1) % c->size();
  const int other = (*leader + 2) % c->size();

  // A node streams to a follower and heartbeats every lease/3: it becomes ready and stays ready over
  // several leases, on every member's view (readiness is replicated: one registration, no transitions).
  StreamingNode node(c->channel(follower), "edge-1", o.node_lease_ms / 3);
  ASSERT_TRUE(WaitNode(*c, *leader, "edge-1", [](const v1::Node& n) { return n.ready() && n.connected(); },
                       seconds(30)));
  auto registered = GetNode(*c, *leader, "edge-1");
  ASSERT_TRUE(registered.ok()) << registered.status();
  // Three leases pass on the leader, which hears the node's heartbeats meanwhile (and would expire it had they
  // stopped reaching it).
  const int64_t heard_until = registered->last_heartbeat_unix_ms() + 3 * o.node_lease_ms;
  ASSERT_TRUE(WaitNode(*c, *leader, "edge-1",
                       [&](const v1::Node& n) { return n.last_heartbeat_unix_ms() >= heard_until; }, seconds(30)));
  for (int m = 0; m < c->size(); ++m) {
    auto n = GetNode(*c, m, "edge-1");
    ASSERT_TRUE(n.ok()) << n.status();
    EXPECT_TRUE(n->ready()) << "member " << m + 1;
    EXPECT_EQ(n->revision(), registered->revision()) << "member " << m + 1 << ": readiness changed meanwhile";
    EXPECT_TRUE(n->connected()) << "member " << m + 1;
    EXPECT_GT(n->last_heartbeat_unix_ms(), 0) << "member " << m + 1;
  }

  // A status reported on the follower's stream is visible on every member.
  node.Report("magic/dd-agent", "no route to the agent");
  for (int m = 0; m < c->size(); ++m) {
    EXPECT_TRUE(WaitNode(*c, m, "edge-1",
                         [](const v1::Node& n) {
                           return n.statuses_size() == 1 && n.statuses(0).id() == "magic/dd-agent" &&
                                  n.statuses(0).message() == "no route to the agent";
                         },
                         seconds(10)))
        << "member " << m + 1;
  }

  // The stream dies: the leader expires the lease; the followers only learn it from the log.
  node.Close();
  EXPECT_TRUE(WaitNode(*c, other, "edge-1", [](const v1::Node& n) { return !n.ready() && !n.connected(); },
                       seconds(30)));
  EXPECT_EQ(Count(Slurp(c->log_path(*leader)), "node edge-1: lease expired"), 1u);
  EXPECT_EQ(Count(Slurp(c->log_path(follower)), "node edge-1: lease expired"), 0u);
  EXPECT_EQ(Count(Slurp(c->log_path(other)), "node edge-1: lease expired"), 0u);
}

TEST(ClusterTest, ANewLeaderGivesNodesStreamingToFollowersAFullLease) {
  ClusterOptions o;
  o.node_lease_ms = 1500;
  absl::StatusOr<int> leader;
  auto c = StartedCluster(o, &leader);
  ASSERT_NE(c, nullptr);
  const int follower = (*leader + 1) % c->size();

  StreamingNode node(c->channel(follower), "edge-2", 500);
  ASSERT_TRUE(WaitNode(*c, follower, "edge-2", [](const v1::Node& n) { return n.ready(); }, seconds(30)));
  node.Report("external/web", "address busy");
  ASSERT_TRUE(WaitNode(*c, *leader, "edge-2", [](const v1::Node& n) { return n.statuses_size() == 1; }, seconds(10)));
  auto before = GetNode(*c, follower, "edge-2");
  ASSERT_TRUE(before.ok()) << before.status();

  // The leader dies. Whoever leads next hears the node through the surviving follower's relays (or its own
  // stream) and keeps it ready: no transition over several leases.
  c->Kill(*leader);
  auto next = c->WaitForLeader(seconds(30));
  ASSERT_TRUE(next.ok()) << next.status();
  // The new leader hears the node over three leases of its own.
  const int64_t heard_until =
      std::chrono::duration_cast<milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count() +
      3 * o.node_lease_ms;
  ASSERT_TRUE(WaitNode(*c, *next, "edge-2",
                       [&](const v1::Node& n) { return n.last_heartbeat_unix_ms() >= heard_until; }, seconds(30)));
  auto after = GetNode(*c, follower, "edge-2");
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_TRUE(after->ready());
  EXPECT_EQ(after->revision(), before->revision()) << "readiness changed across the leader change";
  EXPECT_TRUE(after->connected());
  ASSERT_EQ(after->statuses_size(), 1) << "the new leader was told the node's statuses";
  EXPECT_EQ(after->statuses(0).message(), "address busy");

  node.Close();
  EXPECT_TRUE(WaitNode(*c, *next, "edge-2", [](const v1::Node& n) { return !n.ready(); }, seconds(30)));
}

TEST(ClusterTest, NoQuorumAnswersUnavailableWithinTheDeadline) {
  absl::StatusOr<int> leader;
  auto c = StartedCluster({}, &leader);
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(CreatePool(*c, 0, "p", "10.10.0.0/16").ok());
  const int last = (*leader + 1) % c->size();
  for (int i = 0; i < c->size(); ++i) {
    if (i != last) c->Kill(i);
  }
  // Writes fail from the start: the leader is gone (and then no leader is known at all).
  v1::Allocation a;
  grpc::Status s = Allocate(*c, last, "p", "alone", &a, 3000);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  // Once its election timeout passes, the lone member knows no leader and refuses at once, reads too.
  ASSERT_TRUE(test_support::Eventually(
      [&] {
        auto st = c->Status(last);
        EXPECT_TRUE(st.ok()) << st.status();
        return st.ok() && st->leader_id() == 0;
      },
      seconds(30), milliseconds(50)))
      << "the lone member still sees a leader";
  const auto t0 = std::chrono::steady_clock::now();
  s = Allocate(*c, last, "p", "alone", &a, 3000);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  EXPECT_NE(s.error_message().find("no raft leader"), std::string::npos) << s.error_message();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, milliseconds(1000));
  v1::GetAllocationResponse got;
  grpc::Status r = GetByOwner(*c, last, "alone", &got);
  EXPECT_EQ(r.error_code(), grpc::StatusCode::UNAVAILABLE) << r.error_message();
  r = GetByOwner(*c, last, "alone", &got, /*stale=*/true);
  EXPECT_EQ(r.error_code(), grpc::StatusCode::UNAVAILABLE) << r.error_message();
}

TEST(ClusterTest, WipedMemberRejoinsBySnapshotInstall) {
  ClusterOptions o;
  o.snapshot_threshold = 32;
  o.snapshot_trailing = 8;
  absl::StatusOr<int> leader;
  auto c = StartedCluster(o, &leader);
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(CreatePool(*c, *leader, "p", "10.11.0.0/16").ok());
  std::map<std::string, std::string> acked;
  auto write = [&](int from, int to) {
    for (int i = from; i < to; ++i) {
      v1::Allocation a;
      const std::string owner = "w-" + std::to_string(i);
      grpc::Status s = Allocate(*c, *leader, "p", owner, &a);
      ASSERT_TRUE(s.ok()) << s.error_message();
      acked[owner] = a.address();
    }
  };
  write(0, 100);
  const int victim = (*leader + 1) % c->size();
  c->Kill(victim);
  c->Wipe(victim);
  write(100, 250);  // the leader compacts its log past everything the wiped member could replay
  ASSERT_TRUE(c->Start(victim).ok());
  ExpectConsistent(*c, "p", acked);
  EXPECT_NE(Slurp(c->log_path(victim)).find("installed a snapshot"), std::string::npos)
      << "the wiped member caught up without a snapshot install";
  // One cluster, not two: the rejoined member follows the same leader.
  auto st = c->Status(victim);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->leader_id(), static_cast<uint64_t>(*leader + 1));
  // It left the configuration before it started, and is a voter again once caught up.
  const std::string log = Slurp(c->log_path(victim));
  EXPECT_NE(log.find("left the configuration"), std::string::npos) << log;
  ExpectVoterAgain(*c, *leader, victim);
  EXPECT_FALSE(std::filesystem::exists(c->data_dir(victim) + "/rejoin-pending"));
}

// The danger of a wiped voter: it grants its vote to any candidate, so a candidate missing entries the wiped
// member had acknowledged could win with it. Here the leader is down as well: the one member left must not
// become leader with the wiped member's vote. Once the old leader is back, the wiped member is removed,
// added back and caught up, and nothing acknowledged is lost.
TEST(ClusterTest, WipedMemberDoesNotVoteBeforeItIsAddedBack) {
  absl::StatusOr<int> leader;
  auto c = StartedCluster({}, &leader);
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(CreatePool(*c, *leader, "p", "10.14.0.0/16").ok());
  std::map<std::string, std::string> acked;
  for (int i = 0; i < 40; ++i) {
    v1::Allocation a;
    const std::string owner = "v-" + std::to_string(i);
    ASSERT_TRUE(Allocate(*c, *leader, "p", owner, &a).ok());
    acked[owner] = a.address();
  }
  const int victim = (*leader + 1) % c->size();
  const int other = (*leader + 2) % c->size();
  c->Kill(victim);
  c->Wipe(victim);
  c->Kill(*leader);
  ASSERT_TRUE(c->Spawn(victim).ok());

  // Watch `other` campaign while the wiped member is up and refusing to vote: it must never win. The watch
  // ends once `other` was seen campaigning and the wiped member had twice failed to leave the configuration
  // (no quorum), i.e. both were up together for several election timeouts (600 ms here).
  bool campaigned = false;
  int refusals = 0;
  const auto watch_start = std::chrono::steady_clock::now();
  while (!campaigned || refusals < 2) {
    auto st = c->Status(other);
    ASSERT_TRUE(st.ok()) << st.status();
    ASSERT_NE(st->role(), "leader") << "a member was elected with the vote of a wiped member";
    // Until its election timeout passes, `other` still names the killed leader; never anyone else.
    ASSERT_TRUE(st->leader_id() == 0 || st->leader_id() == static_cast<uint64_t>(*leader + 1)) << st->leader_id();
    campaigned = campaigned || st->role() == "candidate";
    const std::string log = Slurp(c->log_path(victim));
    refusals = 0;
    for (size_t at = log.find("rejoin: "); at != std::string::npos; at = log.find("rejoin: ", at + 1)) ++refusals;
    ASSERT_LT(std::chrono::steady_clock::now() - watch_start, seconds(60))
        << "campaigned: " << campaigned << ", failed removals: " << refusals << "\n" << log;
    std::this_thread::sleep_for(milliseconds(50));
  }
  auto st = c->Status(other);
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ(st->leader_id(), 0u);
  EXPECT_NE(Slurp(c->log_path(victim)).find("leaving the configuration"), std::string::npos);

  ASSERT_TRUE(c->Start(*leader).ok());
  ASSERT_TRUE(c->AwaitServing(victim).ok());
  auto now = c->WaitForLeader(seconds(30));
  ASSERT_TRUE(now.ok()) << now.status();
  ExpectVoterAgain(*c, *now, victim);
  ExpectConsistent(*c, "p", acked);
}

struct RaftSocket {
  std::string what;
  int nodelay = -1;           // TCP_NODELAY
  unsigned user_timeout = 0;  // TCP_USER_TIMEOUT, ms
};

// The raft sockets of a member (its listener, the connections it accepted and the ones it opened), each with
// its settings, copied out of the running process with pidfd_getfd (the test is its parent).
std::vector<RaftSocket> RaftSockets(ClusterHarness& c, int i) {
  std::set<int> raft_ports;
  for (int m = 0; m < c.size(); ++m) {
    const std::string a = c.raft_address(m);
    raft_ports.insert(std::stoi(a.substr(a.rfind(':') + 1)));
  }
  const std::string own = c.raft_address(i);
  const int own_port = std::stoi(own.substr(own.rfind(':') + 1));
  std::vector<RaftSocket> out;
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, c.pid(i), 0));
  if (pidfd < 0) {
    ADD_FAILURE() << "pidfd_open: " << std::strerror(errno);
    return out;
  }
  for (const auto& entry : std::filesystem::directory_iterator(absl::StrCat("/proc/", c.pid(i), "/fd"))) {
    const int target = std::stoi(entry.path().filename().string());
    const int fd = static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd, target, 0));
    if (fd < 0) continue;
    sockaddr_in local{}, peer{};
    socklen_t len = sizeof(local);
    int type = 0;
    socklen_t type_len = sizeof(type);
    const bool tcp4 = ::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &type_len) == 0 && type == SOCK_STREAM &&
                      ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) == 0 && local.sin_family == AF_INET;
    if (tcp4) {
      len = sizeof(peer);
      const bool connected = ::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) == 0;
      const int local_port = ntohs(local.sin_port);
      const int peer_port = connected ? ntohs(peer.sin_port) : 0;
      // Listener and accepted connections on its own raft port; connections it opened to another's.
      if (local_port == own_port || (connected && raft_ports.count(peer_port) > 0)) {
        RaftSocket& r = out.emplace_back();
        r.what = absl::StrCat("fd ", target, " ", local_port, (connected ? absl::StrCat("->", peer_port) : " (listening)"));
        socklen_t n = sizeof(r.nodelay);
        ::getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &r.nodelay, &n);
        n = sizeof(r.user_timeout);
        ::getsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &r.user_timeout, &n);
      }
    }
    ::close(fd);
  }
  ::close(pidfd);
  return out;
}

// libraft's transport leaves Nagle's algorithm on; with one-way connections and delayed acknowledgements
// that held raft messages back by up to 40 ms. Every raft socket of every member sends without that delay.
// Every raft socket sends small messages at once (no Nagle delay) and gives up on a peer that stops
// acknowledging after three election timeouts (a deleted pod's address answers nothing, not even a reset).
TEST(ClusterTest, RaftSocketsDisableNagleAndGiveUpOnSilentPeers) {
  absl::StatusOr<int> leader;
  auto c = StartedCluster({}, &leader);
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(CreatePool(*c, *leader, "p", "10.15.0.0/16").ok());
  for (int i = 0; i < c->size(); ++i) {
    const auto sockets = RaftSockets(*c, i);
    // A listener and a connection each way with the leader; the leader has both with every member.
    const size_t expected = i == *leader ? 1u + 2u * static_cast<size_t>(c->size() - 1) : 3u;
    EXPECT_GE(sockets.size(), expected) << "member " << i + 1;
    for (const auto& r : sockets) {
      EXPECT_EQ(r.nodelay, 1) << "member " << i + 1 << ": " << r.what;
      EXPECT_EQ(r.user_timeout, 3u * static_cast<unsigned>(ClusterOptions{}.election_timeout_ms))
          << "member " << i + 1 << ": " << r.what;
    }
  }
}

TEST(ClusterTest, AllMembersRestartKeepsTheClusterAndItsState) {
  ClusterOptions o;
  o.snapshot_threshold = 64;
  o.snapshot_trailing = 16;
  absl::StatusOr<int> leader;
  auto c = StartedCluster(o, &leader);
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(CreatePool(*c, 1, "p", "10.12.0.0/16").ok());
  std::map<std::string, std::string> acked;
  for (int i = 0; i < 150; ++i) {
    v1::Allocation a;
    const std::string owner = "r-" + std::to_string(i);
    ASSERT_TRUE(Allocate(*c, i % 3, "p", owner, &a).ok());
    acked[owner] = a.address();
  }
  auto before = c->WaitConverged(seconds(30));
  ASSERT_TRUE(before.ok()) << before.status();
  const auto term_before = c->Status(*leader)->term();
  for (int i = 0; i < c->size(); ++i) c->Kill(i);
  std::vector<size_t> logged_before_restart;
  for (int i = 0; i < c->size(); ++i) logged_before_restart.push_back(Slurp(c->log_path(i)).size());
  ASSERT_TRUE(c->StartAll().ok());
  auto again = c->WaitForLeader(seconds(30));
  ASSERT_TRUE(again.ok()) << again.status();
  auto st = c->Status(*again);
  ASSERT_TRUE(st.ok());
  EXPECT_GT(st->term(), term_before) << "the restarted cluster forgot its term";
  EXPECT_EQ(st->members_size(), 3);
  for (int i = 0; i < c->size(); ++i) {
    // (The first start may have been retried on other ports, bootstrapping afresh: only the restart counts.)
    const std::string restart_log = Slurp(c->log_path(i)).substr(logged_before_restart[static_cast<size_t>(i)]);
    EXPECT_EQ(restart_log.find("bootstrapped"), std::string::npos) << "member " << i + 1 << " bootstrapped again";
  }
  ExpectConsistent(*c, "p", acked);
  v1::Allocation a;
  EXPECT_TRUE(Allocate(*c, 0, "p", "after-restart", &a).ok());
  EXPECT_EQ(acked.count(a.address()), 0u);
}

// Starts every member, waits for a leader, creates pool "p" on `cidr` and allocates owner "before" in it.
// Returns the leader.
absl::StatusOr<int> StartWithOneAllocation(ClusterHarness& c, const std::string& cidr, v1::Allocation* before) {
  if (absl::Status s = c.StartAll(); !s.ok()) return s;
  auto leader = c.WaitForLeader(seconds(30));
  if (!leader.ok()) return leader.status();
  if (grpc::Status s = CreatePool(c, *leader, "p", cidr); !s.ok()) return absl::InternalError(s.error_message());
  if (grpc::Status s = Allocate(c, *leader, "p", "before", before); !s.ok()) return absl::InternalError(s.error_message());
  return leader;
}

// Members given by host name, as a StatefulSet names them: the names are resolved (off the raft loop), a
// leader is elected, and a write through a follower, forwarded by name, commits on every member.
TEST(ClusterTest, MembersKnownByHostNameFormACluster) {
  ClusterOptions o;
  o.host_names = true;
  absl::StatusOr<int> leader;
  auto c = StartedCluster(o, &leader);
  ASSERT_NE(c, nullptr);
  auto st = c->Status(*leader);
  ASSERT_TRUE(st.ok()) << st.status();
  for (const auto& m : st->members()) EXPECT_EQ(m.raft_address().rfind("localhost:", 0), 0u) << m.raft_address();
  const int follower = (*leader + 1) % c->size();
  ASSERT_TRUE(CreatePool(*c, follower, "named", "10.21.0.0/16").ok());
  v1::Allocation a;
  ASSERT_TRUE(Allocate(*c, follower, "named", "by-name", &a).ok());
  ExpectConsistent(*c, "named", {{"by-name", a.address()}});
}

// A rescheduled StatefulSet pod keeps its name and gets a new address. The other members find it again by
// name: once it is back, a quorum that needs it commits.
TEST(ClusterDnsTest, AMemberThatMovedToANewAddressIsFoundByName) {
  ABODE_REQUIRE_ROOT("the DNS test needs root (network namespaces) in CI",
                     "needs root for network namespaces; runs in CI");
  ClusterOptions o;
  o.network_namespaces = true;
  o.host_names = true;
  auto h = ClusterHarness::Create(ABODE_ALLOCATOR_BIN, o);
  ASSERT_TRUE(h.ok()) << h.status();
  ClusterHarness& c = **h;
  v1::Allocation a;
  auto leader = StartWithOneAllocation(c, "10.22.0.0/16", &a);
  ASSERT_TRUE(leader.ok()) << leader.status();
  std::map<std::string, std::string> acked = {{"before", a.address()}};

  const int moved = (*leader + 1) % c.size();
  const int other = (*leader + 2) % c.size();
  c.Kill(moved);
  ASSERT_TRUE(c.Readdress(moved).ok());
  ASSERT_TRUE(c.Start(moved).ok());
  // Without the third member, every commit needs the moved one.
  c.Kill(other);
  auto now_leading = c.WaitForLeader(seconds(60));
  ASSERT_TRUE(now_leading.ok()) << now_leading.status();
  grpc::Status s;
  for (int attempt = 0; attempt < 10; ++attempt) {
    s = Allocate(c, *now_leading, "p", "after", &a, 5000);
    if (s.ok()) break;
  }
  ASSERT_TRUE(s.ok()) << s.error_message();
  acked["after"] = a.address();
  ExpectConsistent(c, "p", acked);
}

// Each member in its own network namespace; the leader is cut off from the other two with nftables.
TEST(ClusterPartitionTest, IsolatedLeaderCannotCommitAndConvergesWhenHealed) {
  ABODE_REQUIRE_ROOT("the partition test needs root (network namespaces) in CI",
                     "needs root for network namespaces and nftables; runs in CI");
  ClusterOptions o;
  o.network_namespaces = true;
  auto h = ClusterHarness::Create(ABODE_ALLOCATOR_BIN, o);
  ASSERT_TRUE(h.ok()) << h.status();
  ClusterHarness& c = **h;
  v1::Allocation a;
  auto leader = StartWithOneAllocation(c, "10.13.0.0/16", &a);
  ASSERT_TRUE(leader.ok()) << leader.status();

  const int cut = *leader;
  ASSERT_TRUE(c.Isolate(cut).ok());
  std::vector<int> majority;
  for (int i = 0; i < c.size(); ++i) {
    if (i != cut) majority.push_back(i);
  }
  // The majority elects a leader of its own and commits.
  auto fresh = c.WaitForLeader(seconds(30), majority);
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  ASSERT_NE(*fresh, cut);
  ASSERT_TRUE(Allocate(c, majority[0], "p", "majority", &a).ok());
  // The cut-off member cannot commit: its writes fail, UNAVAILABLE within their deadline.
  const auto t0 = std::chrono::steady_clock::now();
  grpc::Status s = Allocate(c, cut, "p", "minority", &a, 4000);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, milliseconds(4500));
  v1::GetAllocationResponse got;
  EXPECT_FALSE(GetByOwner(c, cut, "majority", &got).ok()) << "a linearizable read on the cut-off member";

  ASSERT_TRUE(c.Heal(cut).ok());
  auto healed = c.WaitForLeader(seconds(30));
  ASSERT_TRUE(healed.ok()) << healed.status();
  std::map<std::string, std::string> acked = {{"majority", a.address()}};
  auto got_majority = GetByOwner(c, cut, "majority", &got);
  ASSERT_TRUE(got_majority.ok()) << got_majority.error_message();
  ASSERT_EQ(got.allocations_size(), 1);
  ExpectConsistent(c, "p", {});
  auto all = AllAllocations(c, cut, "p");
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->count("minority"), 0u) << "a write the minority could not commit appeared";
}

}  // namespace
}  // namespace abode::integration::cluster_testing

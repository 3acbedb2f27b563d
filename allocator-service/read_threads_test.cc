// Where reads run: every linearizable read's query and the checksum dump run on the read executor's threads
// (recorded through the executor's observer), in the SCHED_IDLE class by default or at the configured nice
// value, while every other thread keeps the process's policy and nice value, and a write is answered while
// every read thread is held. And where writes are answered: a lone caller by the raft loop that applied its
// entry, the callers of a larger entry on the completion threads.
#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/create_channel.h>
#include <gtest/gtest.h>

#include "abode/v1/allocator.grpc.pb.h"
#include "abode/v1/cluster.grpc.pb.h"
#include "abode/v1/pools.grpc.pb.h"
#include "absl/synchronization/mutex.h"
#include "allocator-service/server.h"
#include "allocator-service/test_server.h"
#include "allocator-service/thread_priority.h"
#include "replication/clock.h"
#include "test-support/eventually.h"
#include "test-support/temp_dir.h"

namespace abode::allocator {
namespace {

constexpr int kReadNice = 13;

struct ThreadSeen {
  std::string name;
  int nice = 0;
  int policy = 0;
  std::string cgroup;  // in the cpu controller's hierarchy
};

// Every thread of this process: its name, nice value and scheduling policy, as the kernel reports them.
std::vector<ThreadSeen> ProcessThreads() {
  std::vector<ThreadSeen> out;
  DIR* dir = opendir("/proc/self/task");
  if (dir == nullptr) return out;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    const pid_t tid = std::stoi(e->d_name);
    std::ifstream comm(std::string("/proc/self/task/") + e->d_name + "/comm");
    std::string name;
    std::getline(comm, name);
    auto nice = ThreadNice(tid);
    auto policy = ThreadPolicy(tid);
    auto cgroup = ThreadCpuCgroup(tid);
    // A thread that ended meanwhile is skipped.
    if (!name.empty() && nice.ok() && policy.ok() && cgroup.ok()) out.push_back({name, *nice, *policy, *cgroup});
  }
  closedir(dir);
  return out;
}

std::string ThisThreadName() {
  char name[16] = {};
  pthread_getname_np(pthread_self(), name, sizeof(name));
  return name;
}

class ReadThreadsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerOptions o = LocalTestServerOptions(dir_.path() + "/data", &clock_);
    o.timers = &timers_;
    o.read_threads = 1;
    ConfigureReads(o);
    o.read_observer = [this] { ObserveRead(); };
    absl::Status started = StartLocalTestServer(o, &server_);
    ASSERT_TRUE(started.ok()) << started;
    auto channel = LocalChannelTo(*server_);
    pools_ = v1::Pools::NewStub(channel);
    alloc_ = v1::Allocator::NewStub(channel);
    cluster_ = v1::Cluster::NewStub(channel);

    ASSERT_TRUE(CreateTestPool(*pools_, "p", "10.0.0.0/24").ok());
    ASSERT_TRUE(Allocate("pod-a").ok());
  }
  void TearDown() override {
    Open();
    server_.reset();
  }
  // The read threads' priority: the normal policy at kReadNice here, SCHED_IDLE in IdleReadThreadsTest.
  virtual void ConfigureReads(ServerOptions& o) {
    o.read_idle = false;
    o.read_nice = kReadNice;
  }

  // On the read thread, before each read: records the thread and waits while the gate is closed.
  void ObserveRead() {
    absl::MutexLock lock(&mu_);
    threads_.push_back(ThisThreadName());
    auto nice = ThreadNice(gettid());
    nices_.push_back(nice.ok() ? *nice : -100);
    policies_.push_back(sched_getscheduler(0));
    ++entered_;
    mu_.Await(absl::Condition(+[](bool* open) { return *open; }, &gate_open_));
  }
  void Close() {
    absl::MutexLock lock(&mu_);
    gate_open_ = false;
  }
  void Open() {
    absl::MutexLock lock(&mu_);
    gate_open_ = true;
  }
  void AwaitEntered(int n) {
    absl::MutexLock lock(&mu_);
    auto reached = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return entered_ >= n; };
    mu_.Await(absl::Condition(&reached));
  }
  std::vector<std::string> threads() {
    absl::MutexLock lock(&mu_);
    return threads_;
  }
  std::vector<int> nices() {
    absl::MutexLock lock(&mu_);
    return nices_;
  }
  std::vector<int> policies() {
    absl::MutexLock lock(&mu_);
    return policies_;
  }
  // Lists and allocates in turn, then takes a checksum: reads on the read thread, writes on the others,
  // gRPC starting threads as it needs them meanwhile.
  void ListAndAllocate(const std::string& prefix) {
    for (int i = 0; i < 20; ++i) {
      ASSERT_TRUE(List().ok());
      ASSERT_TRUE(Allocate(prefix + std::to_string(i)).ok());
    }
    ASSERT_TRUE(Checksum().ok());
  }

  grpc::Status Allocate(const std::string& owner) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::AllocateRequest req;
    req.set_pool("p");
    req.set_owner(owner);
    v1::Allocation a;
    return alloc_->Allocate(&ctx, req, &a);
  }
  grpc::Status List() {
    grpc::ClientContext ctx;
    v1::ListAllocationsRequest req;
    req.set_pool("p");
    v1::ListAllocationsResponse resp;
    return alloc_->ListAllocations(&ctx, req, &resp);
  }
  grpc::Status Checksum() {
    grpc::ClientContext ctx;
    v1::ChecksumResponse resp;
    return cluster_->Checksum(&ctx, v1::ChecksumRequest(), &resp);
  }

  test_support::TempDir dir_;
  replication::FakeClock clock_{1'700'000'000'000};
  ManualTimers timers_;
  std::unique_ptr<AllocatorServer> server_;
  std::unique_ptr<v1::Pools::Stub> pools_;
  std::unique_ptr<v1::Allocator::Stub> alloc_;
  std::unique_ptr<v1::Cluster::Stub> cluster_;

  absl::Mutex mu_;
  bool gate_open_ ABSL_GUARDED_BY(mu_) = true;
  int entered_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::string> threads_ ABSL_GUARDED_BY(mu_);
  std::vector<int> nices_ ABSL_GUARDED_BY(mu_);     // the kernel's nice value of each read's thread
  std::vector<int> policies_ ABSL_GUARDED_BY(mu_);  // the scheduling policy of each read's thread
};

class IdleReadThreadsTest : public ReadThreadsTest {
 protected:
  void ConfigureReads(ServerOptions& o) override { o.read_idle = ServerOptions().read_idle; }
};

// Where the cpu controller's cgroup v1 hierarchy is mounted ("" when it is not, or is not writable).
std::string CpuCgroupV1Root() {
  std::ifstream mounts("/proc/self/mounts");
  std::string device, dir, type, options;
  while (mounts >> device >> dir >> type >> options) {
    std::string rest;
    std::getline(mounts, rest);
    if (type != "cgroup") continue;
    std::istringstream names(options);
    for (std::string name; std::getline(names, name, ',');) {
      if (name == "cpu" && access((dir + "/tasks").c_str(), W_OK) == 0) return dir;
    }
  }
  return "";
}

// The read threads join a cgroup of their own (one with cpu.idle 1, as an operator would make it).
class CgroupReadThreadsTest : public ReadThreadsTest {
 protected:
  void SetUp() override {
    const std::string root = CpuCgroupV1Root();
    if (root.empty()) GTEST_SKIP() << "no writable cgroup v1 cpu hierarchy here (needs root)";
    name_ = "/abode-read-test-" + std::to_string(getpid());
    cgroup_ = root + name_;
    ASSERT_EQ(mkdir(cgroup_.c_str(), 0755), 0) << cgroup_ << ": " << std::strerror(errno);
    std::ofstream(cgroup_ + "/cpu.idle") << 1;  // kernels without cpu.idle still take the thread
    ReadThreadsTest::SetUp();
  }
  void TearDown() override {
    if (cgroup_.empty()) return;
    ReadThreadsTest::TearDown();
    // The read threads have been joined with the server; the kernel takes an exiting thread out of its
    // cgroup shortly after a join returns, and only then can the cgroup go.
    EXPECT_TRUE(test_support::Eventually([this] { return rmdir(cgroup_.c_str()) == 0; }, std::chrono::seconds(10)))
        << cgroup_ << ": " << std::strerror(errno);
  }
  void ConfigureReads(ServerOptions& o) override { o.read_cgroup = cgroup_; }

  std::string name_;    // the cgroup's path inside the hierarchy
  std::string cgroup_;  // its directory
};

TEST_F(ReadThreadsTest, EveryReadRunsOnAReadThread) {
  const size_t before = threads().size();
  ASSERT_TRUE(List().ok());
  {
    grpc::ClientContext ctx;
    v1::GetAllocationRequest req;
    req.set_pool("p");
    req.set_owner("pod-a");
    v1::GetAllocationResponse resp;
    ASSERT_TRUE(alloc_->GetAllocation(&ctx, req, &resp).ok());
  }
  {
    grpc::ClientContext ctx;
    v1::GetPoolRequest req;
    req.set_name("p");
    v1::Pool resp;
    ASSERT_TRUE(pools_->GetPool(&ctx, req, &resp).ok());
  }
  {
    grpc::ClientContext ctx;
    v1::ListPoolsResponse resp;
    ASSERT_TRUE(pools_->ListPools(&ctx, v1::ListPoolsRequest(), &resp).ok());
  }
  {
    grpc::ClientContext ctx;
    v1::GetHistoryRequest req;
    req.set_address("10.0.0.1");
    req.set_pool("p");
    v1::GetHistoryResponse resp;
    ASSERT_TRUE(alloc_->GetHistory(&ctx, req, &resp).ok());
  }
  ASSERT_TRUE(Checksum().ok());
  const std::vector<std::string> seen = threads();
  ASSERT_EQ(seen.size() - before, 6u) << "each read went through the read executor once";
  for (size_t i = before; i < seen.size(); ++i) EXPECT_EQ(seen[i], "abode-read");
}

// An Allocate command for `owner` in the fixture's pool "p".
v1::Command AllocateInP(const std::string& owner) {
  v1::Command c;
  c.mutable_allocate()->set_pool("p");
  c.mutable_allocate()->set_owner(owner);
  return c;
}

TEST_F(ReadThreadsTest, ALoneWriteIsAnsweredByTheLoopThatAppliedItSeveralByTheCompletionThreads) {
  absl::Mutex mu;
  std::vector<std::string> answered_on;  // guarded by mu
  auto record = [&](replication::CommandOutcome outcome) {
    EXPECT_TRUE(outcome.ok()) << outcome.status();
    absl::MutexLock lock(&mu);
    answered_on.push_back(ThisThreadName());
  };
  auto await = [&](size_t n) {
    absl::MutexLock lock(&mu);
    auto reached = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return answered_on.size() >= n; };
    mu.Await(absl::Condition(&reached));
  };
  server_->node().Propose(AllocateInP("lone"), replication::kNoDeadline, record);
  await(1);
  // Three commands proposed together: one entry of three callers.
  std::vector<v1::Command> commands;
  std::vector<replication::CommandLog::Done> dones;
  for (const char* owner : {"group-1", "group-2", "group-3"}) {
    commands.push_back(AllocateInP(owner));
    dones.emplace_back(record);
  }
  server_->node().ProposeLocal(std::move(commands), std::move(dones));
  await(4);
  absl::MutexLock lock(&mu);
  EXPECT_EQ(answered_on, (std::vector<std::string>{"abode-raft", "abode-answer", "abode-answer", "abode-answer"}));
}

// The loop answers a lone caller as soon as the outcome is decided, while the store is still to commit it:
// the replica's revision, which moves once the entry is applied and committed, is still behind the answer.
TEST_F(ReadThreadsTest, ALoneWriteIsAnsweredBeforeTheStoreCommitsIt) {
  absl::Mutex mu;
  bool answered = false;           // guarded by mu
  uint64_t revision_at_answer = 0;  // guarded by mu
  uint64_t allocated_at = 0;        // guarded by mu
  server_->node().Propose(AllocateInP("early"), replication::kNoDeadline, [&](replication::CommandOutcome outcome) {
    const uint64_t revision = server_->node().stats().revision;
    absl::MutexLock lock(&mu);
    EXPECT_TRUE(outcome.ok()) << outcome.status();
    if (outcome.ok()) allocated_at = outcome->allocation().create_revision();
    revision_at_answer = revision;
    answered = true;
  });
  {
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(&answered));
    ASSERT_GT(allocated_at, 0u);
    EXPECT_LT(revision_at_answer, allocated_at);
  }
  // Then the commit: the replica counts it.
  EXPECT_TRUE(test_support::Eventually(
      [&] {
        absl::MutexLock lock(&mu);
        return server_->node().stats().revision >= allocated_at;
      },
      std::chrono::seconds(10)));
}

// A read that begins once the caller has heard, even at the very moment it heard (from inside the apply,
// before the store commits), waits for the commit: a single voter's fence holds it until then.
TEST_F(ReadThreadsTest, AReadAfterAnEarlyAnswerSeesTheWrite) {
  absl::Mutex mu;
  bool fenced = false;              // guarded by mu
  uint64_t allocated_at = 0;        // guarded by mu
  uint64_t revision_at_fence = 0;   // guarded by mu
  auto answered = [&](replication::CommandOutcome outcome) {
    {
      absl::MutexLock lock(&mu);
      EXPECT_TRUE(outcome.ok()) << outcome.status();
      if (outcome.ok()) allocated_at = outcome->allocation().create_revision();
    }
    server_->node().Await(replication::ReadConsistency::kLinearizable, replication::kNoDeadline,
                          [&](absl::Status s) {
                            const uint64_t revision = server_->node().stats().revision;
                            absl::MutexLock lock(&mu);
                            EXPECT_TRUE(s.ok()) << s;
                            revision_at_fence = revision;
                            fenced = true;
                          });
  };
  server_->node().Propose(AllocateInP("read-after"), replication::kNoDeadline, answered);
  absl::MutexLock lock(&mu);
  mu.Await(absl::Condition(&fenced));
  ASSERT_GT(allocated_at, 0u);
  EXPECT_GE(revision_at_fence, allocated_at) << "the fence opened before the write was committed";
}

TEST_F(ReadThreadsTest, WritesAreAnsweredWhileEveryReadThreadIsHeld) {
  const int before = static_cast<int>(threads().size());
  Close();
  auto list = std::async(std::launch::async, [this] { return List(); });
  AwaitEntered(before + 1);  // the list is inside the only read thread now
  const int held = before + 1;
  auto checksum = std::async(std::launch::async, [this] { return Checksum(); });

  // The only read thread is held by the list; writes are still answered.
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(Allocate("writer-" + std::to_string(i)).ok());
  EXPECT_EQ(list.wait_for(std::chrono::seconds(0)), std::future_status::timeout);
  EXPECT_EQ(checksum.wait_for(std::chrono::seconds(0)), std::future_status::timeout);

  Open();
  EXPECT_TRUE(list.get().ok());
  EXPECT_TRUE(checksum.get().ok());
  EXPECT_EQ(static_cast<int>(threads().size()), held + 1) << "the checksum ran on the read thread after the list";
}

// Reads run at the configured nice value, and only reads: the threads that answer writes, the reply thread
// and gRPC's own threads (some started while reads ran) keep the process's priority.
TEST_F(ReadThreadsTest, ReadsRunAtTheConfiguredNiceAndNothingElseDoes) {
  ASSERT_NE(kReadNice, ThreadNice(gettid()).value());
  ListAndAllocate("nice-");
  for (int nice : nices()) EXPECT_EQ(nice, kReadNice);
  for (int policy : policies()) EXPECT_EQ(policy, SCHED_OTHER);

  int read_threads = 0;
  const int process_nice = ThreadNice(getpid()).value();
  const auto all = ProcessThreads();
  for (const ThreadSeen& t : all) {
    EXPECT_EQ(t.policy, SCHED_OTHER) << t.name;
    if (t.name == "abode-read") {
      ++read_threads;
      EXPECT_EQ(t.nice, kReadNice);
    } else {
      EXPECT_EQ(t.nice, process_nice) << t.name;
    }
  }
  EXPECT_EQ(read_threads, 1);
  EXPECT_GT(all.size(), 5u) << "the raft, answer and reply threads and gRPC's are all listed";
}

// By default reads run in the SCHED_IDLE class, and only reads: every other thread, gRPC's included (some
// started while reads ran), keeps the process's normal policy and nice value.
TEST_F(IdleReadThreadsTest, ReadsRunInTheIdleClassByDefaultAndNothingElseDoes) {
  ASSERT_EQ(sched_getscheduler(0), SCHED_OTHER);
  ListAndAllocate("idle-");
  ASSERT_FALSE(policies().empty());
  for (int policy : policies()) EXPECT_EQ(policy, SCHED_IDLE);

  int read_threads = 0;
  const int process_nice = ThreadNice(getpid()).value();
  const auto all = ProcessThreads();
  for (const ThreadSeen& t : all) {
    if (t.name == "abode-read") {
      ++read_threads;
      EXPECT_EQ(t.policy, SCHED_IDLE);
    } else {
      EXPECT_EQ(t.policy, SCHED_OTHER) << t.name;
      EXPECT_EQ(t.nice, process_nice) << t.name;
    }
  }
  EXPECT_EQ(read_threads, 1);
  EXPECT_GT(all.size(), 5u) << "the raft, answer and reply threads and gRPC's are all listed";
}

TEST_F(CgroupReadThreadsTest, ReadsRunInTheirCgroupAndNothingElseDoes) {
  ListAndAllocate("cgroup-");
  for (int policy : policies()) EXPECT_EQ(policy, SCHED_IDLE);
  const std::string own = ThreadCpuCgroup(getpid()).value();
  ASSERT_NE(own, name_);
  int read_threads = 0;
  for (const ThreadSeen& t : ProcessThreads()) {
    if (t.name == "abode-read") {
      ++read_threads;
      EXPECT_EQ(t.cgroup, name_);
    } else {
      EXPECT_EQ(t.cgroup, own) << t.name;
    }
  }
  EXPECT_EQ(read_threads, 1);
}

TEST(ReadCgroupTest, ACgroupTheThreadsCannotJoinIsRefusedNamingTheField) {
  test_support::TempDir dir;
  ServerOptions o;
  o.listen = "127.0.0.1:0";
  o.raft.data_dir = dir.path() + "/data";
  o.read_cgroup = dir.path() + "/no-such-cgroup";
  auto s = AllocatorServer::Start(o);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("read_cgroup"), std::string::npos) << s.status();
}

// A cgroup that refuses the thread (here: none at that path) is reported, and the thread still gets the class.
TEST(ThreadPriorityTest, TheIdleClassAppliesEvenWhenTheCgroupRefusesTheThread) {
  test_support::TempDir dir;
  absl::Status status;
  int policy = -1;
  std::thread t([&] {
    status = SetThisThreadPriority(ThreadPriority{.idle = true, .nice = 0, .cgroup = dir.path() + "/none"});
    policy = sched_getscheduler(0);
  });
  t.join();
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find(dir.path() + "/none"), std::string::npos) << status;
  EXPECT_EQ(policy, SCHED_IDLE);
}

TEST(ReadNiceTest, ANiceValueOutsideZeroToNineteenIsRefusedNamingTheField) {
  test_support::TempDir dir;
  for (int nice : {-1, 20}) {
    ServerOptions o;
    o.listen = "127.0.0.1:0";
    o.raft.data_dir = dir.path() + "/data";
    o.read_nice = nice;
    auto s = AllocatorServer::Start(o);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(s.status().message().find("read_nice"), std::string::npos) << s.status();
  }
}

}  // namespace
}  // namespace abode::allocator

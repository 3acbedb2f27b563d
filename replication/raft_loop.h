// The raft node's loop thread: c-raft with its libuv disk and TCP I/O, and everything that runs on it
// (ProposalQueue, ReadIndex, membership changes, the fsm over the injected state machine).
//
// Threading: Start, Enqueue, EnqueueLocal, RunOnLoop, view, stats and the destructor may be called from any
// thread. Everything else runs on the loop thread. Two mutexes, never held together and never while a
// callback runs: `inbox_mu_` (what other threads hand to the loop) and `view_mu_` (what the loop publishes).
#ifndef ABODE_REPLICATION_RAFT_LOOP_H_
#define ABODE_REPLICATION_RAFT_LOOP_H_

#include <uv.h>

// c-raft's headers carry no extern "C" of their own.
extern "C" {
#include <raft.h>
#include <raft/uv.h>
}

#include <atomic>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "replication/cluster_view.h"
#include "replication/peer_resolver.h"
#include "replication/proposal_queue.h"
#include "replication/raft_node_options.h"
#include "replication/read_index.h"
#include "replication/replicated_fsm.h"
#include "replication/state_machine.h"
#include "replication/worker_threads.h"

namespace abode::replication {

class RaftLoop final : public ReplicatedFsm::Observer {
 public:
  using Task = absl::AnyInvocable<void() &&>;

  RaftLoop(RaftNodeOptions options, StateMachine* state_machine);
  RaftLoop(const RaftLoop&) = delete;
  RaftLoop& operator=(const RaftLoop&) = delete;
  ~RaftLoop() override;  // stops the loop thread

  // Starts the loop thread and raft; returns once the node is ready (see RaftNode::Start).
  absl::Status Start();

  bool single_voter() const { return options_.peers.empty(); }
  LeaderLink* leader_link() const { return options_.leader_link; }

  // What a caller hears once the loop no longer runs: UNAVAILABLE "allocator is shutting down".
  static absl::Status ShuttingDown() { return absl::UnavailableError("allocator is shutting down"); }
  // Any thread: hands proposals to the loop; when it no longer runs, their `done` hears ShuttingDown().
  void Enqueue(Proposal p) ABSL_LOCKS_EXCLUDED(inbox_mu_);
  void EnqueueLocal(std::vector<v1::Command> commands, std::vector<CommandLog::Done> dones)
      ABSL_LOCKS_EXCLUDED(inbox_mu_);
  // Any thread: runs `task` on the loop thread; `if_stopped` instead (on the caller's thread) when the loop
  // no longer runs.
  void RunOnLoop(Task task, Task if_stopped) ABSL_LOCKS_EXCLUDED(inbox_mu_);
  // Any thread: runs `task(done)` on the loop thread; when the loop no longer runs, `done` hears
  // UNAVAILABLE "allocator is shutting down" instead. `Done` takes an absl::Status (or a StatusOr).
  template <typename Done, typename TaskWithDone>
  void RunOnLoopOrRefuse(Done done, TaskWithDone task) {
    auto shared = std::make_shared<Done>(std::move(done));
    RunOnLoop([shared, task = std::move(task)]() mutable { std::move(task)(std::move(*shared)); },
              [shared] { std::move (*shared)(ShuttingDown()); });
  }
  void PostCompletion(Task task) { completions_.Post(std::move(task)); }

  ClusterView view() ABSL_LOCKS_EXCLUDED(view_mu_);
  ReplicationStats stats();
  const AppliedIndexes& indexes() const { return indexes_; }

  // Loop thread.
  ReadIndex& read_index() { return *read_index_; }
  struct raft* raft() { return &raft_; }
  // Publishes what this replica knows to view(): on every tick, and as soon as a membership change is done
  // so that its caller's answer shows it.
  void PublishView() ABSL_LOCKS_EXCLUDED(view_mu_);

  // ReplicatedFsm::Observer (loop thread).
  void OnEntryApplied(uint64_t index, uint64_t proposal_id, bool replayed) override;
  bool AwaitsOutcomes(uint64_t proposal_id) override;
  void OnOutcomesDecided(uint64_t index, uint64_t proposal_id, const std::vector<CommandOutcome>& outcomes) override;
  void OnApplyFailed(uint64_t index, const absl::Status& status) override;
  void OnRestored(uint64_t raft_index, bool installed) override;

 private:
  void SetReady(absl::Status s);
  void Run(const std::string& raft_dir);
  absl::Status InitRaft(const std::string& raft_dir);
  absl::Status Bootstrap(const std::string& raft_dir);
  static int ConnectRaftPart(struct raft_uv_transport* t, struct raft_uv_connect* req, raft_id id,
                             const char* address, raft_uv_connect_cb cb);
  static void OnStartBarrier(struct raft_barrier* req, int status);
  static void OnWakeup(uv_async_t* handle);
  static void OnTick(uv_timer_t* t);
  static void OnLeaderBarrier(struct raft_barrier* req, int status);
  static void OnRaftClosed(struct raft* r);
  // Publishes what this replica knows, confirms a new leadership with a barrier, wakes index waiters.
  void Tick();
  void BeginClose();
  void CloseHandles();

  static constexpr uint64_t kTickMs = 5;
  static constexpr size_t kCompletionThreads = 2;

  const RaftNodeOptions options_;
  StateMachine* const state_machine_;
  std::string self_address_;  // this member's configuration address
  std::thread thread_;
  std::promise<absl::Status>* ready_ = nullptr;  // Start's; loop thread until ready

  absl::Mutex inbox_mu_;
  std::vector<Proposal> queue_ ABSL_GUARDED_BY(inbox_mu_);
  std::vector<std::pair<Task, Task>> tasks_ ABSL_GUARDED_BY(inbox_mu_);  // (task, what to do if stopped)
  bool stopping_ ABSL_GUARDED_BY(inbox_mu_) = false;
  bool running_ ABSL_GUARDED_BY(inbox_mu_) = false;

  absl::Mutex view_mu_;
  ClusterView view_ ABSL_GUARDED_BY(view_mu_);

  // Loop-thread state.
  uv_loop_t loop_{};
  uv_async_t wakeup_{};
  uv_timer_t tick_{};
  struct TransportHolder {
    raft_uv_transport transport{};  // first: raft_uv hands back a pointer to it
    RaftLoop* loop = nullptr;
  };
  TransportHolder transport_holder_;
  raft_uv_transport& transport_ = transport_holder_.transport;
  decltype(raft_uv_transport::connect) tcp_connect_ = nullptr;
  std::map<std::string, std::unique_ptr<std::string>> connect_addresses_;  // stable C strings for connect
  std::unique_ptr<PeerResolver> resolver_;  // made at the first connection
  raft_io io_{};
  std::unique_ptr<ReplicatedFsm> fsm_;  // raft calls it on this loop (snapshots also on a worker)
  struct raft raft_{};
  struct raft_barrier barrier_{};
  bool raft_initialised_ = false;
  bool io_initialised_ = false;
  bool transport_initialised_ = false;
  std::optional<ProposalQueue> proposals_;
  std::optional<ReadIndex> read_index_;
  uint64_t leader_barrier_term_ = 0;  // term in which the leadership barrier was issued
  uint64_t leader_ready_term_ = 0;    // term whose leadership barrier was applied
  bool caught_up_ = false;            // as a follower, applied all it knew to be committed at least once
  bool restored_ = false;

  AppliedIndexes indexes_;
  std::atomic<uint64_t> revision_{0};

  WorkerThreads completions_{kCompletionThreads, "abode-answer"};  // last: its threads stop before the rest goes
};

}  // namespace abode::replication

#endif  // ABODE_REPLICATION_RAFT_LOOP_H_

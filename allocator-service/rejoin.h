// Starting a member whose data dir is empty while its cluster already runs: a replica whose disk was wiped
// or replaced, or one started after the others formed the cluster.
//
// Such a member must not vote before it holds the log again. Raft counts on every voter remembering the
// entries it acknowledged and the vote it cast in its term. A wiped voter remembers neither: it would grant
// its vote to any candidate (its own log is empty, so every log is as up to date), and a candidate missing
// entries the wiped member had acknowledged could win with that vote and lose them. Pre-vote does not stop
// this. So the member first has the cluster remove it from the configuration (the remaining voters decide,
// without it), then starts without bootstrapping and has itself added back: the leader catches it up, by
// snapshot install when the log was compacted, and only then promotes it to voter.
//
// A marker file in the data dir records that the removal happened, so a member that dies half-way through
// asks to be added back on its next start. A member that the running cluster does not list at all (an
// operator removed it) is not added back automatically: it waits for `abodectl cluster add`, as with --join.
#ifndef ABODE_ALLOCATOR_SERVICE_REJOIN_H_
#define ABODE_ALLOCATOR_SERVICE_REJOIN_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/client_context.h>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "allocator-service/leader_link.h"
#include "replication/membership.h"

namespace abode::allocator {

// The marker of a rejoin under way (see above).
bool RejoinPending(const std::string& data_dir);
absl::Status MarkRejoinPending(const std::string& data_dir);  // durable before it returns
absl::Status ClearRejoinPending(const std::string& data_dir);

class Rejoin {
 public:
  struct Options {
    uint64_t self_id = 0;
    std::vector<replication::Member> peers;           // the --peers list, this member included
    int64_t status_timeout_ms = 2000;   // per Status call while probing
    int64_t remove_timeout_ms = 10'000;  // per RemoveMember call
    int64_t add_timeout_ms = 120'000;    // per AddMember call (it waits for the catch-up, a snapshot say)
  };

  enum class Plan {
    kBootstrap,  // no other member shows a running cluster: start as one of a new cluster
    kRejoin,     // the cluster runs and lists this member: remove it, then add it back
    kAwaitAdd,   // the cluster runs without this member: wait to be added, as with --join
  };

  // `link` provides the channels (and credentials) to the other members; it outlives this object.
  Rejoin(GrpcLeaderLink& link, Options options);

  // Asks every other member for its status, in parallel. `why` says what decided the plan.
  Plan Probe(std::string* why);

  // One attempt each, on the reachable members in turn (a follower passes the change to the leader).
  absl::Status TryRemoveSelf();  // OK also when the configuration no longer lists this member
  absl::Status TryAddSelf();     // OK also when it lists this member again

  // Cancels the call in flight, if any; later calls fail at once.
  void Cancel();
  // Waits `ms` between attempts; false as soon as cancelled.
  bool Pause(int64_t ms);

 private:
  template <typename Request, typename Method>
  absl::Status Change(const char* what, const Request& req, Method method, grpc::StatusCode already_done,
                      int64_t timeout_ms);

  GrpcLeaderLink& link_;
  const Options options_;
  replication::Member self_;
  absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* in_flight_ ABSL_GUARDED_BY(mu_) = nullptr;
};

}  // namespace abode::allocator

#endif  // ABODE_ALLOCATOR_SERVICE_REJOIN_H_

#include "replication/read_index.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "replication/raft_error.h"

namespace abode::replication {

struct ReadIndex::FenceBarrier {
  struct raft_barrier req{};
  ReadIndex* owner = nullptr;
  std::vector<IndexDone> dones;
};

void ReadIndex::AddFence(IndexDone done) {
  if (raft_state(raft_) != RAFT_LEADER) {
    std::move(done)(absl::UnavailableError("this replica stopped leading; retry"));
    return;
  }
  fences_.push_back(std::move(done));
}

void ReadIndex::IssueBarrier() {
  if (fences_.empty()) return;
  auto* b = new FenceBarrier();
  b->owner = this;
  b->dones.swap(fences_);
  b->req.data = b;
  const int rv = raft_barrier(raft_, &b->req, &ReadIndex::OnFenceBarrier);
  if (rv != 0) {
    for (auto& d : b->dones) std::move(d)(RaftError(rv, "read barrier", raft_->errmsg));
    delete b;
  }
}

void ReadIndex::OnFenceBarrier(struct raft_barrier* req, int status) {
  auto* b = static_cast<FenceBarrier*>(req->data);
  if (status != 0) {
    for (auto& d : b->dones) {
      std::move(d)(absl::UnavailableError(absl::StrCat("leadership not confirmed: ", raft_strerror(status))));
    }
  } else {
    const uint64_t index = b->owner->indexes_->state_index.load(std::memory_order_acquire);
    for (auto& d : b->dones) std::move(d)(index);
  }
  delete b;
}

void ReadIndex::AddIndexWaiter(uint64_t index, Done done) {
  if (indexes_->local_index() >= index) {
    completions_->Post([d = std::move(done)]() mutable { std::move(d)(absl::OkStatus()); });
    return;
  }
  index_waiters_.emplace(index, std::move(done));
}

void ReadIndex::WakeIndexWaiters() {
  const uint64_t have = indexes_->local_index();
  while (!index_waiters_.empty() && index_waiters_.begin()->first <= have) {
    auto d = std::move(index_waiters_.begin()->second);
    index_waiters_.erase(index_waiters_.begin());
    completions_->Post([d = std::move(d)]() mutable { std::move(d)(absl::OkStatus()); });
  }
}

void ReadIndex::FailFences(const absl::Status& s) {
  for (auto& d : fences_) std::move(d)(s);
  fences_.clear();
}

void ReadIndex::FailAll(const absl::Status& s) {
  FailFences(s);
  for (auto& [index, d] : index_waiters_) std::move(d)(s);
  index_waiters_.clear();
}

}  // namespace abode::replication

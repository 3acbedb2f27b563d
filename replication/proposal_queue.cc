#include "replication/proposal_queue.h"

#include <algorithm>
#include <memory>
#include <random>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "replication/membership.h"
#include "replication/raft_codec.h"
#include "replication/raft_error.h"
#include "replication/replicated_fsm.h"

namespace abode::replication {

// One log entry proposed by this node and waiting to be committed.
struct ProposalQueue::InFlight {
  struct raft_apply req{};
  ProposalQueue* owner = nullptr;
  uint64_t proposal_id = 0;
  std::vector<CommandLog::Done> dones;
  // From proposal to commit and apply. A root span that links to every command's caller: an entry serves
  // many traces and belongs to none of them.
  tracing::Span span;
};

ProposalQueue::ProposalQueue(const Options& options, struct raft* raft, WorkerThreads* completions,
                             uv_async_t* wakeup)
    : options_(options), raft_(raft), completions_(completions), wakeup_(wakeup) {
  std::random_device rd;
  proposal_base_ = (uint64_t{rd()} << 32 | rd()) & ~uint64_t{0xffffffff};
}

void ProposalQueue::ProposeOrHold(std::vector<Proposal>& proposals) {
  if (held_.empty()) {
    held_.swap(proposals);
  } else {
    for (auto& p : proposals) held_.push_back(std::move(p));
    proposals.clear();
  }
  const size_t cap = options_.max_inflight_entries;
  if (cap != 0 && inflight_.size() >= cap && raft_state(raft_) == RAFT_LEADER) return;
  std::vector<Proposal> now;
  now.swap(held_);
  ProposeAll(now);
}

void ProposalQueue::ProposeAll(std::vector<Proposal>& proposals) {
  if (proposals.empty()) return;
  if (raft_state(raft_) != RAFT_LEADER) {
    Forward(proposals);
    return;
  }
  for (size_t start = 0; start < proposals.size(); start += options_.max_batch_commands) {
    const size_t end = std::min(proposals.size(), start + options_.max_batch_commands);
    auto* f = new InFlight();
    f->owner = this;
    f->proposal_id = proposal_base_ | ++proposal_seq_;
    v1::CommandBatch batch;
    batch.set_format_version(options_.command_format_version);
    batch.set_time_unix_ms(options_.clock->NowUnixMs());
    batch.set_proposal_id(f->proposal_id);
    if (options_.tracer != nullptr) {
      // Only entries that serve a traced caller (not the leader's own housekeeping) get a span. It travels
      // in the entry, so that each replica's apply span is its child rather than linking to every caller too.
      std::vector<tracing::SpanContext> callers;
      callers.reserve(end - start);
      for (size_t i = start; i < end; ++i) {
        if (auto caller = tracing::ParseTraceparent(proposals[i].command.traceparent())) callers.push_back(*caller);
      }
      if (!callers.empty()) {
        f->span = options_.tracer->StartLinkedSpan("raft.commit", tracing::SpanKind::kInternal, callers);
        if (f->span.context().valid()) batch.set_traceparent(f->span.traceparent());
      }
    }
    for (size_t i = start; i < end; ++i) {
      *batch.add_commands() = std::move(proposals[i].command);
      f->dones.push_back(std::move(proposals[i].done));
    }
    raft_buffer buf = EncodeEntry(batch);
    f->req.data = f;
    inflight_[f->proposal_id] = f;
    const int rv = raft_apply(raft_, &f->req, &buf, 1, &ProposalQueue::AnswerProposers);
    if (rv != 0) {
      raft_free(buf.base);
      inflight_.erase(f->proposal_id);
      for (auto& d : f->dones) std::move(d)(RaftError(rv, "propose", raft_->errmsg));
      f->span.SetError(raft_->errmsg);
      delete f;
      continue;
    }
    if (f->span.recording()) {
      f->span.SetAttribute("raft.index", static_cast<uint64_t>(raft_last_index(raft_)))
          .SetAttribute("raft.term", static_cast<uint64_t>(raft_->current_term))
          .SetAttribute("raft.batch_size", static_cast<uint64_t>(end - start))
          .SetAttribute("raft.proposal_id", absl::StrCat(absl::Hex(f->proposal_id, absl::kZeroPad16)));
    }
    entries_.fetch_add(1, std::memory_order_relaxed);
    if (inflight_.size() > most_inflight_.load(std::memory_order_relaxed)) {
      most_inflight_.store(inflight_.size(), std::memory_order_relaxed);
    }
    commands_.fetch_add(end - start, std::memory_order_relaxed);
  }
}

void ProposalQueue::Forward(std::vector<Proposal>& proposals) {
  raft_id leader_id = 0;
  const char* leader_address = nullptr;
  raft_leader(raft_, &leader_id, &leader_address);
  std::vector<v1::Command> commands;
  auto dones = std::make_shared<std::vector<CommandLog::Done>>();
  Deadline earliest = kNoDeadline;
  for (auto& p : proposals) {
    if (p.local) {
      std::move(p.done)(absl::UnavailableError("this replica is no longer the raft leader; retry"));
      continue;
    }
    if (leader_id == 0 || leader_id == options_.self_id || options_.single_voter) {
      std::move(p.done)(absl::UnavailableError(
          "no raft leader is known to this replica (an election is under way or a quorum is unreachable)"));
      continue;
    }
    commands.push_back(std::move(p.command));
    dones->push_back(std::move(p.done));
    earliest = std::min(earliest, p.deadline);
  }
  if (commands.empty()) return;
  const Member leader = MemberFromConfiguration(leader_id, leader_address);
  if (leader.grpc_address.empty()) {
    for (auto& d : *dones) {
      std::move(d)(absl::UnavailableError(absl::StrCat("leader ", leader_id, " has no gRPC address")));
    }
    return;
  }
  options_.leader_link->Forward(
      leader.grpc_address, std::move(commands), earliest, [dones](absl::StatusOr<LeaderLink::Outcomes> outcomes) mutable {
        for (size_t i = 0; i < dones->size(); ++i) {
          if (!outcomes.ok()) {
            std::move((*dones)[i])(outcomes.status());
          } else if (i >= outcomes->size()) {
            std::move((*dones)[i])(absl::InternalError("the leader answered fewer outcomes than commands"));
          } else {
            std::move((*dones)[i])(std::move((*outcomes)[i]));
          }
        }
      });
}

void ProposalQueue::AnswerDecided(uint64_t proposal_id, const std::vector<CommandOutcome>& outcomes,
                                  absl::FunctionRef<void()> before_answering) {
  auto it = inflight_.find(proposal_id);
  if (it == inflight_.end()) return;
  InFlight* f = it->second;
  // The same rule as for the answer after completion (below): the loop answers a lone caller itself. Here
  // that answer goes out while the store commits, instead of after.
  if (f->dones.size() != 1 || outcomes.size() != 1 || !held_.empty()) return;
  CommandLog::Done done = std::move(f->dones[0]);
  f->dones.clear();
  before_answering();
  std::move(done)(outcomes[0]);
}

void ProposalQueue::AnswerProposers(struct raft_apply* req, int status, void* result) {
  std::unique_ptr<InFlight> f(static_cast<InFlight*>(req->data));
  std::unique_ptr<EntryOutcomes> outcomes = TakeEntryOutcomes(result);
  ProposalQueue* self = f->owner;
  self->inflight_.erase(f->proposal_id);
  if (status != 0) {
    f->span.SetError(raft_strerror(status));
  } else {
    f->span.SetOk();
  }
  f->span.End();
  if (f->dones.empty()) {  // answered when its outcome was decided (AnswerDecided)
    if (!self->held_.empty()) uv_async_send(self->wakeup_);
    return;
  }
  // Held proposals go out on the next turn of the loop, not from inside raft's callback.
  const bool others_wait = !self->held_.empty();
  if (others_wait) uv_async_send(self->wakeup_);
  auto outcome_of = [&](size_t i) -> CommandOutcome {
    if (status != 0) return absl::UnavailableError(absl::StrCat("not committed: ", raft_strerror(status)));
    if (outcomes == nullptr || i >= outcomes->size()) return absl::InternalError("committed but its outcome was lost");
    return std::move((*outcomes)[i]);
  };
  // A lone caller, with nobody else waiting, is answered here: waking a completion thread for one reply
  // would put a thread wake-up on the reply's path, to save the loop only the reply itself (~10 us), at a
  // time when it has nothing else to do.
  if (f->dones.size() == 1 && !others_wait) {
    std::move(f->dones[0])(outcome_of(0));
    return;
  }
  // Each task answers its own run of the shared answers; no two touch the same element.
  auto answers = std::make_shared<std::vector<std::pair<CommandLog::Done, CommandOutcome>>>();
  answers->reserve(f->dones.size());
  for (size_t i = 0; i < f->dones.size(); ++i) answers->emplace_back(std::move(f->dones[i]), outcome_of(i));
  size_t begin = 0;
  for (const size_t size : AnswerChunks(answers->size(), self->completions_->size())) {
    self->completions_->Post([answers, begin, end = begin + size] {
      for (size_t i = begin; i < end; ++i) std::move((*answers)[i].first)(std::move((*answers)[i].second));
    });
    begin += size;
  }
}

void ProposalQueue::FailHeld(const absl::Status& held) {
  for (auto& p : held_) std::move(p.done)(held);
  held_.clear();
}

void ProposalQueue::FailInFlight(const absl::Status& inflight) {
  for (auto& [id, f] : inflight_) {
    for (auto& d : f->dones) std::move(d)(inflight);
    delete f;
  }
  inflight_.clear();
}

ProposalQueue::Stats ProposalQueue::stats() const {
  Stats s;
  s.entries = entries_.load();
  s.commands = commands_.load();
  s.most_inflight_entries = most_inflight_.load();
  return s;
}

}  // namespace abode::replication

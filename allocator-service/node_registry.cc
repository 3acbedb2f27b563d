#include "allocator-service/node_registry.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "spdlog/spdlog.h"

namespace abode::allocator {

NodeRegistry::NodeRegistry(replication::CommandLog& log, NodeViewSource& views, NodeRegistryOptions options)
    : log_(log), views_(views), options_(options) {
  {
    absl::MutexLock lock(&mu_);
    leading_ = options_.leadership == nullptr;
    lead_since_ms_ = options_.clock->NowUnixMs();
  }
  timer_ = options_.timers->Every(options_.sweep_interval_ms, [this] { Sweep(); });
}

NodeRegistry::~NodeRegistry() { Stop(); }

void NodeRegistry::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    // A relay's callback refers to the registry; relays give up after the link's timeout.
    const auto relay_done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !relaying_; };
    mu_.Await(absl::Condition(&relay_done));
  }
  timer_.reset();  // once this returns no sweep runs
}

LeaderLiveness::Leader NodeRegistry::leader() {
  if (options_.leadership == nullptr) return LeaderLiveness::Leader{true, {}, 0};
  return options_.leadership->Current();
}

void NodeRegistry::Propose(const std::string& node, v1::Command command) {
  entries_[node].pending = true;
  outbox_.emplace_back(node, std::move(command));
}

void NodeRegistry::SendOutbox() {
  std::vector<std::pair<std::string, v1::Command>> out;
  out.swap(outbox_);
  mu_.Unlock();
  // Proposed without the lock: the log may run `done` at once (shutting down).
  for (auto& [node, cmd] : out) {
    log_.Propose(std::move(cmd), replication::kNoDeadline, [this, node = node](replication::CommandOutcome outcome) {
      if (!outcome.ok()) spdlog::warn("node {}: command not applied: {}", node, outcome.status().ToString());
      auto view = views_.view();  // already shows the outcome: commands are applied before `done` runs
      mu_.Lock();
      Entry& e = entries_[node];
      e.pending = false;
      if (!outcome.ok()) e.reclaimed_since_ms = -1;  // a reclaim that did not apply is proposed again
      // Heard from while the command was in flight (a node marked not ready that is back): look again.
      if (std::exchange(e.recheck, false) && outcome.ok() &&
          options_.clock->NowUnixMs() - e.last_heartbeat_ms <= options_.lease_ms) {
        RegisterIfNotReady(node, e, *view);
        SendOutbox();
        return;
      }
      mu_.Unlock();
    });
  }
}

bool NodeRegistry::VouchesForLeases() {
  if (leader().self) return true;
  absl::MutexLock lock(&mu_);
  return last_relay_ok_ms_ > 0 && options_.clock->NowUnixMs() - last_relay_ok_ms_ <= options_.lease_ms / 2;
}

void NodeRegistry::Connect(const v1::NodeSpec& spec) {
  mu_.Lock();
  if (stopping_) {
    mu_.Unlock();
    return;
  }
  Entry& e = entries_[spec.name()];
  e.spec = spec;
  e.has_spec = true;
  ++e.streams;
  e.last_heartbeat_ms = options_.clock->NowUnixMs();
  e.heard_unrelayed = true;
  // Always proposed (a follower forwards it): labels or interfaces may have changed. Unchanged and ready,
  // it changes no state.
  v1::Command cmd;
  *cmd.mutable_register_node()->mutable_node() = spec;
  Propose(spec.name(), std::move(cmd));
  SendOutbox();
}

void NodeRegistry::Disconnect(const std::string& node) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(node);
  if (it != entries_.end() && it->second.streams > 0) --it->second.streams;
}

void NodeRegistry::RegisterIfNotReady(const std::string& node, Entry& e, const domain::NodeStateView& view) {
  if (stopping_ || !leading_) return;
  if (e.pending) {
    e.recheck = true;
    return;
  }
  auto n = view.nodes.find(node);
  if (n != view.nodes.end() && n->second->ready()) return;
  // A node streaming to a follower registered there; its spec is in the replicated state.
  if (!e.has_spec && n == view.nodes.end()) return;
  v1::Command cmd;
  *cmd.mutable_register_node()->mutable_node() = e.has_spec ? e.spec : n->second->spec();
  Propose(node, std::move(cmd));
}

void NodeRegistry::Heartbeat(const std::string& node) {
  auto view = views_.view();
  mu_.Lock();
  Entry& e = entries_[node];
  e.last_heartbeat_ms = options_.clock->NowUnixMs();
  e.heard_unrelayed = true;
  RegisterIfNotReady(node, e, *view);
  SendOutbox();
}

void NodeRegistry::ReportStatus(const std::string& node, const v1::AssignmentStatusReport& report) {
  absl::MutexLock lock(&mu_);
  Entry& e = entries_[node];
  const int64_t now = options_.clock->NowUnixMs();
  e.last_heartbeat_ms = now;  // a report is a sign of life too
  e.heard_unrelayed = true;
  for (v1::AssignmentStatus s : report.statuses()) {
    s.set_report_time_unix_ms(now);
    std::string id = s.id();
    e.unrelayed_statuses.insert(id);
    e.statuses[id] = std::move(s);
  }
}

void NodeRegistry::Relayed(const v1::RelayLivenessRequest& relay) {
  auto view = views_.view();
  mu_.Lock();
  if (stopping_) {
    mu_.Unlock();
    return;
  }
  const int64_t now = options_.clock->NowUnixMs();
  member_seen_ms_[relay.member_id()] = now;
  for (const v1::NodeLiveness& n : relay.nodes()) {
    Entry& e = entries_[n.node()];
    e.remote_connected[relay.member_id()] = n.connected();
    for (const v1::AssignmentStatus& s : n.statuses()) e.statuses[s.id()] = s;
    if (!n.heard()) continue;
    e.last_heartbeat_ms = std::max(e.last_heartbeat_ms, now - std::max<int64_t>(0, n.heard_ms_ago()));
    if (now - e.last_heartbeat_ms <= options_.lease_ms) RegisterIfNotReady(n.node(), e, *view);
  }
  SendOutbox();
}

bool NodeRegistry::Connected(const Entry& e, int64_t now) const {
  if (e.streams > 0) return true;
  for (const auto& [member, connected] : e.remote_connected) {
    if (!connected) continue;
    auto seen = member_seen_ms_.find(member);
    if (seen != member_seen_ms_.end() && now - seen->second <= options_.lease_ms) return true;
  }
  return false;
}

void NodeRegistry::Fill(v1::Node* node) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(node->spec().name());
  if (it == entries_.end()) return;
  node->set_last_heartbeat_unix_ms(it->second.last_heartbeat_ms);
  node->set_connected(Connected(it->second, options_.clock->NowUnixMs()));
  for (const auto& [id, s] : it->second.statuses) *node->add_statuses() = s;
}

void NodeRegistry::Sweep() {
  const LeaderLiveness::Leader current = leader();
  auto view = views_.view();
  const int64_t now = options_.clock->NowUnixMs();
  mu_.Lock();
  if (stopping_) {
    mu_.Unlock();
    return;
  }
  if (current.self && !leading_) {
    spdlog::info("leading: every node gets a full lease of {} ms from now", options_.lease_ms);
    lead_since_ms_ = now;
    for (auto& [name, e] : entries_) e.pending = false;  // what a previous term proposed has an outcome by now
  }
  if (!current.self && leading_) relayed_to_.clear();  // tell the new leader everything
  leading_ = current.self;
  if (leading_) {
    Expire(*view, now);
    SendOutbox();
    return;
  }
  std::optional<v1::RelayLivenessRequest> relay = TakeRelay(current, now);
  mu_.Unlock();
  if (!relay) return;
  // Sent without the lock: `done` may run at once.
  options_.leadership->Relay(current.address, std::move(*relay), [this](absl::Status s) {
    absl::MutexLock lock(&mu_);
    if (!s.ok()) {
      spdlog::warn("relaying node liveness to the leader failed: {}", s.ToString());
      relayed_to_.clear();  // resend everything to whoever leads next
    } else {
      last_relay_ok_ms_ = options_.clock->NowUnixMs();
    }
    relaying_ = false;
  });
}

void NodeRegistry::Expire(const domain::NodeStateView& view, int64_t now) {
  for (const auto& [name, node] : view.nodes) {
    auto it = entries_.find(name);
    // The lease runs from the last sign of life, but never from before this leader took over or before the
    // node became ready (a node registered through a follower whose first relay is still on its way).
    int64_t last = std::max(lead_since_ms_, node->ready() ? node->ready_change_time_unix_ms() : int64_t{0});
    if (it != entries_.end()) last = std::max(last, it->second.last_heartbeat_ms);
    const bool alive = now - last <= options_.lease_ms;
    if (it != entries_.end() && it->second.pending) continue;
    if (node->ready() && !alive) {
      spdlog::info("node {}: lease expired ({} ms since its last heartbeat)", name, now - last);
      v1::Command cmd;
      cmd.mutable_mark_node_not_ready()->set_name(name);
      cmd.mutable_mark_node_not_ready()->set_last_heartbeat_unix_ms(
          it == entries_.end() ? 0 : it->second.last_heartbeat_ms);
      Propose(name, std::move(cmd));
    } else if (!node->ready() && alive && it != entries_.end() && Connected(it->second, now)) {
      RegisterIfNotReady(name, it->second, view);
    } else if (!node->ready()) {
      ReclaimIfLost(name, *node, now);
    }
  }
}

void NodeRegistry::ReclaimIfLost(const std::string& name, const v1::Node& node, int64_t now) {
  const int64_t after = options_.reclaim_not_ready_after_ms;
  const int64_t since = node.ready_change_time_unix_ms();
  if (after <= 0 || now - since < after) return;
  Entry& e = entries_[name];
  if (e.reclaimed_since_ms == since) return;
  e.reclaimed_since_ms = since;
  spdlog::info("node {}: not ready for {} ms; reclaiming the allocations made through it", name, now - since);
  v1::Command cmd;
  v1::ReclaimNodeAllocations* r = cmd.mutable_reclaim_node_allocations();
  r->set_node(name);
  r->set_not_ready_since_unix_ms(since);
  r->set_reason(absl::StrCat("node ", name, " not ready for more than ",
                             absl::FormatDuration(absl::Milliseconds(after)), ": reclaimed"));
  Propose(name, std::move(cmd));
}

std::optional<v1::RelayLivenessRequest> NodeRegistry::TakeRelay(const LeaderLiveness::Leader& leader, int64_t now) {
  if (relaying_ || stopping_ || leader.address.empty() || options_.leadership == nullptr) return std::nullopt;
  const bool everything = leader.address != relayed_to_;
  v1::RelayLivenessRequest relay;
  relay.set_member_id(leader.member_id);
  bool any_stream = false;
  for (auto& [name, e] : entries_) {
    const bool connected = e.streams > 0;
    any_stream = any_stream || connected;
    const bool changed = e.heard_unrelayed || !e.unrelayed_statuses.empty() || connected != e.relayed_connected;
    if (!changed && !(everything && (connected || !e.statuses.empty()))) continue;
    v1::NodeLiveness* n = relay.add_nodes();
    n->set_node(name);
    n->set_connected(connected);
    if (e.last_heartbeat_ms > 0 && (e.heard_unrelayed || everything)) {
      n->set_heard(true);
      n->set_heard_ms_ago(now - e.last_heartbeat_ms);
    }
    for (const auto& [id, s] : e.statuses) {
      if (everything || e.unrelayed_statuses.count(id) > 0) *n->add_statuses() = s;
    }
    e.heard_unrelayed = false;
    e.unrelayed_statuses.clear();
    e.relayed_connected = connected;
  }
  // An empty relay now and then tells the leader that this replica's streams are still open.
  const int64_t keepalive_ms = std::min<int64_t>(1000, options_.lease_ms / 3);
  if (relay.nodes().empty() && !(any_stream && now - last_relay_ms_ >= keepalive_ms)) return std::nullopt;
  relaying_ = true;
  last_relay_ms_ = now;
  relayed_to_ = leader.address;
  return relay;
}

}  // namespace abode::allocator

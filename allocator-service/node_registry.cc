#include "allocator-service/node_registry.h"

#include <chrono>
#include <utility>

#include "spdlog/spdlog.h"

namespace abode::allocator {

NodeRegistry::NodeRegistry(CommandLog& log, WatchHub& hub, NodeRegistryOptions options)
    : log_(log), hub_(hub), options_(options), start_ms_(options.clock->NowUnixMs()) {
  thread_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stopping_) {
      cv_.wait_for(lock, std::chrono::milliseconds(options_.sweep_interval_ms));
      if (stopping_) break;
      lock.unlock();
      Sweep();
      lock.lock();
    }
  });
}

NodeRegistry::~NodeRegistry() { Stop(); }

void NodeRegistry::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void NodeRegistry::Propose(const std::string& node, v1::Command command) {
  entries_[node].pending = true;
  outbox_.emplace_back(node, std::move(command));
}

void NodeRegistry::SendOutbox(std::unique_lock<std::mutex>& lock) {
  std::vector<std::pair<std::string, v1::Command>> out;
  out.swap(outbox_);
  lock.unlock();
  // Proposed without the lock: the log may run `done` at once (shutting down).
  for (auto& [node, cmd] : out) {
    log_.Propose(std::move(cmd), [this, node = node](storage::CommandOutcome outcome) {
      if (!outcome.ok()) spdlog::warn("node {}: readiness change not applied: {}", node, outcome.status().ToString());
      std::lock_guard<std::mutex> lock(mu_);
      entries_[node].pending = false;
    });
  }
}

void NodeRegistry::Connect(const v1::NodeSpec& spec) {
  std::unique_lock<std::mutex> lock(mu_);
  if (stopping_) return;
  Entry& e = entries_[spec.name()];
  e.spec = spec;
  e.has_spec = true;
  ++e.streams;
  e.last_heartbeat_ms = options_.clock->NowUnixMs();
  // Always proposed: labels or interfaces may have changed. Unchanged and ready, it changes no state.
  v1::Command cmd;
  *cmd.mutable_register_node()->mutable_node() = spec;
  Propose(spec.name(), std::move(cmd));
  SendOutbox(lock);
}

void NodeRegistry::Disconnect(const std::string& node) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(node);
  if (it != entries_.end() && it->second.streams > 0) --it->second.streams;
}

void NodeRegistry::RegisterIfNotReady(const std::string& node, Entry& e) {
  if (e.pending || !e.has_spec || stopping_) return;
  auto view = hub_.view();
  auto n = view->nodes.find(node);
  if (n != view->nodes.end() && n->second->ready()) return;
  v1::Command cmd;
  *cmd.mutable_register_node()->mutable_node() = e.spec;
  Propose(node, std::move(cmd));
}

void NodeRegistry::Heartbeat(const std::string& node) {
  std::unique_lock<std::mutex> lock(mu_);
  Entry& e = entries_[node];
  e.last_heartbeat_ms = options_.clock->NowUnixMs();
  RegisterIfNotReady(node, e);
  SendOutbox(lock);
}

void NodeRegistry::ReportStatus(const std::string& node, const v1::AssignmentStatusReport& report) {
  std::lock_guard<std::mutex> lock(mu_);
  Entry& e = entries_[node];
  const int64_t now = options_.clock->NowUnixMs();
  e.last_heartbeat_ms = now;  // a report is a sign of life too
  for (v1::AssignmentStatus s : report.statuses()) {
    s.set_report_time_unix_ms(now);
    std::string id = s.id();
    e.statuses[id] = std::move(s);
  }
}

void NodeRegistry::Fill(v1::Node* node) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(node->spec().name());
  if (it == entries_.end()) return;
  node->set_last_heartbeat_unix_ms(it->second.last_heartbeat_ms);
  node->set_connected(it->second.streams > 0);
  for (const auto& [id, s] : it->second.statuses) *node->add_statuses() = s;
}

void NodeRegistry::Sweep() {
  auto view = hub_.view();
  const int64_t now = options_.clock->NowUnixMs();
  std::unique_lock<std::mutex> lock(mu_);
  if (stopping_) return;
  for (const auto& [name, node] : view->nodes) {
    auto it = entries_.find(name);
    const int64_t last = it == entries_.end() ? start_ms_ : std::max(start_ms_, it->second.last_heartbeat_ms);
    const bool alive = now - last <= options_.lease_ms;
    if (it != entries_.end() && it->second.pending) continue;
    if (node->ready() && !alive) {
      spdlog::info("node {}: lease expired ({} ms since its last heartbeat)", name, now - last);
      v1::Command cmd;
      cmd.mutable_mark_node_not_ready()->set_name(name);
      cmd.mutable_mark_node_not_ready()->set_last_heartbeat_unix_ms(it == entries_.end() ? 0 : last);
      Propose(name, std::move(cmd));
    } else if (!node->ready() && alive && it != entries_.end() && it->second.streams > 0) {
      RegisterIfNotReady(name, it->second);
    }
  }
  SendOutbox(lock);
}

}  // namespace abode::allocator

#include "domain/node_model.h"

#include <algorithm>
#include <memory>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "domain/node_specs.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"

namespace abode::domain {
namespace {

std::map<std::string, std::string> LabelMap(const google::protobuf::Map<std::string, std::string>& m) {
  return std::map<std::string, std::string>(m.begin(), m.end());
}

bool SameContent(const v1::Assignment& a, const v1::Assignment& b) {
  v1::Assignment x = a;
  v1::Assignment y = b;
  x.clear_revision();
  x.clear_traceparent();
  y.clear_revision();
  y.clear_traceparent();
  return DeterministicBytes(x) == DeterministicBytes(y);
}

template <typename T>
std::shared_ptr<const T> Share(T value) {
  return std::make_shared<const T>(std::move(value));
}

}  // namespace

std::string DeterministicBytes(const google::protobuf::Message& m) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream sink(&out);
    google::protobuf::io::CodedOutputStream coded(&sink);
    coded.SetSerializationDeterministic(true);
    m.SerializeToCodedStream(&coded);
  }
  return out;
}

std::vector<v1::ExternalAddress> PlanPlacement(const Objects<v1::Node>& nodes,
                                               const Objects<v1::ExternalAddress>& externals, uint64_t revision) {
  struct Candidate {
    const std::string* name;
    std::map<std::string, std::string> labels;
  };
  std::vector<Candidate> ready;
  for (const auto& [name, n] : nodes) {
    if (n->ready()) ready.push_back(Candidate{&name, NodeLabels(*n)});
  }
  auto eligible = [](const LabelSelector& sel, const Candidate& c) { return SelectorMatches(sel, c.labels); };
  std::map<std::string, int, std::less<>> load;
  std::vector<std::pair<const v1::ExternalAddress*, LabelSelector>> unplaced;
  for (const auto& [name, x] : externals) {
    LabelSelector sel = ParseLabelSelector(x->spec().node_selector(), "node_selector").value_or(LabelSelector{});
    auto c = std::find_if(ready.begin(), ready.end(), [&](const Candidate& c) { return *c.name == x->node(); });
    if (!x->node().empty() && c != ready.end() && eligible(sel, *c)) {
      ++load[x->node()];  // sticky: a serving node keeps its claims
    } else {
      unplaced.emplace_back(x.get(), std::move(sel));
    }
  }
  std::vector<v1::ExternalAddress> moved;
  for (const auto& [x, sel] : unplaced) {
    const Candidate* best = nullptr;
    int best_load = 0;
    for (const Candidate& c : ready) {
      if (!eligible(sel, c)) continue;
      const int l = load[*c.name];
      if (best == nullptr || l < best_load) {
        best = &c;
        best_load = l;
      }
    }
    const std::string node = best ? *best->name : std::string();
    if (best) ++load[node];
    if (node != x->node()) {
      v1::ExternalAddress copy = *x;
      copy.set_node(node);
      copy.set_revision(revision);
      moved.push_back(std::move(copy));
    }
  }
  return moved;
}

// ----------------------------------------------------------------------------------------------- objects

void NodeModel::SetNode(v1::Node node, std::vector<v1::ExternalAddress> moved) {
  const std::string name = node.spec().name();
  nodes_[name] = Share(std::move(node));
  for (auto& x : moved) {
    const std::string n = x.spec().name();
    externals_[n] = Share(std::move(x));
  }
  dirty_claims_ = true;
  dirty_nodes_.insert(name);
  view_dirty_ = true;
}

void NodeModel::RemoveNode(absl::string_view name, std::vector<v1::ExternalAddress> moved) {
  if (auto it = nodes_.find(name); it != nodes_.end()) nodes_.erase(it);
  for (auto& x : moved) {
    const std::string n = x.spec().name();
    externals_[n] = Share(std::move(x));
  }
  dirty_claims_ = true;
  dirty_nodes_.insert(std::string(name));
  view_dirty_ = true;
}

void NodeModel::SetExternals(Objects<v1::ExternalAddress> externals) {
  externals_ = std::move(externals);
  dirty_claims_ = true;
  view_dirty_ = true;
}

void NodeModel::RemoveExternal(absl::string_view name) {
  if (auto it = externals_.find(name); it != externals_.end()) externals_.erase(it);
  dirty_claims_ = true;
  view_dirty_ = true;
}

void NodeModel::AddElastic(v1::ElasticAddress elastic) {
  const std::string name = elastic.spec().name();
  elastics_[name] = Share(std::move(elastic));
  view_dirty_ = true;
}

void NodeModel::SetElastic(v1::ElasticAddress elastic, LabelSelector selector) {
  const std::string name = elastic.spec().name();
  const std::string key = absl::StrCat("elastic/", name);
  selectors_.erase(key);
  if (!selector.empty()) selectors_[key] = std::move(selector);
  elastics_[name] = Share(std::move(elastic));
  RebuildElasticOwners();
  PruneTracked();
  dirty_claims_ = true;
  view_dirty_ = true;
}

void NodeModel::RemoveElastic(absl::string_view name) {
  selectors_.erase(absl::StrCat("elastic/", name));
  if (auto it = elastics_.find(name); it != elastics_.end()) elastics_.erase(it);
  RebuildElasticOwners();
  PruneTracked();
  dirty_claims_ = true;
  view_dirty_ = true;
}

void NodeModel::AddMagic(v1::MagicAddress magic, LabelSelector selector) {
  const std::string name = magic.spec().name();
  magics_[name] = Share(std::move(magic));
  selectors_[absl::StrCat("magic/", name)] = std::move(selector);
  dirty_magics_.insert(name);
  view_dirty_ = true;
}

void NodeModel::RemoveMagic(absl::string_view name) {
  if (auto it = magics_.find(name); it != magics_.end()) magics_.erase(it);
  selectors_.erase(absl::StrCat("magic/", name));
  PruneTracked();
  dirty_magics_.insert(std::string(name));
  view_dirty_ = true;
}

void NodeModel::RebuildElasticOwners() {
  elastic_owners_.clear();
  for (const auto& [n, e] : elastics_) {
    if (!e->association().owner().empty()) elastic_owners_.insert(e->association().owner());
  }
}

std::optional<std::pair<std::string, std::string>> NodeModel::MagicInside(const Prefix& cidr) const {
  for (const auto& [name, m] : magics_) {
    auto ip = IpAddress::Parse(m->spec().address(), "address");
    if (ip.ok() && ip->family() == cidr.family() && cidr.Contains(*ip)) return std::make_pair(name, m->spec().address());
  }
  return std::nullopt;
}

// ----------------------------------------------------------------------------------- tracked workloads

bool NodeModel::IsWorkloadPool(absl::string_view pool) const {
  const Pool* p = pools_.Find(pool);
  return p != nullptr && p->spec.purpose() != v1::POOL_PURPOSE_EXTERNAL;
}

bool NodeModel::Relevant(const v1::Allocation& a) const {
  if (elastic_owners_.count(a.owner())) return true;
  if (selectors_.empty()) return false;
  const auto labels = LabelMap(a.labels());
  for (const auto& [key, sel] : selectors_) {
    if (SelectorMatches(sel, labels)) return true;
  }
  return false;
}

void NodeModel::Track(const v1::Allocation& a) {
  auto ip = IpAddress::Parse(a.address(), "address");
  if (!ip.ok()) return;
  WorkloadKey key{a.pool(), a.owner()};
  Workload w{a.pool(), a.owner(), a.node(), ip->ToString(), *ip, a.create_revision(), LabelMap(a.labels())};
  workloads_by_node_[w.node].insert(key);
  MarkWorkloadDirty(w);
  workloads_[key] = std::move(w);
}

void NodeModel::Untrack(const WorkloadKey& key) {
  auto it = workloads_.find(key);
  if (it == workloads_.end()) return;
  MarkWorkloadDirty(it->second);
  auto n = workloads_by_node_.find(it->second.node);
  if (n != workloads_by_node_.end()) {
    n->second.erase(key);
    if (n->second.empty()) workloads_by_node_.erase(n);
  }
  workloads_.erase(it);
}

void NodeModel::PruneTracked() {
  std::vector<WorkloadKey> gone;
  for (const auto& [key, w] : workloads_) {
    bool keep = elastic_owners_.count(w.owner) > 0;
    for (const auto& [k, sel] : selectors_) keep = keep || SelectorMatches(sel, w.labels);
    if (!keep) gone.push_back(key);
  }
  for (const auto& key : gone) Untrack(key);
}

void NodeModel::MarkWorkloadDirty(const Workload& w) {
  dirty_claims_ = dirty_claims_ || !elastics_.empty();
  for (const auto& [name, m] : magics_) {
    auto sel = selectors_.find(absl::StrCat("magic/", name));
    if (sel == selectors_.end() || !SelectorMatches(sel->second, w.labels)) continue;
    if (m->spec().policy() == v1::MAGIC_POLICY_FALLBACK) {
      dirty_magics_.insert(name);
    } else {
      dirty_magic_nodes_.emplace(name, w.node);
    }
  }
}

std::optional<NodeModel::Orphan> NodeModel::OnAllocationChange(const AllocationChange& c) {
  const v1::Allocation& a = c.allocation;
  if (c.relabelled) {
    // Untracking marks what the old labels selected, tracking what the new ones select.
    Untrack({a.pool(), a.owner()});
    if (IsWorkloadPool(a.pool()) && Relevant(a)) Track(a);
    return std::nullopt;
  }
  if (c.added) {
    if (IsWorkloadPool(a.pool()) && Relevant(a)) Track(a);
    return std::nullopt;
  }
  if (workloads_.count({a.pool(), a.owner()})) {
    Untrack({a.pool(), a.owner()});
    return std::nullopt;
  }
  // The address of an external or elastic address was released underneath it (its pool was deleted with
  // force, or its owner key released directly).
  absl::string_view owner = a.owner();
  auto holds = [&](const auto& objects) {
    auto it = objects.find(owner);
    return it != objects.end() && it->second->address() == a.address() && it->second->spec().pool() == a.pool();
  };
  if (absl::ConsumePrefix(&owner, kExternalOwner)) {
    if (holds(externals_)) return Orphan{false, std::string(owner)};
  } else if (absl::ConsumePrefix(&owner, kElasticOwner)) {
    if (holds(elastics_)) return Orphan{true, std::string(owner)};
  }
  return std::nullopt;
}

// ------------------------------------------------------------------------------------------ derivation

const NodeModel::Workload* NodeModel::ElasticWorkload(const v1::ElasticAddress& e) const {
  if (!e.has_association()) return nullptr;
  auto ip = IpAddress::Parse(e.address(), "address");
  if (!ip.ok()) return nullptr;
  const LabelSelector* sel = nullptr;
  if (auto it = selectors_.find(absl::StrCat("elastic/", e.spec().name())); it != selectors_.end()) sel = &it->second;
  const Workload* best = nullptr;
  for (const auto& [key, w] : workloads_) {
    if (w.ip.family() != ip->family()) continue;
    const bool match = e.association().owner().empty() ? (sel != nullptr && SelectorMatches(*sel, w.labels))
                                                        : w.owner == e.association().owner();
    if (!match) continue;
    // The oldest match: a replacement created while the old workload still lives takes over when it goes.
    if (best == nullptr || std::tie(w.create_revision, w.ip) < std::tie(best->create_revision, best->ip)) best = &w;
  }
  return best;
}

std::optional<NodeModel::Target> NodeModel::ElasticTarget(const v1::ElasticAddress& e) const {
  const Workload* w = ElasticWorkload(e);
  if (w == nullptr) return std::nullopt;
  return Target{w->owner, w->node, w->address};
}

std::optional<v1::Assignment> NodeModel::MagicFor(const v1::MagicAddress& m, const std::string& node) const {
  auto n = nodes_.find(node);
  if (n == nodes_.end() || !n->second->ready()) return std::nullopt;
  auto sel = selectors_.find(absl::StrCat("magic/", m.spec().name()));
  auto ip = IpAddress::Parse(m.spec().address(), "address");
  if (sel == selectors_.end() || !ip.ok()) return std::nullopt;
  auto better = [](const Workload* a, const Workload* b) {
    return b == nullptr || std::tie(a->create_revision, a->ip) < std::tie(b->create_revision, b->ip);
  };
  auto matches = [&](const Workload& w) { return w.ip.family() == ip->family() && SelectorMatches(sel->second, w.labels); };
  const Workload* best = nullptr;
  if (auto local = workloads_by_node_.find(node); local != workloads_by_node_.end()) {
    for (const WorkloadKey& key : local->second) {
      const Workload& w = workloads_.at(key);
      if (matches(w) && better(&w, best)) best = &w;
    }
  }
  if (best == nullptr && m.spec().policy() == v1::MAGIC_POLICY_FALLBACK) {
    for (const auto& [key, w] : workloads_) {
      if (!w.node.empty() && matches(w) && better(&w, best)) best = &w;
    }
  }
  v1::Assignment a;
  a.set_id(absl::StrCat("magic/", m.spec().name()));
  v1::MagicAssignment* magic = a.mutable_magic();
  magic->set_name(m.spec().name());
  magic->set_address(m.spec().address());
  *magic->mutable_ports() = m.spec().ports();
  if (best != nullptr) {
    magic->set_target_address(best->address);
    magic->set_target_owner(best->owner);
    magic->set_target_node(best->node);
  }
  return a;
}

void NodeModel::SetAssignment(const std::string& node, const std::string& id, std::optional<v1::Assignment> want,
                              absl::string_view traceparent, uint64_t revision) {
  auto n = assignments_.find(node);
  v1::Assignment* have = nullptr;
  if (n != assignments_.end()) {
    auto it = n->second.find(id);
    if (it != n->second.end()) have = &it->second;
  }
  if (!want) {
    if (have == nullptr) return;
    n->second.erase(id);
    if (n->second.empty()) assignments_.erase(n);
    v1::AssignmentChange& c = changes_.emplace_back();
    c.set_node(node);
    c.set_id(id);
    return;
  }
  if (have != nullptr && SameContent(*have, *want)) return;
  want->set_revision(revision);
  want->set_traceparent(std::string(traceparent));
  v1::AssignmentChange& c = changes_.emplace_back();
  c.set_node(node);
  c.set_id(id);
  *c.mutable_assignment() = *want;
  assignments_[node][id] = std::move(*want);
}

void NodeModel::RecomputeClaims(absl::string_view traceparent, uint64_t revision) {
  std::map<std::string, std::pair<std::string, v1::Assignment>> want;  // id -> (node, assignment)
  for (const auto& [name, x] : externals_) {
    if (x->node().empty()) continue;
    v1::Assignment a;
    a.set_id(absl::StrCat("external/", name));
    v1::ExternalAssignment* ext = a.mutable_external();
    ext->set_name(name);
    ext->set_address(x->address());
    ext->set_prefix_length(x->prefix_length());
    ext->set_pool(x->spec().pool());
    const std::string id = a.id();
    want[id] = {x->node(), std::move(a)};
  }
  for (auto& [name, e] : elastics_) {
    const Workload* w = ElasticWorkload(*e);
    const std::string addr = w ? w->address : std::string();
    const std::string owner = w ? w->owner : std::string();
    const std::string node = w ? w->node : std::string();
    if (e->workload_address() != addr || e->workload_owner() != owner || e->node() != node) {
      v1::ElasticAddress copy = *e;
      copy.set_workload_address(addr);
      copy.set_workload_owner(owner);
      copy.set_node(node);
      e = Share(std::move(copy));
      view_dirty_ = true;
    }
    if (node.empty()) continue;
    v1::Assignment a;
    a.set_id(absl::StrCat("elastic/", name));
    v1::ElasticAssignment* el = a.mutable_elastic();
    el->set_name(name);
    el->set_address(e->address());
    el->set_prefix_length(e->prefix_length());
    el->set_pool(e->spec().pool());
    el->set_workload_address(addr);
    el->set_workload_owner(owner);
    const std::string id = a.id();
    want[id] = {node, std::move(a)};
  }
  for (auto it = claim_node_.begin(); it != claim_node_.end();) {
    auto w = want.find(it->first);
    if (w == want.end() || w->second.first != it->second) {
      SetAssignment(it->second, it->first, std::nullopt, traceparent, revision);
      it = claim_node_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& [id, nw] : want) {
    claim_node_[id] = nw.first;
    SetAssignment(nw.first, id, std::move(nw.second), traceparent, revision);
  }
}

void NodeModel::Recompute(absl::string_view traceparent, uint64_t revision) {
  if (dirty_claims_) {
    dirty_claims_ = false;
    RecomputeClaims(traceparent, revision);
  }
  auto recompute_magic = [&](const std::string& name, const std::string& node) {
    auto m = magics_.find(name);
    std::optional<v1::Assignment> want;
    if (m != magics_.end()) want = MagicFor(*m->second, node);
    SetAssignment(node, absl::StrCat("magic/", name), std::move(want), traceparent, revision);
  };
  for (const std::string& name : dirty_magics_) {
    const std::string id = absl::StrCat("magic/", name);
    std::set<std::string> nodes;
    for (const auto& [node, n] : nodes_) {
      if (n->ready()) nodes.insert(node);
    }
    for (const auto& [node, held] : assignments_) {
      if (held.count(id)) nodes.insert(node);
    }
    for (const std::string& node : nodes) recompute_magic(name, node);
  }
  for (const auto& [name, node] : dirty_magic_nodes_) {
    if (!dirty_magics_.count(name)) recompute_magic(name, node);
  }
  for (const std::string& node : dirty_nodes_) {
    std::set<std::string> names;
    for (const auto& [name, m] : magics_) names.insert(name);
    if (auto held = assignments_.find(node); held != assignments_.end()) {
      for (const auto& [id, a] : held->second) {
        if (a.has_magic()) names.insert(a.magic().name());
      }
    }
    for (const std::string& name : names) {
      if (!dirty_magics_.count(name)) recompute_magic(name, node);
    }
  }
  dirty_magics_.clear();
  dirty_magic_nodes_.clear();
  dirty_nodes_.clear();
}

void NodeModel::AbortCommand() {
  // Nothing a refused command did reached the model; recomputation it asked for is harmless but unneeded.
  dirty_magic_nodes_.clear();
}

void NodeModel::Replace(Objects<v1::Node> nodes, Objects<v1::ExternalAddress> externals,
                        Objects<v1::ElasticAddress> elastics, Objects<v1::MagicAddress> magics) {
  nodes_ = std::move(nodes);
  externals_ = std::move(externals);
  elastics_ = std::move(elastics);
  magics_ = std::move(magics);
  selectors_.clear();
  elastic_owners_.clear();
  for (const auto& [name, m] : magics_) {
    selectors_[absl::StrCat("magic/", name)] =
        ParseLabelSelector(m->spec().label_selector(), "label_selector").value_or(LabelSelector{});
  }
  for (const auto& [name, e] : elastics_) {
    if (!e->association().owner().empty()) elastic_owners_.insert(e->association().owner());
    if (!e->association().label_selector().empty()) {
      selectors_[absl::StrCat("elastic/", name)] =
          ParseLabelSelector(e->association().label_selector(), "label_selector").value_or(LabelSelector{});
    }
  }
  workloads_.clear();
  workloads_by_node_.clear();
}

void NodeModel::Rederive(uint64_t revision) {
  // Recompute from scratch, then tell the hub only what differs from what it was told before.
  auto before = std::move(assignments_);
  assignments_.clear();
  claim_node_.clear();
  const size_t mark = changes_.size();
  dirty_claims_ = true;
  for (const auto& [name, m] : magics_) dirty_magics_.insert(name);
  Recompute("", revision);
  changes_.resize(mark);
  for (const auto& [node, held] : before) {
    auto now = assignments_.find(node);
    for (const auto& [id, a] : held) {
      if (now == assignments_.end() || !now->second.count(id)) {
        v1::AssignmentChange& c = changes_.emplace_back();
        c.set_node(node);
        c.set_id(id);
      }
    }
  }
  for (auto& [node, held] : assignments_) {
    auto old = before.find(node);
    for (auto& [id, a] : held) {
      if (old != before.end()) {
        auto o = old->second.find(id);
        if (o != old->second.end() && SameContent(o->second, a)) {
          a = o->second;  // unchanged: keeps its revision
          continue;
        }
      }
      v1::AssignmentChange& c = changes_.emplace_back();
      c.set_node(node);
      c.set_id(id);
      *c.mutable_assignment() = a;
    }
  }
  view_dirty_ = true;
}

NodeStateUpdate NodeModel::TakeUpdate(uint64_t revision) {
  NodeStateUpdate u;
  u.revision = revision;
  u.changes = std::move(changes_);
  changes_.clear();
  if (view_dirty_) {
    auto view = std::make_shared<NodeStateView>();
    view->revision = u.revision;
    view->nodes = nodes_;
    view->externals = externals_;
    view->elastics = elastics_;
    view->magics = magics_;
    u.view = std::move(view);
    view_dirty_ = false;
  }
  return u;
}

}  // namespace abode::domain

#include "storage/node_state.h"

#include <algorithm>
#include <tuple>

#include "absl/strings/strip.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "storage/rows.h"
#include "storage/schema.h"

namespace abode::storage {
namespace {

// Owner keys under which external and elastic addresses hold their address in the external pool.
constexpr absl::string_view kExternalOwner = "abode:external/";
constexpr absl::string_view kElasticOwner = "abode:elastic/";

enum Table { kNodes = 0, kExternals = 1, kElastics = 2, kMagics = 3 };

constexpr size_t kMaxInterfaces = 64;
constexpr size_t kMaxPorts = 64;

std::string Q(absl::string_view s) { return absl::StrCat("\"", s, "\""); }

// Rows are stored with deterministic serialization: equal states give equal bytes on every replica.
std::string Serialize(const google::protobuf::Message& m) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream sink(&out);
    google::protobuf::io::CodedOutputStream coded(&sink);
    coded.SetSerializationDeterministic(true);
    m.SerializeToCodedStream(&coded);
  }
  return out;
}

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
  return Serialize(x) == Serialize(y);
}

bool IsLinkLocal(const IpAddress& a) {
  if (a.family() == Family::kV4) return (a.value() >> 16) == 0xa9fe;  // 169.254.0.0/16
  return (a.value() >> 118) == (u128{0xfe80} >> 6);                 // fe80::/10
}

template <typename T>
std::shared_ptr<const T> Share(T value) {
  return std::make_shared<const T>(std::move(value));
}

}  // namespace

struct NodeState::Statements {
  Statement upsert[4];
  Statement remove[4];
  Statement scan_all;
};

NodeState::NodeState(Database& db, NodeStateHost& host) : db_(db), host_(host) {}
NodeState::~NodeState() = default;

absl::Status NodeState::PrepareStatements() {
  stmts_ = std::make_unique<Statements>();
  for (int t = 0; t < 4; ++t) {
    auto up = db_.Prepare(absl::StrCat("INSERT INTO ", kTables[t],
                                       " (name, record) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET record = "
                                       "excluded.record"));
    if (!up.ok()) return up.status();
    stmts_->upsert[t] = std::move(*up);
    auto rm = db_.Prepare(absl::StrCat("DELETE FROM ", kTables[t], " WHERE name = ?"));
    if (!rm.ok()) return rm.status();
    stmts_->remove[t] = std::move(*rm);
  }
  const std::string scan =
      absl::StrCat("SELECT ", kAllocationColumns, ", p.name FROM allocations a JOIN pools p ON p.id = a.pool_id");
  auto all = db_.Prepare(scan);
  if (!all.ok()) return all.status();
  stmts_->scan_all = std::move(*all);
  return absl::OkStatus();
}

bool NodeState::Handles(const v1::Command& command) {
  switch (command.op_case()) {
    case v1::Command::kRegisterNode:
    case v1::Command::kMarkNodeNotReady:
    case v1::Command::kCreateExternalAddress:
    case v1::Command::kDeleteExternalAddress:
    case v1::Command::kCreateElasticAddress:
    case v1::Command::kDeleteElasticAddress:
    case v1::Command::kAssociateElasticAddress:
    case v1::Command::kDisassociateElasticAddress:
    case v1::Command::kCreateMagicAddress:
    case v1::Command::kDeleteMagicAddress:
      return true;
    default:
      return false;
  }
}

absl::StatusOr<v1::CommandResult> NodeState::Apply(const v1::Command& c) {
  switch (c.op_case()) {
    case v1::Command::kRegisterNode: return RegisterNode(c.register_node());
    case v1::Command::kMarkNodeNotReady: return MarkNodeNotReady(c.mark_node_not_ready());
    case v1::Command::kCreateExternalAddress: return CreateExternal(c.create_external_address());
    case v1::Command::kDeleteExternalAddress: return DeleteExternal(c.delete_external_address());
    case v1::Command::kCreateElasticAddress: return CreateElastic(c.create_elastic_address());
    case v1::Command::kDeleteElasticAddress: return DeleteElastic(c.delete_elastic_address());
    case v1::Command::kAssociateElasticAddress: return Associate(c.associate_elastic_address());
    case v1::Command::kDisassociateElasticAddress: return Disassociate(c.disassociate_elastic_address());
    case v1::Command::kCreateMagicAddress: return CreateMagic(c.create_magic_address());
    case v1::Command::kDeleteMagicAddress: return DeleteMagic(c.delete_magic_address());
    default: return absl::InvalidArgumentError("command: not a node command");
  }
}

absl::Status NodeState::Store(absl::Status s) {
  if (!s.ok() && store_failure_.ok()) store_failure_ = s;
  return s;
}

absl::Status NodeState::TakeStoreFailure() { return std::exchange(store_failure_, absl::OkStatus()); }

absl::Status NodeState::WriteRow(int table, const std::string& name, const google::protobuf::Message& row) {
  return Store(stmts_->upsert[table].Bind(1, name).BindBlob(2, Serialize(row)).Run());
}

absl::Status NodeState::DeleteRow(int table, const std::string& name) {
  return Store(stmts_->remove[table].Bind(1, name).Run());
}

// ------------------------------------------------------------------------------------------------ nodes

absl::StatusOr<v1::CommandResult> NodeState::RegisterNode(const v1::RegisterNode& req) {
  const v1::NodeSpec& spec = req.node();
  if (spec.name().empty()) return absl::InvalidArgumentError("node.name: must not be empty");
  if (absl::Status s = ValidateNodeName(spec.name(), "node.name"); !s.ok()) return s;
  if (absl::Status s = ValidateLabels(spec.labels(), "node.labels"); !s.ok()) return s;
  if (static_cast<size_t>(spec.interfaces_size()) > kMaxInterfaces) {
    return absl::InvalidArgumentError(absl::StrCat("node.interfaces: at most ", kMaxInterfaces, " interfaces"));
  }
  auto it = nodes_.find(spec.name());
  if (it != nodes_.end() && it->second->ready() && Serialize(it->second->spec()) == Serialize(spec)) {
    v1::CommandResult same;
    *same.mutable_node() = *it->second;
    return same;  // a reconnect of a ready node changes nothing
  }
  const uint64_t rev = host_.NextRevision();
  v1::Node node;
  if (it != nodes_.end()) node = *it->second;
  *node.mutable_spec() = spec;
  if (it == nodes_.end()) node.set_create_revision(rev);
  if (!node.ready()) node.set_ready_change_time_unix_ms(host_.NowMs());
  node.set_ready(true);
  node.set_revision(rev);

  Objects<v1::Node> next = nodes_;
  next[spec.name()] = Share(node);
  std::vector<v1::ExternalAddress> moved = PlanPlacement(next, externals_);
  if (absl::Status s = WriteRow(kNodes, spec.name(), node); !s.ok()) return s;
  for (const auto& x : moved) {
    if (absl::Status s = WriteRow(kExternals, x.spec().name(), x); !s.ok()) return s;
  }
  nodes_ = std::move(next);
  for (auto& x : moved) {
    const std::string name = x.spec().name();
    externals_[name] = Share(std::move(x));
  }
  dirty_claims_ = true;
  dirty_nodes_.insert(spec.name());
  view_dirty_ = true;
  v1::CommandResult result;
  *result.mutable_node() = std::move(node);
  return result;
}

absl::StatusOr<v1::CommandResult> NodeState::MarkNodeNotReady(const v1::MarkNodeNotReady& req) {
  auto it = nodes_.find(req.name());
  if (it == nodes_.end()) return absl::NotFoundError(absl::StrCat("name: node ", Q(req.name()), " not found"));
  v1::CommandResult result;
  if (!it->second->ready()) {
    *result.mutable_node() = *it->second;
    return result;
  }
  v1::Node node = *it->second;
  node.set_ready(false);
  node.set_ready_change_time_unix_ms(host_.NowMs());
  node.set_revision(host_.NextRevision());
  Objects<v1::Node> next = nodes_;
  next[req.name()] = Share(node);
  std::vector<v1::ExternalAddress> moved = PlanPlacement(next, externals_);
  if (absl::Status s = WriteRow(kNodes, req.name(), node); !s.ok()) return s;
  for (const auto& x : moved) {
    if (absl::Status s = WriteRow(kExternals, x.spec().name(), x); !s.ok()) return s;
  }
  nodes_ = std::move(next);
  for (auto& x : moved) {
    const std::string name = x.spec().name();
    externals_[name] = Share(std::move(x));
  }
  dirty_claims_ = true;
  dirty_nodes_.insert(req.name());
  view_dirty_ = true;
  *result.mutable_node() = std::move(node);
  return result;
}

std::vector<v1::ExternalAddress> NodeState::PlanPlacement(const Objects<v1::Node>& nodes,
                                                          const Objects<v1::ExternalAddress>& externals) const {
  struct Candidate {
    const std::string* name;
    std::map<std::string, std::string> labels;
  };
  std::vector<Candidate> ready;
  for (const auto& [name, n] : nodes) {
    if (n->ready()) ready.push_back(Candidate{&name, LabelMap(n->spec().labels())});
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
      copy.set_revision(host_.CurrentRevision());
      moved.push_back(std::move(copy));
    }
  }
  return moved;
}

// ---------------------------------------------------------------------------------- external addresses

absl::StatusOr<v1::Allocation> NodeState::AllocateExternal(const std::string& owner, const std::string& pool,
                                                           const std::string& address, absl::string_view field) {
  const v1::PoolSpec* spec = host_.FindPool(pool);
  if (spec == nullptr) return absl::NotFoundError(absl::StrCat(field, ".pool: pool ", Q(pool), " not found"));
  if (spec->purpose() != v1::POOL_PURPOSE_EXTERNAL) {
    return absl::FailedPreconditionError(
        absl::StrCat(field, ".pool: pool ", Q(pool), " is not an external pool (purpose POOL_PURPOSE_EXTERNAL)"));
  }
  v1::AllocateRequest req;
  req.set_pool(pool);
  req.set_owner(owner);
  req.set_address(address);
  auto a = host_.AllocateAddress(req);
  if (!a.ok()) {
    // The core names its own fields ("address: ..."); say which request field that is.
    return absl::Status(a.status().code(), absl::StrCat(field, ".", a.status().message()));
  }
  return a;
}

template <typename Object>
absl::StatusOr<NodeState::NewAddress<Object>> NodeState::PrepareAddress(const decltype(Object().spec())& spec,
                                                                        const Objects<Object>& stored,
                                                                        absl::string_view kind,
                                                                        absl::string_view owner_prefix,
                                                                        const std::function<absl::Status()>& check) {
  if (absl::Status s = ValidateName(spec.name(), "address.name", false); !s.ok()) return s;
  if (absl::Status s = ValidateName(spec.pool(), "address.pool", false); !s.ok()) return s;
  if (absl::Status s = check(); !s.ok()) return s;
  if (!spec.address().empty()) {
    if (auto a = IpAddress::Parse(spec.address(), "address.address"); !a.ok()) return a.status();
  }
  if (auto it = stored.find(spec.name()); it != stored.end()) {
    if (Serialize(it->second->spec()) == Serialize(spec)) return NewAddress<Object>{*it->second, true};
    return absl::AlreadyExistsError(absl::StrCat("address.name: ", kind, " ", Q(spec.name()), " already exists"));
  }
  auto alloc = AllocateExternal(absl::StrCat(owner_prefix, spec.name()), spec.pool(), spec.address(), "address");
  if (!alloc.ok()) return alloc.status();
  NewAddress<Object> out;
  *out.object.mutable_spec() = spec;
  out.object.set_address(alloc->address());
  out.object.set_prefix_length(alloc->prefix_length());
  out.object.set_network(alloc->network());
  out.object.set_create_revision(host_.CurrentRevision());
  out.object.set_create_time_unix_ms(host_.NowMs());
  out.object.set_revision(host_.CurrentRevision());
  return out;
}

absl::StatusOr<v1::CommandResult> NodeState::CreateExternal(const v1::CreateExternalAddressRequest& req) {
  const v1::ExternalAddressSpec& spec = req.address();
  auto prepared = PrepareAddress<v1::ExternalAddress>(spec, externals_, "external address", kExternalOwner, [&] {
    return ParseLabelSelector(spec.node_selector(), "address.node_selector").status();
  });
  if (!prepared.ok()) return prepared.status();
  if (prepared->existing) {
    v1::CommandResult same;
    *same.mutable_external_address() = std::move(prepared->object);
    return same;
  }
  const v1::ExternalAddress& x = prepared->object;
  Objects<v1::ExternalAddress> next = externals_;
  next[spec.name()] = Share(x);
  for (auto& m : PlanPlacement(nodes_, next)) {
    const std::string moved = m.spec().name();
    next[moved] = Share(std::move(m));
  }
  for (const auto& [name, e] : next) {
    if (externals_.count(name) && externals_.at(name) == e) continue;
    if (absl::Status s = WriteRow(kExternals, name, *e); !s.ok()) return s;
  }
  externals_ = std::move(next);
  dirty_claims_ = true;
  view_dirty_ = true;
  v1::CommandResult result;
  *result.mutable_external_address() = *externals_.at(spec.name());
  return result;
}

absl::StatusOr<v1::CommandResult> NodeState::DeleteExternal(const v1::DeleteExternalAddressRequest& req) {
  auto it = externals_.find(req.name());
  if (it == externals_.end()) {
    return absl::NotFoundError(absl::StrCat("name: external address ", Q(req.name()), " not found"));
  }
  if (absl::Status s = DeleteRow(kExternals, req.name()); !s.ok()) return s;
  if (absl::Status s = host_.ReleaseOwner(absl::StrCat(kExternalOwner, req.name()), it->second->spec().pool());
      !s.ok()) {
    return s;
  }
  externals_.erase(it);
  dirty_claims_ = true;
  view_dirty_ = true;
  v1::CommandResult result;
  result.mutable_delete_address()->set_revision(host_.NextRevision());
  return result;
}

// ----------------------------------------------------------------------------------- elastic addresses

absl::StatusOr<v1::CommandResult> NodeState::CreateElastic(const v1::CreateElasticAddressRequest& req) {
  const v1::ElasticAddressSpec& spec = req.address();
  auto prepared = PrepareAddress<v1::ElasticAddress>(spec, elastics_, "elastic address", kElasticOwner,
                                                     [] { return absl::OkStatus(); });
  if (!prepared.ok()) return prepared.status();
  if (prepared->existing) {
    v1::CommandResult same;
    *same.mutable_elastic_address() = std::move(prepared->object);
    return same;
  }
  v1::ElasticAddress& e = prepared->object;
  if (absl::Status s = WriteRow(kElastics, spec.name(), e); !s.ok()) return s;
  elastics_[spec.name()] = Share(e);
  view_dirty_ = true;
  v1::CommandResult result;
  *result.mutable_elastic_address() = std::move(e);
  return result;
}

absl::StatusOr<v1::CommandResult> NodeState::DeleteElastic(const v1::DeleteElasticAddressRequest& req) {
  auto it = elastics_.find(req.name());
  if (it == elastics_.end()) {
    return absl::NotFoundError(absl::StrCat("name: elastic address ", Q(req.name()), " not found"));
  }
  if (absl::Status s = DeleteRow(kElastics, req.name()); !s.ok()) return s;
  if (absl::Status s = host_.ReleaseOwner(absl::StrCat(kElasticOwner, req.name()), it->second->spec().pool()); !s.ok()) {
    return s;
  }
  elastics_.erase(it);
  selectors_.erase(absl::StrCat("elastic/", req.name()));
  elastic_owners_.clear();
  for (const auto& [n, e] : elastics_) {
    if (!e->association().owner().empty()) elastic_owners_.insert(e->association().owner());
  }
  PruneTracked();
  dirty_claims_ = true;
  view_dirty_ = true;
  v1::CommandResult result;
  result.mutable_delete_address()->set_revision(host_.NextRevision());
  return result;
}

absl::StatusOr<v1::CommandResult> NodeState::Associate(const v1::AssociateElasticAddressRequest& req) {
  auto it = elastics_.find(req.name());
  if (it == elastics_.end()) {
    return absl::NotFoundError(absl::StrCat("name: elastic address ", Q(req.name()), " not found"));
  }
  const v1::ElasticAssociation& assoc = req.association();
  if (assoc.owner().empty() == assoc.label_selector().empty()) {
    return absl::InvalidArgumentError("association: set exactly one of owner or label_selector");
  }
  LabelSelector sel;
  if (!assoc.owner().empty()) {
    if (absl::Status s = ValidateOwner(assoc.owner(), "association.owner"); !s.ok()) return s;
  } else {
    auto parsed = ParseLabelSelector(assoc.label_selector(), "association.label_selector");
    if (!parsed.ok()) return parsed.status();
    if (parsed->empty()) return absl::InvalidArgumentError("association.label_selector: must have at least one term");
    sel = std::move(*parsed);
  }
  auto elastic_ip = IpAddress::Parse(it->second->address(), "address");
  if (!elastic_ip.ok()) return absl::DataLossError(elastic_ip.status().message());

  // Resolve against the stored allocations: exactly one workload allocation of the address's family.
  std::vector<v1::Allocation> found;
  absl::Status scanned = ForEachAllocation(assoc.owner(), [&](v1::Allocation a) {
    if (!IsWorkloadPool(a.pool())) return;
    auto ip = IpAddress::Parse(a.address(), "address");
    if (!ip.ok() || ip->family() != elastic_ip->family()) return;
    if (!assoc.owner().empty() || SelectorMatches(sel, LabelMap(a.labels()))) found.push_back(std::move(a));
  });
  if (!scanned.ok()) return scanned;
  const std::string what = assoc.owner().empty() ? absl::StrCat("association.label_selector: ", Q(assoc.label_selector()))
                                                 : absl::StrCat("association.owner: ", Q(assoc.owner()));
  const char* family = elastic_ip->family() == Family::kV4 ? "IPv4" : "IPv6";
  if (found.empty()) {
    return absl::NotFoundError(absl::StrCat(what, " matches no ", family, " workload allocation"));
  }
  if (found.size() > 1) {
    return absl::FailedPreconditionError(absl::StrCat(what, " is ambiguous: it matches ", found.size(), " ", family,
                                                      " workload allocations (", found[0].owner(), ", ",
                                                      found[1].owner(), found.size() > 2 ? ", ..." : "", ")"));
  }
  if (found[0].node().empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat(what, " matches allocation ", found[0].address(), " of owner ", Q(found[0].owner()),
                     ", which has no node to carry the elastic address"));
  }
  v1::ElasticAddress e = *it->second;
  *e.mutable_association() = assoc;
  e.set_revision(host_.NextRevision());
  e.clear_workload_address();  // derived: filled in by Recompute
  e.clear_workload_owner();
  e.clear_node();
  if (absl::Status s = WriteRow(kElastics, req.name(), e); !s.ok()) return s;

  const std::string sel_key = absl::StrCat("elastic/", req.name());
  selectors_.erase(sel_key);
  if (!sel.empty()) selectors_[sel_key] = sel;
  elastic_owners_.clear();
  for (const auto& [n, x] : elastics_) {
    if (n != req.name() && !x->association().owner().empty()) elastic_owners_.insert(x->association().owner());
  }
  if (!assoc.owner().empty()) elastic_owners_.insert(assoc.owner());
  elastics_[req.name()] = Share(e);
  PruneTracked();
  if (absl::Status s = ScanAllocations(assoc.owner()); !s.ok()) return s;
  dirty_claims_ = true;
  view_dirty_ = true;
  v1::CommandResult result;
  v1::ElasticAddress* out = result.mutable_elastic_address();
  *out = e;
  if (const Workload* w = ElasticTarget(e); w != nullptr) {
    out->set_workload_address(w->address);
    out->set_workload_owner(w->owner);
    out->set_node(w->node);
  }
  return result;
}

absl::StatusOr<v1::CommandResult> NodeState::Disassociate(const v1::DisassociateElasticAddressRequest& req) {
  auto it = elastics_.find(req.name());
  if (it == elastics_.end()) {
    return absl::NotFoundError(absl::StrCat("name: elastic address ", Q(req.name()), " not found"));
  }
  v1::CommandResult result;
  if (!it->second->has_association()) {
    *result.mutable_elastic_address() = *it->second;
    return result;
  }
  v1::ElasticAddress e = *it->second;
  e.clear_association();
  e.clear_workload_address();
  e.clear_workload_owner();
  e.clear_node();
  e.set_revision(host_.NextRevision());
  if (absl::Status s = WriteRow(kElastics, req.name(), e); !s.ok()) return s;
  elastics_[req.name()] = Share(e);
  selectors_.erase(absl::StrCat("elastic/", req.name()));
  elastic_owners_.clear();
  for (const auto& [n, x] : elastics_) {
    if (!x->association().owner().empty()) elastic_owners_.insert(x->association().owner());
  }
  PruneTracked();
  dirty_claims_ = true;
  view_dirty_ = true;
  *result.mutable_elastic_address() = std::move(e);
  return result;
}

// ------------------------------------------------------------------------------------- magic addresses

std::optional<std::pair<std::string, std::string>> NodeState::MagicInside(const Prefix& cidr) const {
  for (const auto& [name, m] : magics_) {
    auto ip = IpAddress::Parse(m->spec().address(), "address");
    if (ip.ok() && ip->family() == cidr.family() && cidr.Contains(*ip)) return std::make_pair(name, m->spec().address());
  }
  return std::nullopt;
}

absl::StatusOr<v1::CommandResult> NodeState::CreateMagic(const v1::CreateMagicAddressRequest& req) {
  v1::MagicAddressSpec spec = req.address();
  if (absl::Status s = ValidateName(spec.name(), "address.name", false); !s.ok()) return s;
  if (spec.address().empty()) return absl::InvalidArgumentError("address.address: must not be empty");
  auto ip = IpAddress::Parse(spec.address(), "address.address");
  if (!ip.ok()) return ip.status();
  if (!IsLinkLocal(*ip)) {
    return absl::InvalidArgumentError(absl::StrCat("address.address: ", ip->ToString(),
                                                   " is not link-local (169.254.0.0/16 or fe80::/10)"));
  }
  spec.set_address(ip->ToString());
  if (spec.ports().empty()) return absl::InvalidArgumentError("address.ports: at least one port mapping is required");
  if (static_cast<size_t>(spec.ports_size()) > kMaxPorts) {
    return absl::InvalidArgumentError(absl::StrCat("address.ports: at most ", kMaxPorts, " port mappings"));
  }
  std::set<std::pair<int, uint32_t>> seen;
  for (int i = 0; i < spec.ports_size(); ++i) {
    v1::PortMapping& p = *spec.mutable_ports(i);
    const std::string field = absl::StrCat("address.ports[", i, "]");
    if (p.protocol() == v1::PROTOCOL_UNSPECIFIED || !v1::Protocol_IsValid(p.protocol())) {
      return absl::InvalidArgumentError(absl::StrCat(field, ".protocol: must be tcp, udp or sctp"));
    }
    if (p.port() == 0 || p.port() > 65535) {
      return absl::InvalidArgumentError(absl::StrCat(field, ".port: ", p.port(), " is outside 1..65535"));
    }
    if (p.target_port() > 65535) {
      return absl::InvalidArgumentError(absl::StrCat(field, ".target_port: ", p.target_port(), " is outside 1..65535"));
    }
    if (p.target_port() == 0) p.set_target_port(p.port());
    if (!seen.emplace(p.protocol(), p.port()).second) {
      return absl::InvalidArgumentError(absl::StrCat(field, ": port ", p.port(), " is mapped twice"));
    }
  }
  auto sel = ParseLabelSelector(spec.label_selector(), "address.label_selector");
  if (!sel.ok()) return sel.status();
  if (sel->empty()) return absl::InvalidArgumentError("address.label_selector: must have at least one term");
  if (spec.policy() == v1::MAGIC_POLICY_UNSPECIFIED) spec.set_policy(v1::MAGIC_POLICY_DROP);
  if (!v1::MagicPolicy_IsValid(spec.policy())) return absl::InvalidArgumentError("address.policy: must be drop or fallback");

  if (auto it = magics_.find(spec.name()); it != magics_.end()) {
    if (Serialize(it->second->spec()) == Serialize(spec)) {
      v1::CommandResult same;
      *same.mutable_magic_address() = *it->second;
      return same;
    }
    return absl::AlreadyExistsError(absl::StrCat("address.name: magic address ", Q(spec.name()), " already exists"));
  }
  for (const auto& [name, m] : magics_) {
    if (m->spec().address() == spec.address()) {
      return absl::AlreadyExistsError(
          absl::StrCat("address.address: ", spec.address(), " is already magic address ", Q(name)));
    }
  }
  if (std::string pool = host_.PoolContaining(*ip); !pool.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("address.address: ", spec.address(), " collides with pool ", Q(pool)));
  }
  v1::MagicAddress m;
  *m.mutable_spec() = spec;
  m.set_create_revision(host_.NextRevision());
  m.set_create_time_unix_ms(host_.NowMs());
  m.set_revision(m.create_revision());
  if (absl::Status s = WriteRow(kMagics, spec.name(), m); !s.ok()) return s;
  magics_[spec.name()] = Share(m);
  selectors_[absl::StrCat("magic/", spec.name())] = std::move(*sel);
  if (absl::Status s = ScanAllocations(""); !s.ok()) return s;
  dirty_magics_.insert(spec.name());
  view_dirty_ = true;
  v1::CommandResult result;
  *result.mutable_magic_address() = std::move(m);
  return result;
}

absl::StatusOr<v1::CommandResult> NodeState::DeleteMagic(const v1::DeleteMagicAddressRequest& req) {
  auto it = magics_.find(req.name());
  if (it == magics_.end()) return absl::NotFoundError(absl::StrCat("name: magic address ", Q(req.name()), " not found"));
  if (absl::Status s = DeleteRow(kMagics, req.name()); !s.ok()) return s;
  magics_.erase(it);
  selectors_.erase(absl::StrCat("magic/", req.name()));
  PruneTracked();
  dirty_magics_.insert(req.name());
  view_dirty_ = true;
  v1::CommandResult result;
  result.mutable_delete_address()->set_revision(host_.NextRevision());
  return result;
}

// ----------------------------------------------------------------------------------- tracked workloads

bool NodeState::IsWorkloadPool(const std::string& pool) const {
  const v1::PoolSpec* spec = host_.FindPool(pool);
  return spec != nullptr && spec->purpose() != v1::POOL_PURPOSE_EXTERNAL;
}

bool NodeState::Relevant(const v1::Allocation& a) const {
  if (elastic_owners_.count(a.owner())) return true;
  if (selectors_.empty()) return false;
  const auto labels = LabelMap(a.labels());
  for (const auto& [key, sel] : selectors_) {
    if (SelectorMatches(sel, labels)) return true;
  }
  return false;
}

void NodeState::Track(const v1::Allocation& a) {
  auto ip = IpAddress::Parse(a.address(), "address");
  if (!ip.ok()) return;
  WorkloadKey key{a.pool(), a.owner()};
  Workload w{a.pool(), a.owner(), a.node(), ip->ToString(), *ip, a.create_revision(), LabelMap(a.labels())};
  workloads_by_node_[w.node].insert(key);
  MarkWorkloadDirty(w);
  workloads_[key] = std::move(w);
}

void NodeState::Untrack(const WorkloadKey& key) {
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

void NodeState::PruneTracked() {
  std::vector<WorkloadKey> gone;
  for (const auto& [key, w] : workloads_) {
    bool keep = elastic_owners_.count(w.owner) > 0;
    for (const auto& [k, sel] : selectors_) keep = keep || SelectorMatches(sel, w.labels);
    if (!keep) gone.push_back(key);
  }
  for (const auto& key : gone) Untrack(key);
}

void NodeState::MarkWorkloadDirty(const Workload& w) {
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

absl::Status NodeState::ForEachAllocation(const std::string& only_owner,
                                          absl::FunctionRef<void(v1::Allocation)> visit) {
  if (!only_owner.empty()) {
    auto owned = host_.OwnerAllocations(only_owner);
    if (!owned.ok()) return owned.status();
    for (auto& a : *owned) visit(std::move(a));
    return absl::OkStatus();
  }
  Statement& stmt = stmts_->scan_all;
  return stmt.EachRow([&] {
    v1::Allocation a;
    AllocationFromRow(stmt, 0, PoolFacts{std::string(stmt.Text(kAllocationColumnCount)), 0, ""}, &a);
    visit(std::move(a));
  });
}

absl::Status NodeState::ScanAllocations(const std::string& only_owner) {
  std::vector<v1::Allocation> add;
  absl::Status scanned = ForEachAllocation(only_owner, [&](v1::Allocation a) {
    if (!IsWorkloadPool(a.pool()) || workloads_.count({a.pool(), a.owner()}) || !Relevant(a)) return;
    add.push_back(std::move(a));
  });
  if (!scanned.ok()) return scanned;
  for (const auto& a : add) Track(a);
  return absl::OkStatus();
}

// ------------------------------------------------------------------------------------------ derivation

const NodeState::Workload* NodeState::ElasticTarget(const v1::ElasticAddress& e) const {
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

std::optional<v1::Assignment> NodeState::MagicFor(const v1::MagicAddress& m, const std::string& node) const {
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

void NodeState::SetAssignment(const std::string& node, const std::string& id, std::optional<v1::Assignment> want,
                              absl::string_view traceparent, bool emit) {
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
    if (emit) {
      v1::AssignmentChange& c = changes_.emplace_back();
      c.set_node(node);
      c.set_id(id);
    }
    return;
  }
  if (have != nullptr && SameContent(*have, *want)) return;
  want->set_revision(host_.CurrentRevision());
  want->set_traceparent(std::string(traceparent));
  if (emit) {
    v1::AssignmentChange& c = changes_.emplace_back();
    c.set_node(node);
    c.set_id(id);
    *c.mutable_assignment() = *want;
  }
  assignments_[node][id] = std::move(*want);
}

void NodeState::Recompute(absl::string_view traceparent) {
  if (dirty_claims_) {
    dirty_claims_ = false;
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
      const Workload* w = ElasticTarget(*e);
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
        SetAssignment(it->second, it->first, std::nullopt, traceparent, true);
        it = claim_node_.erase(it);
      } else {
        ++it;
      }
    }
    for (auto& [id, nw] : want) {
      claim_node_[id] = nw.first;
      SetAssignment(nw.first, id, std::move(nw.second), traceparent, true);
    }
  }
  auto recompute_magic = [&](const std::string& name, const std::string& node) {
    auto m = magics_.find(name);
    std::optional<v1::Assignment> want;
    if (m != magics_.end()) want = MagicFor(*m->second, node);
    SetAssignment(node, absl::StrCat("magic/", name), std::move(want), traceparent, true);
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

void NodeState::AbortCommand() {
  // Nothing a refused command did reached memory; recomputation it asked for is harmless but unneeded.
  dirty_magic_nodes_.clear();
}

absl::Status NodeState::AfterCommand(const std::vector<AllocationChange>& changes, absl::string_view traceparent) {
  for (const AllocationChange& c : changes) {
    const v1::Allocation& a = c.allocation;
    if (c.added) {
      if (IsWorkloadPool(a.pool()) && Relevant(a)) Track(a);
      continue;
    }
    if (workloads_.count({a.pool(), a.owner()})) {
      Untrack({a.pool(), a.owner()});
      continue;
    }
    // The address of an external or elastic address was released underneath it (its pool was deleted with
    // force, or its owner key released directly): the object goes with its address.
    absl::string_view owner = a.owner();
    if (absl::ConsumePrefix(&owner, kExternalOwner)) {
      auto it = externals_.find(owner);
      if (it != externals_.end() && it->second->address() == a.address() && it->second->spec().pool() == a.pool()) {
        if (absl::Status s = DeleteRow(kExternals, it->first); !s.ok()) return s;
        externals_.erase(it);
        dirty_claims_ = true;
        view_dirty_ = true;
      }
    } else if (absl::ConsumePrefix(&owner, kElasticOwner)) {
      auto it = elastics_.find(owner);
      if (it != elastics_.end() && it->second->address() == a.address() && it->second->spec().pool() == a.pool()) {
        if (absl::Status s = DeleteRow(kElastics, it->first); !s.ok()) return s;
        selectors_.erase(absl::StrCat("elastic/", it->first));
        elastics_.erase(it);
        elastic_owners_.clear();
        for (const auto& [n, e] : elastics_) {
          if (!e->association().owner().empty()) elastic_owners_.insert(e->association().owner());
        }
        PruneTracked();
        dirty_claims_ = true;
        view_dirty_ = true;
      }
    }
  }
  Recompute(traceparent);
  return absl::OkStatus();
}

void NodeState::RecomputeAll(absl::string_view traceparent, bool emit) {
  (void)emit;
  dirty_claims_ = true;
  for (const auto& [name, m] : magics_) dirty_magics_.insert(name);
  Recompute(traceparent);
}

absl::Status NodeState::Load() {
  Objects<v1::Node> nodes;
  Objects<v1::ExternalAddress> externals;
  Objects<v1::ElasticAddress> elastics;
  Objects<v1::MagicAddress> magics;
  for (int t = 0; t < 4; ++t) {
    auto stmt = db_.Prepare(absl::StrCat("SELECT name, record FROM ", kTables[t], " ORDER BY name"));
    if (!stmt.ok()) return stmt.status();
    for (;;) {
      auto row = stmt->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      const std::string name(stmt->Text(0));
      const absl::string_view blob = stmt->Blob(1);
      bool ok = false;
      auto parse = [&](auto& into, auto msg) {
        ok = msg.ParseFromArray(blob.data(), static_cast<int>(blob.size()));
        into[name] = Share(std::move(msg));
      };
      switch (t) {
        case kNodes: parse(nodes, v1::Node()); break;
        case kExternals: parse(externals, v1::ExternalAddress()); break;
        case kElastics: parse(elastics, v1::ElasticAddress()); break;
        default: parse(magics, v1::MagicAddress()); break;
      }
      if (!ok) return absl::DataLossError(absl::StrCat(kTables[t], " row ", Q(name), " is unreadable"));
    }
  }
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
  if (!selectors_.empty() || !elastic_owners_.empty()) {
    if (absl::Status s = ScanAllocations(""); !s.ok()) return s;
  }
  // Recompute from scratch, then tell the hub only what differs from what it was told before.
  auto before = std::move(assignments_);
  assignments_.clear();
  claim_node_.clear();
  const size_t mark = changes_.size();
  RecomputeAll("", false);
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
  return absl::OkStatus();
}

NodeStateUpdate NodeState::TakeUpdate() {
  NodeStateUpdate u;
  u.revision = host_.CurrentRevision();
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

// ---------------------------------------------------------------------------------------------- snapshot

absl::Status NodeState::DumpRecords(Database& db, google::protobuf::io::CodedOutputStream& out,
                                    v1::SnapshotTrailer* counts) {
  v1::SnapshotRecord rec;
  for (int t = 0; t < 4; ++t) {
    auto stmt = db.Prepare(absl::StrCat("SELECT name, record FROM ", kTables[t], " ORDER BY name"));
    if (!stmt.ok()) return stmt.status();
    for (;;) {
      auto row = stmt->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      rec.Clear();
      const absl::string_view blob = stmt->Blob(1);
      google::protobuf::Message* msg = nullptr;
      switch (t) {
        case kNodes: msg = rec.mutable_node(); counts->set_nodes(counts->nodes() + 1); break;
        case kExternals:
          msg = rec.mutable_external_address();
          counts->set_external_addresses(counts->external_addresses() + 1);
          break;
        case kElastics:
          msg = rec.mutable_elastic_address();
          counts->set_elastic_addresses(counts->elastic_addresses() + 1);
          break;
        default:
          msg = rec.mutable_magic_address();
          counts->set_magic_addresses(counts->magic_addresses() + 1);
          break;
      }
      if (!msg->ParseFromArray(blob.data(), static_cast<int>(blob.size()))) {
        return absl::DataLossError(absl::StrCat(kTables[t], " row ", Q(stmt->Text(0)), " is unreadable"));
      }
      out.WriteVarint32(static_cast<uint32_t>(rec.ByteSizeLong()));
      rec.SerializeWithCachedSizes(&out);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> NodeState::LoadRecord(Database& db, const v1::SnapshotRecord& rec, v1::SnapshotTrailer* seen) {
  int table = -1;
  std::string name;
  const google::protobuf::Message* msg = nullptr;
  switch (rec.record_case()) {
    case v1::SnapshotRecord::kNode:
      table = kNodes;
      name = rec.node().spec().name();
      msg = &rec.node();
      seen->set_nodes(seen->nodes() + 1);
      break;
    case v1::SnapshotRecord::kExternalAddress:
      table = kExternals;
      name = rec.external_address().spec().name();
      msg = &rec.external_address();
      seen->set_external_addresses(seen->external_addresses() + 1);
      break;
    case v1::SnapshotRecord::kElasticAddress:
      table = kElastics;
      name = rec.elastic_address().spec().name();
      msg = &rec.elastic_address();
      seen->set_elastic_addresses(seen->elastic_addresses() + 1);
      break;
    case v1::SnapshotRecord::kMagicAddress:
      table = kMagics;
      name = rec.magic_address().spec().name();
      msg = &rec.magic_address();
      seen->set_magic_addresses(seen->magic_addresses() + 1);
      break;
    default:
      return false;
  }
  auto stmt = db.Prepare(absl::StrCat("INSERT INTO ", kTables[table], " (name, record) VALUES (?, ?)"));
  if (!stmt.ok()) return stmt.status();
  if (absl::Status s = stmt->Bind(1, name).BindBlob(2, Serialize(*msg)).Run(); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("snapshot: ", kTables[table], " record ", Q(name), ": ", s.message()));
  }
  return true;
}

bool NodeState::CountsMatch(const v1::SnapshotTrailer& want, const v1::SnapshotTrailer& seen) {
  return want.nodes() == seen.nodes() && want.external_addresses() == seen.external_addresses() &&
         want.elastic_addresses() == seen.elastic_addresses() && want.magic_addresses() == seen.magic_addresses();
}

}  // namespace abode::storage

#include "domain/node_commands.h"

#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "domain/node_specs.h"

namespace abode::domain {
namespace {

std::string Q(absl::string_view s) { return absl::StrCat("\"", s, "\""); }

std::map<std::string, std::string> LabelMap(const google::protobuf::Map<std::string, std::string>& m) {
  return std::map<std::string, std::string>(m.begin(), m.end());
}

template <typename T>
std::shared_ptr<const T> Share(T value) {
  return std::make_shared<const T>(std::move(value));
}

void WriteRow(NodeTable table, std::string name, std::shared_ptr<const google::protobuf::Message> record,
              NodeChangeSet& out) {
  out.rows.push_back(NodeChangeSet::Row{table, std::move(name), std::move(record)});
}

void DeleteRow(NodeTable table, std::string name, NodeChangeSet& out) {
  out.rows.push_back(NodeChangeSet::Row{table, std::move(name), nullptr});
}

CommandOutcome Deleted(uint64_t revision) {
  v1::CommandResult result;
  result.mutable_delete_address()->set_revision(revision);
  return result;
}

}  // namespace

std::string DecommissionReason(absl::string_view node, absl::string_view reason) {
  if (reason.empty()) return absl::StrCat("node ", node, " decommissioned");
  return absl::StrCat("node ", node, " decommissioned: ", reason);
}

bool NodeCommands::Handles(const v1::Command& command) {
  switch (command.op_case()) {
    case v1::Command::kRegisterNode:
    case v1::Command::kMarkNodeNotReady:
    case v1::Command::kSetNodeLabels:
    case v1::Command::kCreateExternalAddress:
    case v1::Command::kDeleteExternalAddress:
    case v1::Command::kCreateElasticAddress:
    case v1::Command::kDeleteElasticAddress:
    case v1::Command::kAssociateElasticAddress:
    case v1::Command::kDisassociateElasticAddress:
    case v1::Command::kCreateMagicAddress:
    case v1::Command::kDeleteMagicAddress:
    case v1::Command::kDeleteNode:
    case v1::Command::kReclaimNodeAllocations:
      return true;
    default:
      return false;
  }
}

CommandOutcome NodeCommands::Apply(const v1::Command& c, const Stamp& stamp, NodeChangeSet& out) {
  out.Clear(stamp.revision);
  switch (c.op_case()) {
    case v1::Command::kRegisterNode: return RegisterNode(c.register_node(), stamp, out);
    case v1::Command::kMarkNodeNotReady: return MarkNodeNotReady(c.mark_node_not_ready(), stamp, out);
    case v1::Command::kSetNodeLabels: return SetNodeLabels(c.set_node_labels(), out);
    case v1::Command::kCreateExternalAddress: return CreateExternal(c.create_external_address(), stamp, out);
    case v1::Command::kDeleteExternalAddress:
      return DeleteAddress(model_.externals(), c.delete_external_address().name(), NodeTable::kExternals, stamp, out);
    case v1::Command::kCreateElasticAddress: return CreateElastic(c.create_elastic_address(), stamp, out);
    case v1::Command::kDeleteElasticAddress:
      return DeleteAddress(model_.elastics(), c.delete_elastic_address().name(), NodeTable::kElastics, stamp, out);
    case v1::Command::kAssociateElasticAddress: return Associate(c.associate_elastic_address(), out);
    case v1::Command::kDisassociateElasticAddress: return Disassociate(c.disassociate_elastic_address(), out);
    case v1::Command::kCreateMagicAddress: return CreateMagic(c.create_magic_address(), stamp, out);
    case v1::Command::kDeleteMagicAddress: return DeleteMagic(c.delete_magic_address(), out);
    case v1::Command::kDeleteNode: return DeleteNode(c.delete_node(), stamp, out);
    case v1::Command::kReclaimNodeAllocations:
      return ReclaimNodeAllocations(c.reclaim_node_allocations(), stamp, out);
    default: return absl::InvalidArgumentError("command: not a node command");
  }
}

absl::Status NodeCommands::CommitToModel(NodeChangeSet& changes, v1::CommandResult& result) {
  if (changes.model_change) changes.model_change(model_);
  if (changes.track_workloads) {
    if (absl::Status s = TrackWorkloads(*changes.track_workloads); !s.ok()) return s;
  }
  if (changes.derive_elastic_target && result.has_elastic_address()) {
    v1::ElasticAddress* e = result.mutable_elastic_address();
    if (auto target = model_.ElasticTarget(*e)) {
      e->set_workload_address(target->address);
      e->set_workload_owner(target->owner);
      e->set_node(target->node);
    }
  }
  return absl::OkStatus();
}

// ------------------------------------------------------------------------------------------------ nodes

CommandOutcome NodeCommands::RegisterNode(const v1::RegisterNode& req, const Stamp& stamp, NodeChangeSet& out) {
  const v1::NodeSpec& spec = req.node();
  if (absl::Status s = CheckNodeSpec(spec); !s.ok()) return s;
  const auto& nodes = model_.nodes();
  auto it = nodes.find(spec.name());
  if (it != nodes.end() && it->second->ready() && DeterministicBytes(it->second->spec()) == DeterministicBytes(spec)) {
    v1::CommandResult same;
    *same.mutable_node() = *it->second;
    return same;  // a reconnect of a ready node changes nothing
  }
  const uint64_t rev = ++out.revision;
  v1::Node node;
  if (it != nodes.end()) node = *it->second;
  *node.mutable_spec() = spec;
  if (it == nodes.end()) node.set_create_revision(rev);
  if (!node.ready()) node.set_ready_change_time_unix_ms(stamp.time_ms);
  node.set_ready(true);
  node.set_revision(rev);
  return StoreNode(std::move(node), out);
}

CommandOutcome NodeCommands::MarkNodeNotReady(const v1::MarkNodeNotReady& req, const Stamp& stamp,
                                              NodeChangeSet& out) {
  auto it = model_.nodes().find(req.name());
  if (it == model_.nodes().end()) return absl::NotFoundError(absl::StrCat("name: node ", Q(req.name()), " not found"));
  if (!it->second->ready()) {
    v1::CommandResult result;
    *result.mutable_node() = *it->second;
    return result;
  }
  v1::Node node = *it->second;
  node.set_ready(false);
  node.set_ready_change_time_unix_ms(stamp.time_ms);
  node.set_revision(++out.revision);
  return StoreNode(std::move(node), out);
}

CommandOutcome NodeCommands::SetNodeLabels(const v1::SetNodeLabelsRequest& req, NodeChangeSet& out) {
  if (req.name().empty()) return absl::InvalidArgumentError("name: must not be empty");
  if (absl::Status s = ValidateNodeName(req.name(), "name"); !s.ok()) return s;
  if (absl::Status s = ValidateLabels(req.labels(), "labels"); !s.ok()) return s;
  auto it = model_.nodes().find(req.name());
  if (it == model_.nodes().end()) return absl::NotFoundError(absl::StrCat("name: node ", Q(req.name()), " not found"));
  if (EncodeLabels(it->second->set_labels()) == EncodeLabels(req.labels())) {
    v1::CommandResult same;
    *same.mutable_node() = *it->second;
    return same;  // nothing changes
  }
  v1::Node node = *it->second;
  *node.mutable_set_labels() = req.labels();
  node.set_revision(++out.revision);
  return StoreNode(std::move(node), out);
}

absl::StatusOr<StoredAllocations> NodeCommands::ReleaseOnNode(const std::string& node, std::string reason,
                                                              const Stamp& stamp, NodeChangeSet& out) {
  auto held = allocations_.ReleaseOnNode(node, std::move(reason), Stamp{out.revision, stamp.time_ms}, out.allocations);
  if (!held.ok()) return held.status();
  out.has_allocations = true;
  out.revision = out.allocations.revision;
  out.allocation_result.Clear();
  return held;
}

CommandOutcome NodeCommands::DeleteNode(const v1::DeleteNodeRequest& req, const Stamp& stamp, NodeChangeSet& out) {
  if (req.node().empty()) return absl::InvalidArgumentError("node: required");
  if (!model_.nodes().count(req.node())) {
    return absl::NotFoundError(absl::StrCat("node: node ", Q(req.node()), " not found"));
  }
  auto released = ReleaseOnNode(req.node(), DecommissionReason(req.node(), req.reason()), stamp, out);
  if (!released.ok()) return released.status();
  const uint64_t rev = ++out.revision;
  Objects<v1::Node> next = model_.nodes();
  next.erase(req.node());
  std::vector<v1::ExternalAddress> moved = PlanPlacement(next, model_.externals(), rev);
  DeleteRow(NodeTable::kNodes, req.node(), out);
  v1::CommandResult result;
  v1::DeleteNodeResponse* r = result.mutable_delete_node();
  r->set_revision(rev);
  for (auto& a : *released) *r->add_released() = std::move(a.allocation);
  for (const auto& x : moved) {
    WriteRow(NodeTable::kExternals, x.spec().name(), Share(x), out);
    r->add_moved_external_addresses(x.spec().name());
  }
  out.model_change = [name = req.node(), moved = std::move(moved)](NodeModel& m) mutable {
    m.RemoveNode(name, std::move(moved));
  };
  return result;
}

CommandOutcome NodeCommands::ReclaimNodeAllocations(const v1::ReclaimNodeAllocations& req, const Stamp& stamp,
                                                    NodeChangeSet& out) {
  v1::CommandResult result;
  result.set_changed(0);
  auto it = model_.nodes().find(req.node());
  // Heard from again (or lost later than the proposer saw) by the time this applies: nothing to reclaim.
  if (it == model_.nodes().end() || it->second->ready() ||
      it->second->ready_change_time_unix_ms() > req.not_ready_since_unix_ms()) {
    return result;
  }
  auto released = ReleaseOnNode(req.node(), req.reason(), stamp, out);
  if (!released.ok()) return released.status();
  result.set_changed(released->size());
  return result;
}

CommandOutcome NodeCommands::StoreNode(v1::Node node, NodeChangeSet& out) {
  const std::string name = node.spec().name();
  Objects<v1::Node> next = model_.nodes();
  next[name] = Share(node);
  std::vector<v1::ExternalAddress> moved = PlanPlacement(next, model_.externals(), out.revision);
  WriteRow(NodeTable::kNodes, name, Share(node), out);
  for (const auto& x : moved) WriteRow(NodeTable::kExternals, x.spec().name(), Share(x), out);
  v1::CommandResult result;
  *result.mutable_node() = node;
  out.model_change = [node = std::move(node), moved = std::move(moved)](NodeModel& m) mutable {
    m.SetNode(std::move(node), std::move(moved));
  };
  return result;
}

// ---------------------------------------------------------------------------------- external addresses

absl::StatusOr<v1::Allocation> NodeCommands::AllocateExternal(const std::string& owner, const std::string& pool,
                                                              const std::string& address, const Stamp& stamp,
                                                              NodeChangeSet& out) {
  const Pool* p = pools_.Find(pool);
  if (p == nullptr) return absl::NotFoundError(absl::StrCat("address.pool: pool ", Q(pool), " not found"));
  if (p->spec.purpose() != v1::POOL_PURPOSE_EXTERNAL) {
    return absl::FailedPreconditionError(
        absl::StrCat("address.pool: pool ", Q(pool), " is not an external pool (purpose POOL_PURPOSE_EXTERNAL)"));
  }
  v1::AllocateRequest& req = out.allocate_request;
  req.Clear();
  req.set_pool(pool);
  req.set_owner(owner);
  req.set_address(address);
  auto a = allocations_.Allocate(req, Stamp{out.revision, stamp.time_ms}, out.allocations);
  if (!a.ok()) {
    // The allocation commands name their own fields ("address: ..."); say which request field that is.
    return absl::Status(a.status().code(), absl::StrCat("address.", a.status().message()));
  }
  out.has_allocations = true;
  out.revision = out.allocations.revision;
  out.allocation_result = std::move(*a);
  return out.allocation_result.allocation();
}

template <typename Object>
absl::StatusOr<NodeCommands::NewAddress<Object>> NodeCommands::PrepareAddress(
    const decltype(Object().spec())& spec, const Objects<Object>& stored, absl::string_view kind,
    absl::string_view owner_prefix, const std::function<absl::Status()>& check, const Stamp& stamp,
    NodeChangeSet& out) {
  if (absl::Status s = ValidateName(spec.name(), "address.name", false); !s.ok()) return s;
  if (absl::Status s = ValidateName(spec.pool(), "address.pool", false); !s.ok()) return s;
  if (absl::Status s = check(); !s.ok()) return s;
  if (!spec.address().empty()) {
    if (auto a = IpAddress::Parse(spec.address(), "address.address"); !a.ok()) return a.status();
  }
  if (auto it = stored.find(spec.name()); it != stored.end()) {
    if (DeterministicBytes(it->second->spec()) == DeterministicBytes(spec)) return NewAddress<Object>{*it->second, true};
    return absl::AlreadyExistsError(absl::StrCat("address.name: ", kind, " ", Q(spec.name()), " already exists"));
  }
  auto alloc = AllocateExternal(absl::StrCat(owner_prefix, spec.name()), spec.pool(), spec.address(), stamp, out);
  if (!alloc.ok()) return alloc.status();
  NewAddress<Object> created;
  *created.object.mutable_spec() = spec;
  created.object.set_address(alloc->address());
  created.object.set_prefix_length(alloc->prefix_length());
  created.object.set_network(alloc->network());
  created.object.set_create_revision(out.revision);
  created.object.set_create_time_unix_ms(stamp.time_ms);
  created.object.set_revision(out.revision);
  return created;
}

CommandOutcome NodeCommands::CreateExternal(const v1::CreateExternalAddressRequest& req, const Stamp& stamp,
                                            NodeChangeSet& out) {
  const v1::ExternalAddressSpec& spec = req.address();
  auto prepared = PrepareAddress<v1::ExternalAddress>(
      spec, model_.externals(), "external address", kExternalOwner,
      [&] { return ParseLabelSelector(spec.node_selector(), "address.node_selector").status(); }, stamp, out);
  if (!prepared.ok()) return prepared.status();
  v1::CommandResult result;
  if (prepared->existing) {
    *result.mutable_external_address() = std::move(prepared->object);
    return result;
  }
  const Objects<v1::ExternalAddress>& stored = model_.externals();
  Objects<v1::ExternalAddress> next = stored;
  next[spec.name()] = Share(std::move(prepared->object));
  for (auto& m : PlanPlacement(model_.nodes(), next, out.revision)) {
    const std::string moved = m.spec().name();
    next[moved] = Share(std::move(m));
  }
  for (const auto& [name, e] : next) {
    if (auto it = stored.find(name); it != stored.end() && it->second == e) continue;
    WriteRow(NodeTable::kExternals, name, e, out);
  }
  *result.mutable_external_address() = *next.at(spec.name());
  out.model_change = [next = std::move(next)](NodeModel& m) mutable { m.SetExternals(std::move(next)); };
  return result;
}

template <typename Object>
CommandOutcome NodeCommands::DeleteAddress(const Objects<Object>& stored, const std::string& name, NodeTable table,
                                           const Stamp& stamp, NodeChangeSet& out) {
  const bool elastic = table == NodeTable::kElastics;
  auto it = stored.find(name);
  if (it == stored.end()) {
    return absl::NotFoundError(absl::StrCat("name: ", elastic ? "elastic" : "external", " address ", Q(name),
                                            " not found"));
  }
  DeleteRow(table, name, out);
  v1::ReleaseRequest release;
  release.set_owner(absl::StrCat(elastic ? kElasticOwner : kExternalOwner, name));
  release.set_pool(it->second->spec().pool());
  auto released = allocations_.Release(release, Stamp{out.revision, stamp.time_ms}, out.allocations);
  if (!released.ok()) return released.status();
  out.has_allocations = true;
  out.revision = out.allocations.revision;
  out.allocation_result = std::move(*released);
  out.model_change = [elastic, name](NodeModel& m) {
    if (elastic) {
      m.RemoveElastic(name);
    } else {
      m.RemoveExternal(name);
    }
  };
  return Deleted(++out.revision);
}

// ----------------------------------------------------------------------------------- elastic addresses

CommandOutcome NodeCommands::CreateElastic(const v1::CreateElasticAddressRequest& req, const Stamp& stamp,
                                           NodeChangeSet& out) {
  const v1::ElasticAddressSpec& spec = req.address();
  auto prepared = PrepareAddress<v1::ElasticAddress>(spec, model_.elastics(), "elastic address", kElasticOwner,
                                                     [] { return absl::OkStatus(); }, stamp, out);
  if (!prepared.ok()) return prepared.status();
  v1::CommandResult result;
  if (!prepared->existing) {
    WriteRow(NodeTable::kElastics, spec.name(), Share(prepared->object), out);
    out.model_change = [e = prepared->object](NodeModel& m) { m.AddElastic(e); };
  }
  *result.mutable_elastic_address() = std::move(prepared->object);
  return result;
}

CommandOutcome NodeCommands::Associate(const v1::AssociateElasticAddressRequest& req, NodeChangeSet& out) {
  auto it = model_.elastics().find(req.name());
  if (it == model_.elastics().end()) {
    return absl::NotFoundError(absl::StrCat("name: elastic address ", Q(req.name()), " not found"));
  }
  const v1::ElasticAssociation& assoc = req.association();
  auto sel = CheckAssociation(assoc);
  if (!sel.ok()) return sel.status();
  auto elastic_ip = IpAddress::Parse(it->second->address(), "address");
  if (!elastic_ip.ok()) return absl::DataLossError(elastic_ip.status().message());

  // Resolve against the stored allocations: exactly one workload allocation of the address's family.
  std::vector<v1::Allocation> found;
  absl::Status scanned = scan_.ForEach(assoc.owner(), [&](v1::Allocation a) {
    if (!model_.IsWorkloadPool(a.pool())) return;
    auto ip = IpAddress::Parse(a.address(), "address");
    if (!ip.ok() || ip->family() != elastic_ip->family()) return;
    if (!assoc.owner().empty() || SelectorMatches(*sel, LabelMap(a.labels()))) found.push_back(std::move(a));
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
  e.set_revision(++out.revision);
  e.clear_workload_address();  // derived: filled in by the model
  e.clear_workload_owner();
  e.clear_node();
  WriteRow(NodeTable::kElastics, req.name(), Share(e), out);
  v1::CommandResult result;
  *result.mutable_elastic_address() = e;
  out.model_change = [e = std::move(e), sel = std::move(*sel)](NodeModel& m) mutable {
    m.SetElastic(std::move(e), std::move(sel));
  };
  out.track_workloads = assoc.owner();
  out.derive_elastic_target = true;
  return result;
}

CommandOutcome NodeCommands::Disassociate(const v1::DisassociateElasticAddressRequest& req, NodeChangeSet& out) {
  auto it = model_.elastics().find(req.name());
  if (it == model_.elastics().end()) {
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
  e.set_revision(++out.revision);
  WriteRow(NodeTable::kElastics, req.name(), Share(e), out);
  *result.mutable_elastic_address() = e;
  out.model_change = [e = std::move(e)](NodeModel& m) mutable { m.SetElastic(std::move(e), LabelSelector{}); };
  return result;
}

// ------------------------------------------------------------------------------------- magic addresses

CommandOutcome NodeCommands::CreateMagic(const v1::CreateMagicAddressRequest& req, const Stamp& stamp,
                                         NodeChangeSet& out) {
  auto checked = CheckMagicSpec(req.address());
  if (!checked.ok()) return checked.status();
  const v1::MagicAddressSpec& spec = checked->spec;
  if (auto it = model_.magics().find(spec.name()); it != model_.magics().end()) {
    if (DeterministicBytes(it->second->spec()) == DeterministicBytes(spec)) {
      v1::CommandResult same;
      *same.mutable_magic_address() = *it->second;
      return same;
    }
    return absl::AlreadyExistsError(absl::StrCat("address.name: magic address ", Q(spec.name()), " already exists"));
  }
  for (const auto& [name, m] : model_.magics()) {
    if (m->spec().address() == spec.address()) {
      return absl::AlreadyExistsError(
          absl::StrCat("address.address: ", spec.address(), " is already magic address ", Q(name)));
    }
  }
  if (std::string pool = pools_.Containing(checked->address); !pool.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("address.address: ", spec.address(), " collides with pool ", Q(pool)));
  }
  v1::MagicAddress m;
  *m.mutable_spec() = spec;
  m.set_create_revision(++out.revision);
  m.set_create_time_unix_ms(stamp.time_ms);
  m.set_revision(m.create_revision());
  WriteRow(NodeTable::kMagics, spec.name(), Share(m), out);
  v1::CommandResult result;
  *result.mutable_magic_address() = m;
  out.model_change = [m = std::move(m), sel = std::move(checked->selector)](NodeModel& model) mutable {
    model.AddMagic(std::move(m), std::move(sel));
  };
  out.track_workloads = "";
  return result;
}

CommandOutcome NodeCommands::DeleteMagic(const v1::DeleteMagicAddressRequest& req, NodeChangeSet& out) {
  if (!model_.magics().count(req.name())) {
    return absl::NotFoundError(absl::StrCat("name: magic address ", Q(req.name()), " not found"));
  }
  DeleteRow(NodeTable::kMagics, req.name(), out);
  out.model_change = [name = req.name()](NodeModel& m) { m.RemoveMagic(name); };
  return Deleted(++out.revision);
}

// ----------------------------------------------------------------------------------- tracked workloads

absl::Status NodeCommands::TrackWorkloads(const std::string& only_owner) {
  std::vector<v1::Allocation> add;
  absl::Status scanned = scan_.ForEach(only_owner, [&](v1::Allocation a) {
    if (!model_.IsWorkloadPool(a.pool()) || model_.Tracked(a) || !model_.Relevant(a)) return;
    add.push_back(std::move(a));
  });
  if (!scanned.ok()) return scanned;
  for (const auto& a : add) model_.Track(a);
  return absl::OkStatus();
}

void NodeCommands::FollowAllocations(const std::vector<AllocationChange>& changes, uint64_t revision,
                                     NodeChangeSet& out) {
  out.Clear(revision);
  std::vector<NodeModel::Orphan> orphans;
  for (const AllocationChange& c : changes) {
    auto orphan = model_.OnAllocationChange(c);
    if (!orphan) continue;
    // The object goes with its address.
    DeleteRow(orphan->elastic ? NodeTable::kElastics : NodeTable::kExternals, orphan->name, out);
    orphans.push_back(std::move(*orphan));
  }
  if (orphans.empty()) return;
  out.model_change = [orphans = std::move(orphans)](NodeModel& m) {
    for (const NodeModel::Orphan& o : orphans) {
      if (o.elastic) {
        m.RemoveElastic(o.name);
      } else {
        m.RemoveExternal(o.name);
      }
    }
  };
}

absl::Status NodeCommands::Reload(NodeObjects objects, uint64_t revision) {
  model_.Replace(std::move(objects.nodes), std::move(objects.externals), std::move(objects.elastics),
                 std::move(objects.magics));
  if (model_.WantsWorkloads()) {
    if (absl::Status s = TrackWorkloads(""); !s.ok()) return s;
  }
  model_.Rederive(revision);
  return absl::OkStatus();
}

}  // namespace abode::domain

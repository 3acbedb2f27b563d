#include "storage/node_commands.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "domain/node_specs.h"
#include "storage/schema.h"

namespace abode::storage {
namespace {

using domain::DeterministicBytes;
using domain::IpAddress;
using domain::LabelSelector;
using domain::Objects;

std::string Q(absl::string_view s) { return absl::StrCat("\"", s, "\""); }

std::map<std::string, std::string> LabelMap(const google::protobuf::Map<std::string, std::string>& m) {
  return std::map<std::string, std::string>(m.begin(), m.end());
}

template <typename T>
std::shared_ptr<const T> Share(T value) {
  return std::make_shared<const T>(std::move(value));
}

CommandOutcome Deleted(uint64_t revision) {
  v1::CommandResult result;
  result.mutable_delete_address()->set_revision(revision);
  return result;
}

}  // namespace

struct NodeCommands::Statements {
  Statement upsert[kNodeTableCount];
  Statement remove[kNodeTableCount];
};

NodeCommands::NodeCommands(Database& db, domain::Stamp& stamp, Allocations& allocations, domain::NodeModel& model)
    : db_(db), stamp_(stamp), allocations_(allocations), model_(model) {}
NodeCommands::~NodeCommands() = default;

absl::Status NodeCommands::PrepareStatements() {
  stmts_ = std::make_unique<Statements>();
  for (int t = 0; t < kNodeTableCount; ++t) {
    absl::Status s = db_.PrepareAll({
        {&stmts_->upsert[t], absl::StrCat("INSERT INTO ", kNodeTables[t],
                                          " (name, record) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET record = "
                                          "excluded.record")},
        {&stmts_->remove[t], absl::StrCat("DELETE FROM ", kNodeTables[t], " WHERE name = ?")},
    });
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
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
      return true;
    default:
      return false;
  }
}

CommandOutcome NodeCommands::Apply(const v1::Command& c, AllocationChanges& changes) {
  switch (c.op_case()) {
    case v1::Command::kRegisterNode: return RegisterNode(c.register_node());
    case v1::Command::kMarkNodeNotReady: return MarkNodeNotReady(c.mark_node_not_ready());
    case v1::Command::kSetNodeLabels: return SetNodeLabels(c.set_node_labels());
    case v1::Command::kCreateExternalAddress: return CreateExternal(c.create_external_address(), changes);
    case v1::Command::kDeleteExternalAddress: return DeleteExternal(c.delete_external_address(), changes);
    case v1::Command::kCreateElasticAddress: return CreateElastic(c.create_elastic_address(), changes);
    case v1::Command::kDeleteElasticAddress: return DeleteElastic(c.delete_elastic_address(), changes);
    case v1::Command::kAssociateElasticAddress: return Associate(c.associate_elastic_address());
    case v1::Command::kDisassociateElasticAddress: return Disassociate(c.disassociate_elastic_address());
    case v1::Command::kCreateMagicAddress: return CreateMagic(c.create_magic_address());
    case v1::Command::kDeleteMagicAddress: return DeleteMagic(c.delete_magic_address());
    default: return absl::InvalidArgumentError("command: not a node command");
  }
}

absl::Status NodeCommands::Store(absl::Status s) {
  if (!s.ok() && store_failure_.ok()) store_failure_ = s;
  return s;
}

absl::Status NodeCommands::TakeStoreFailure() { return std::exchange(store_failure_, absl::OkStatus()); }

absl::Status NodeCommands::WriteRow(int table, const std::string& name, const google::protobuf::Message& row) {
  return Store(stmts_->upsert[table].Bind(1, name).BindBlob(2, DeterministicBytes(row)).Run());
}

absl::Status NodeCommands::DeleteRow(int table, const std::string& name) {
  return Store(stmts_->remove[table].Bind(1, name).Run());
}

// ------------------------------------------------------------------------------------------------ nodes

CommandOutcome NodeCommands::RegisterNode(const v1::RegisterNode& req) {
  const v1::NodeSpec& spec = req.node();
  if (absl::Status s = domain::CheckNodeSpec(spec); !s.ok()) return s;
  const auto& nodes = model_.nodes();
  auto it = nodes.find(spec.name());
  if (it != nodes.end() && it->second->ready() && DeterministicBytes(it->second->spec()) == DeterministicBytes(spec)) {
    v1::CommandResult same;
    *same.mutable_node() = *it->second;
    return same;  // a reconnect of a ready node changes nothing
  }
  const uint64_t rev = ++stamp_.revision;
  v1::Node node;
  if (it != nodes.end()) node = *it->second;
  *node.mutable_spec() = spec;
  if (it == nodes.end()) node.set_create_revision(rev);
  if (!node.ready()) node.set_ready_change_time_unix_ms(stamp_.time_ms);
  node.set_ready(true);
  node.set_revision(rev);
  return StoreNode(std::move(node));
}

CommandOutcome NodeCommands::MarkNodeNotReady(const v1::MarkNodeNotReady& req) {
  auto it = model_.nodes().find(req.name());
  if (it == model_.nodes().end()) return absl::NotFoundError(absl::StrCat("name: node ", Q(req.name()), " not found"));
  if (!it->second->ready()) {
    v1::CommandResult result;
    *result.mutable_node() = *it->second;
    return result;
  }
  v1::Node node = *it->second;
  node.set_ready(false);
  node.set_ready_change_time_unix_ms(stamp_.time_ms);
  node.set_revision(++stamp_.revision);
  return StoreNode(std::move(node));
}

CommandOutcome NodeCommands::SetNodeLabels(const v1::SetNodeLabelsRequest& req) {
  if (absl::Status s = domain::ValidateNodeName(req.name(), "name"); !s.ok()) return s;
  if (req.name().empty()) return absl::InvalidArgumentError("name: must not be empty");
  if (absl::Status s = domain::ValidateLabels(req.labels(), "labels"); !s.ok()) return s;
  auto it = model_.nodes().find(req.name());
  if (it == model_.nodes().end()) return absl::NotFoundError(absl::StrCat("name: node ", Q(req.name()), " not found"));
  if (domain::EncodeLabels(it->second->set_labels()) == domain::EncodeLabels(req.labels())) {
    v1::CommandResult same;
    *same.mutable_node() = *it->second;
    return same;  // nothing changes
  }
  v1::Node node = *it->second;
  *node.mutable_set_labels() = req.labels();
  node.set_revision(++stamp_.revision);
  return StoreNode(std::move(node));
}

CommandOutcome NodeCommands::StoreNode(v1::Node node) {
  const std::string name = node.spec().name();
  Objects<v1::Node> next = model_.nodes();
  next[name] = Share(node);
  std::vector<v1::ExternalAddress> moved = domain::PlanPlacement(next, model_.externals(), stamp_.revision);
  if (absl::Status s = WriteRow(kNodes, name, node); !s.ok()) return s;
  for (const auto& x : moved) {
    if (absl::Status s = WriteRow(kExternals, x.spec().name(), x); !s.ok()) return s;
  }
  v1::CommandResult result;
  *result.mutable_node() = node;
  model_.SetNode(std::move(node), std::move(moved));
  return result;
}

// ---------------------------------------------------------------------------------- external addresses

absl::StatusOr<v1::Allocation> NodeCommands::AllocateExternal(const std::string& owner, const std::string& pool,
                                                              const std::string& address, AllocationChanges& changes) {
  const domain::Pool* p = allocations_.pools().Find(pool);
  if (p == nullptr) return absl::NotFoundError(absl::StrCat("address.pool: pool ", Q(pool), " not found"));
  if (p->spec.purpose() != v1::POOL_PURPOSE_EXTERNAL) {
    return absl::FailedPreconditionError(
        absl::StrCat("address.pool: pool ", Q(pool), " is not an external pool (purpose POOL_PURPOSE_EXTERNAL)"));
  }
  v1::AllocateRequest req;
  req.set_pool(pool);
  req.set_owner(owner);
  req.set_address(address);
  auto a = allocations_.Allocate(req, changes);
  if (!a.ok()) {
    // The engine names its own fields ("address: ..."); say which request field that is.
    return absl::Status(a.status().code(), absl::StrCat("address.", a.status().message()));
  }
  return std::move(*a->mutable_allocation());
}

template <typename Object>
absl::StatusOr<NodeCommands::NewAddress<Object>> NodeCommands::PrepareAddress(
    const decltype(Object().spec())& spec, const Objects<Object>& stored, absl::string_view kind,
    absl::string_view owner_prefix, const std::function<absl::Status()>& check, AllocationChanges& changes) {
  if (absl::Status s = domain::ValidateName(spec.name(), "address.name", false); !s.ok()) return s;
  if (absl::Status s = domain::ValidateName(spec.pool(), "address.pool", false); !s.ok()) return s;
  if (absl::Status s = check(); !s.ok()) return s;
  if (!spec.address().empty()) {
    if (auto a = IpAddress::Parse(spec.address(), "address.address"); !a.ok()) return a.status();
  }
  if (auto it = stored.find(spec.name()); it != stored.end()) {
    if (DeterministicBytes(it->second->spec()) == DeterministicBytes(spec)) return NewAddress<Object>{*it->second, true};
    return absl::AlreadyExistsError(absl::StrCat("address.name: ", kind, " ", Q(spec.name()), " already exists"));
  }
  auto alloc = AllocateExternal(absl::StrCat(owner_prefix, spec.name()), spec.pool(), spec.address(), changes);
  if (!alloc.ok()) return alloc.status();
  NewAddress<Object> out;
  *out.object.mutable_spec() = spec;
  out.object.set_address(alloc->address());
  out.object.set_prefix_length(alloc->prefix_length());
  out.object.set_network(alloc->network());
  out.object.set_create_revision(stamp_.revision);
  out.object.set_create_time_unix_ms(stamp_.time_ms);
  out.object.set_revision(stamp_.revision);
  return out;
}

absl::Status NodeCommands::ReleaseOwner(const std::string& owner, const std::string& pool,
                                        AllocationChanges& changes) {
  v1::ReleaseRequest req;
  req.set_owner(owner);
  req.set_pool(pool);
  return allocations_.Release(req, changes).status();
}

CommandOutcome NodeCommands::CreateExternal(const v1::CreateExternalAddressRequest& req, AllocationChanges& changes) {
  const v1::ExternalAddressSpec& spec = req.address();
  auto prepared = PrepareAddress<v1::ExternalAddress>(
      spec, model_.externals(), "external address", domain::kExternalOwner,
      [&] { return domain::ParseLabelSelector(spec.node_selector(), "address.node_selector").status(); }, changes);
  if (!prepared.ok()) return prepared.status();
  v1::CommandResult result;
  if (prepared->existing) {
    *result.mutable_external_address() = std::move(prepared->object);
    return result;
  }
  const Objects<v1::ExternalAddress>& stored = model_.externals();
  Objects<v1::ExternalAddress> next = stored;
  next[spec.name()] = Share(std::move(prepared->object));
  for (auto& m : domain::PlanPlacement(model_.nodes(), next, stamp_.revision)) {
    const std::string moved = m.spec().name();
    next[moved] = Share(std::move(m));
  }
  for (const auto& [name, e] : next) {
    if (auto it = stored.find(name); it != stored.end() && it->second == e) continue;
    if (absl::Status s = WriteRow(kExternals, name, *e); !s.ok()) return s;
  }
  *result.mutable_external_address() = *next.at(spec.name());
  model_.SetExternals(std::move(next));
  return result;
}

CommandOutcome NodeCommands::DeleteExternal(const v1::DeleteExternalAddressRequest& req, AllocationChanges& changes) {
  return DeleteAddress(model_.externals(), req.name(), kExternals, changes);
}

template <typename Object>
CommandOutcome NodeCommands::DeleteAddress(const Objects<Object>& stored, const std::string& name, int table,
                                           AllocationChanges& changes) {
  const bool elastic = table == kElastics;
  auto it = stored.find(name);
  if (it == stored.end()) {
    return absl::NotFoundError(absl::StrCat("name: ", elastic ? "elastic" : "external", " address ", Q(name),
                                            " not found"));
  }
  if (absl::Status s = DeleteRow(table, name); !s.ok()) return s;
  const std::string owner = absl::StrCat(elastic ? domain::kElasticOwner : domain::kExternalOwner, name);
  if (absl::Status s = ReleaseOwner(owner, it->second->spec().pool(), changes); !s.ok()) return s;
  if (elastic) {
    model_.RemoveElastic(name);
  } else {
    model_.RemoveExternal(name);
  }
  return Deleted(++stamp_.revision);
}

// ----------------------------------------------------------------------------------- elastic addresses

CommandOutcome NodeCommands::CreateElastic(const v1::CreateElasticAddressRequest& req, AllocationChanges& changes) {
  const v1::ElasticAddressSpec& spec = req.address();
  auto prepared = PrepareAddress<v1::ElasticAddress>(spec, model_.elastics(), "elastic address",
                                                     domain::kElasticOwner, [] { return absl::OkStatus(); }, changes);
  if (!prepared.ok()) return prepared.status();
  v1::CommandResult result;
  if (!prepared->existing) {
    if (absl::Status s = WriteRow(kElastics, spec.name(), prepared->object); !s.ok()) return s;
    model_.AddElastic(prepared->object);
  }
  *result.mutable_elastic_address() = std::move(prepared->object);
  return result;
}

CommandOutcome NodeCommands::DeleteElastic(const v1::DeleteElasticAddressRequest& req, AllocationChanges& changes) {
  return DeleteAddress(model_.elastics(), req.name(), kElastics, changes);
}

CommandOutcome NodeCommands::Associate(const v1::AssociateElasticAddressRequest& req) {
  auto it = model_.elastics().find(req.name());
  if (it == model_.elastics().end()) {
    return absl::NotFoundError(absl::StrCat("name: elastic address ", Q(req.name()), " not found"));
  }
  const v1::ElasticAssociation& assoc = req.association();
  auto sel = domain::CheckAssociation(assoc);
  if (!sel.ok()) return sel.status();
  auto elastic_ip = IpAddress::Parse(it->second->address(), "address");
  if (!elastic_ip.ok()) return absl::DataLossError(elastic_ip.status().message());

  // Resolve against the stored allocations: exactly one workload allocation of the address's family.
  std::vector<v1::Allocation> found;
  absl::Status scanned = ForEachAllocation(assoc.owner(), [&](v1::Allocation a) {
    if (!model_.IsWorkloadPool(a.pool())) return;
    auto ip = IpAddress::Parse(a.address(), "address");
    if (!ip.ok() || ip->family() != elastic_ip->family()) return;
    if (!assoc.owner().empty() || domain::SelectorMatches(*sel, LabelMap(a.labels()))) found.push_back(std::move(a));
  });
  if (!scanned.ok()) return scanned;
  const std::string what = assoc.owner().empty() ? absl::StrCat("association.label_selector: ", Q(assoc.label_selector()))
                                                 : absl::StrCat("association.owner: ", Q(assoc.owner()));
  const char* family = elastic_ip->family() == domain::Family::kV4 ? "IPv4" : "IPv6";
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
  e.set_revision(++stamp_.revision);
  e.clear_workload_address();  // derived: filled in by the model
  e.clear_workload_owner();
  e.clear_node();
  if (absl::Status s = WriteRow(kElastics, req.name(), e); !s.ok()) return s;
  model_.SetElastic(e, std::move(*sel));
  if (absl::Status s = TrackWorkloads(assoc.owner()); !s.ok()) return s;
  v1::CommandResult result;
  v1::ElasticAddress* out = result.mutable_elastic_address();
  *out = std::move(e);
  if (auto target = model_.ElasticTarget(*out)) {
    out->set_workload_address(target->address);
    out->set_workload_owner(target->owner);
    out->set_node(target->node);
  }
  return result;
}

CommandOutcome NodeCommands::Disassociate(const v1::DisassociateElasticAddressRequest& req) {
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
  e.set_revision(++stamp_.revision);
  if (absl::Status s = WriteRow(kElastics, req.name(), e); !s.ok()) return s;
  *result.mutable_elastic_address() = e;
  model_.SetElastic(std::move(e), LabelSelector{});
  return result;
}

// ------------------------------------------------------------------------------------- magic addresses

CommandOutcome NodeCommands::CreateMagic(const v1::CreateMagicAddressRequest& req) {
  auto checked = domain::CheckMagicSpec(req.address());
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
  if (std::string pool = allocations_.pools().Containing(checked->address); !pool.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("address.address: ", spec.address(), " collides with pool ", Q(pool)));
  }
  v1::MagicAddress m;
  *m.mutable_spec() = spec;
  m.set_create_revision(++stamp_.revision);
  m.set_create_time_unix_ms(stamp_.time_ms);
  m.set_revision(m.create_revision());
  if (absl::Status s = WriteRow(kMagics, spec.name(), m); !s.ok()) return s;
  model_.AddMagic(m, std::move(checked->selector));
  if (absl::Status s = TrackWorkloads(""); !s.ok()) return s;
  v1::CommandResult result;
  *result.mutable_magic_address() = std::move(m);
  return result;
}

CommandOutcome NodeCommands::DeleteMagic(const v1::DeleteMagicAddressRequest& req) {
  if (!model_.magics().count(req.name())) {
    return absl::NotFoundError(absl::StrCat("name: magic address ", Q(req.name()), " not found"));
  }
  if (absl::Status s = DeleteRow(kMagics, req.name()); !s.ok()) return s;
  model_.RemoveMagic(req.name());
  return Deleted(++stamp_.revision);
}

// ----------------------------------------------------------------------------------- tracked workloads

absl::Status NodeCommands::ForEachAllocation(const std::string& only_owner,
                                             absl::FunctionRef<void(v1::Allocation)> visit) {
  if (only_owner.empty()) return allocations_.ForEach(visit);
  auto owned = allocations_.OfOwner(only_owner);
  if (!owned.ok()) return owned.status();
  for (auto& a : *owned) visit(std::move(a));
  return absl::OkStatus();
}

absl::Status NodeCommands::TrackWorkloads(const std::string& only_owner) {
  std::vector<v1::Allocation> add;
  absl::Status scanned = ForEachAllocation(only_owner, [&](v1::Allocation a) {
    if (!model_.IsWorkloadPool(a.pool()) || model_.Tracked(a) || !model_.Relevant(a)) return;
    add.push_back(std::move(a));
  });
  if (!scanned.ok()) return scanned;
  for (const auto& a : add) model_.Track(a);
  return absl::OkStatus();
}

absl::Status NodeCommands::AfterCommand(const AllocationChanges& changes, absl::string_view traceparent) {
  for (const AllocationChange& c : changes) {
    auto orphan = model_.OnAllocationChange(c);
    if (!orphan) continue;
    // The object goes with its address.
    if (absl::Status s = DeleteRow(orphan->elastic ? kElastics : kExternals, orphan->name); !s.ok()) return s;
    if (orphan->elastic) {
      model_.RemoveElastic(orphan->name);
    } else {
      model_.RemoveExternal(orphan->name);
    }
  }
  model_.Recompute(traceparent, stamp_.revision);
  return absl::OkStatus();
}

absl::Status NodeCommands::Load() {
  Objects<v1::Node> nodes;
  Objects<v1::ExternalAddress> externals;
  Objects<v1::ElasticAddress> elastics;
  Objects<v1::MagicAddress> magics;
  for (int t = 0; t < kNodeTableCount; ++t) {
    const std::string sql = absl::StrCat("SELECT name, record FROM ", kNodeTables[t], " ORDER BY name");
    absl::Status s = db_.ForEachRow(sql, [&](const Statement& row) {
      const std::string name(row.Text(0));
      const absl::string_view blob = row.Blob(1);
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
      if (!ok) return absl::DataLossError(absl::StrCat(kNodeTables[t], " row ", Q(name), " is unreadable"));
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
  }
  model_.Replace(std::move(nodes), std::move(externals), std::move(elastics), std::move(magics));
  if (model_.WantsWorkloads()) {
    if (absl::Status s = TrackWorkloads(""); !s.ok()) return s;
  }
  model_.Rederive(stamp_.revision);
  return absl::OkStatus();
}

}  // namespace abode::storage

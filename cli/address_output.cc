#include "cli/address_output.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/time_text.h"

namespace abode::cli {
namespace {

nlohmann::json PortJson(const v1::PortMapping& port) {
  return {{"protocol", ProtocolName(port.protocol())},
          {"port", port.port()},
          {"target_port", port.target_port() == 0 ? port.port() : port.target_port()}};
}

std::string PortsText(const Repeated<v1::PortMapping>& ports) {
  std::vector<std::string> texts;
  for (const v1::PortMapping& port : ports) texts.push_back(PortMappingText(port));
  return absl::StrJoin(texts, ",");
}

std::string StateName(v1::AssignmentState state) {
  switch (state) {
    case v1::ASSIGNMENT_STATE_OK:
      return "ok";
    case v1::ASSIGNMENT_STATE_ERROR:
      return "error";
    default:
      return "unreported";
  }
}

nlohmann::json StatusJson(const v1::AssignmentStatus& status) {
  return {{"id", status.id()},
          {"revision", status.revision()},
          {"state", StateName(status.state())},
          {"message", StringOrNull(status.message())},
          {"report_time", TimeOrNull(status.report_time_unix_ms())}};
}

nlohmann::json InterfaceJson(const v1::NodeInterface& interface) {
  return {{"name", interface.name()},
          {"addresses", std::vector<std::string>(interface.addresses().begin(), interface.addresses().end())}};
}

std::string AssignmentAddress(const v1::Assignment& assignment) {
  switch (assignment.kind_case()) {
    case v1::Assignment::kExternal:
      return assignment.external().address();
    case v1::Assignment::kElastic:
      return assignment.elastic().address();
    case v1::Assignment::kMagic:
      return assignment.magic().address();
    default:
      return "";
  }
}

std::string Carries(const v1::Node& node) {
  std::vector<std::string> carried;
  for (const v1::Assignment& assignment : node.assignments()) {
    carried.push_back(absl::StrCat(assignment.id(), "=", AssignmentAddress(assignment)));
  }
  return OrNone(absl::StrJoin(carried, ","));
}

std::string ElasticAssociationText(const v1::ElasticAddress& address) {
  if (!address.has_association()) return OrNone("");
  const v1::ElasticAssociation& association = address.association();
  return association.owner().empty() ? absl::StrCat("selector ", association.label_selector())
                                     : absl::StrCat("owner ", association.owner());
}

// The keys external and elastic assignments share: an address of a pool carried on the uplink.
template <typename Carried>
nlohmann::json UplinkJson(const char* kind, const Carried& carried) {
  return {{"kind", kind},
          {"name", carried.name()},
          {"address", carried.address()},
          {"prefix_length", carried.prefix_length()},
          {"pool", carried.pool()}};
}

template <typename Message>
std::string OneRow(const Message& item, std::string (*table)(const Repeated<Message>&)) {
  Repeated<Message> one;
  *one.Add() = item;
  return table(one);
}

}  // namespace

std::string ProtocolName(v1::Protocol protocol) {
  switch (protocol) {
    case v1::PROTOCOL_TCP:
      return "tcp";
    case v1::PROTOCOL_UDP:
      return "udp";
    case v1::PROTOCOL_SCTP:
      return "sctp";
    default:
      return absl::StrCat("protocol-", static_cast<int>(protocol));
  }
}

std::string PolicyName(v1::MagicPolicy policy) {
  switch (policy) {
    case v1::MAGIC_POLICY_UNSPECIFIED:
    case v1::MAGIC_POLICY_DROP:
      return "drop";
    case v1::MAGIC_POLICY_FALLBACK:
      return "fallback";
    default:
      return absl::StrCat("policy-", static_cast<int>(policy));
  }
}

std::string PortMappingText(const v1::PortMapping& port) {
  std::string text = absl::StrCat(port.port(), "/", ProtocolName(port.protocol()));
  if (port.target_port() != 0 && port.target_port() != port.port()) absl::StrAppend(&text, "->", port.target_port());
  return text;
}

nlohmann::json AssignmentJson(const v1::Assignment& assignment) {
  nlohmann::json json = {{"id", assignment.id()}, {"revision", assignment.revision()}};
  switch (assignment.kind_case()) {
    case v1::Assignment::kExternal:
      json.update(UplinkJson("external", assignment.external()));
      break;
    case v1::Assignment::kElastic:
      json.update(UplinkJson("elastic", assignment.elastic()));
      json.update({{"workload_address", assignment.elastic().workload_address()},
                   {"workload_owner", assignment.elastic().workload_owner()}});
      break;
    case v1::Assignment::kMagic: {
      const v1::MagicAssignment& magic = assignment.magic();
      json.update({{"kind", "magic"},
                   {"name", magic.name()},
                   {"address", magic.address()},
                   {"ports", JsonArray(magic.ports(), &PortJson)},
                   {"target_address", StringOrNull(magic.target_address())},
                   {"target_owner", StringOrNull(magic.target_owner())},
                   {"target_node", StringOrNull(magic.target_node())}});
      break;
    }
    default:
      json["kind"] = nullptr;
      break;
  }
  return json;
}

std::string AssignmentText(const v1::Assignment& assignment) {
  std::string text = absl::StrCat(assignment.id(), " ", AssignmentAddress(assignment));
  if (assignment.has_elastic()) {
    absl::StrAppend(&text, " <-> ", assignment.elastic().workload_address());
  } else if (assignment.has_magic()) {
    const v1::MagicAssignment& magic = assignment.magic();
    absl::StrAppend(&text, " ", PortsText(magic.ports()), " -> ",
                    magic.target_address().empty() ? "drop" : magic.target_address());
    if (!magic.target_node().empty()) absl::StrAppend(&text, " (", magic.target_node(), ")");
  }
  return text;
}

nlohmann::json NodeJson(const v1::Node& node) {
  return {
      {"name", node.spec().name()},
      {"labels", LabelsJson(node.spec().labels())},
      {"set_labels", LabelsJson(node.set_labels())},
      {"interfaces", JsonArray(node.spec().interfaces(), &InterfaceJson)},
      {"ready", node.ready()},
      {"ready_change_time", TimeOrNull(node.ready_change_time_unix_ms())},
      {"last_heartbeat", TimeOrNull(node.last_heartbeat_unix_ms())},
      {"connected", node.connected()},
      {"revision", node.revision()},
      {"create_revision", node.create_revision()},
      {"assignments", JsonArray(node.assignments(), &AssignmentJson)},
      {"statuses", JsonArray(node.statuses(), &StatusJson)},
  };
}

std::string NodesTable(const Repeated<v1::Node>& nodes) {
  Table table({"NAME", "READY", "LAST-HEARTBEAT", "CONNECTED", "LABELS", "CARRIES"});
  for (const v1::Node& node : nodes) {
    table.AddRow({node.spec().name(), node.ready() ? "yes" : "no",
                  node.last_heartbeat_unix_ms() == 0 ? OrNone("") : FormatUnixMillis(node.last_heartbeat_unix_ms()),
                  node.connected() ? "yes" : "no", OrNone(LabelsText(node.spec().labels())), Carries(node)});
  }
  return table.Render();
}

std::string NodeDetail(const v1::Node& node) {
  std::vector<std::string> interfaces;
  for (const v1::NodeInterface& interface : node.spec().interfaces()) {
    interfaces.push_back(absl::StrCat(interface.name(), " ", absl::StrJoin(interface.addresses(), ",")));
  }
  std::string text = DetailLines({
      {"NAME", node.spec().name()},
      {"READY", node.ready() ? "yes" : "no"},
      {"SINCE",
       node.ready_change_time_unix_ms() == 0 ? OrNone("") : FormatUnixMillis(node.ready_change_time_unix_ms())},
      {"HEARTBEAT", node.last_heartbeat_unix_ms() == 0 ? OrNone("") : FormatUnixMillis(node.last_heartbeat_unix_ms())},
      {"CONNECTED", node.connected() ? "yes" : "no"},
      {"LABELS", OrNone(LabelsText(node.spec().labels()))},
      {"SET-LABELS", OrNone(LabelsText(node.set_labels()))},
      {"INTERFACES", OrNone(absl::StrJoin(interfaces, "; "))},
      {"REVISION", absl::StrCat(node.revision())},
  });
  Table table({"ASSIGNMENT", "REVISION", "STATUS", "CARRIES"});
  for (const v1::Assignment& assignment : node.assignments()) {
    std::string status = StateName(v1::ASSIGNMENT_STATE_UNSPECIFIED);
    for (const v1::AssignmentStatus& reported : node.statuses()) {
      if (reported.id() != assignment.id()) continue;
      status = StateName(reported.state());
      if (reported.revision() != assignment.revision()) absl::StrAppend(&status, " (at ", reported.revision(), ")");
      if (!reported.message().empty()) absl::StrAppend(&status, ": ", reported.message());
    }
    table.AddRow({assignment.id(), absl::StrCat(assignment.revision()), status, AssignmentText(assignment)});
  }
  return absl::StrCat(text, "\n", table.Render());
}

nlohmann::json WatchMessageJson(const v1::WatchAssignmentsResponse& message) {
  return {
      {"revision", message.revision()},
      {"snapshot", message.snapshot()},
      {"lease_ms", message.lease_ms() == 0 ? nlohmann::json(nullptr) : nlohmann::json(message.lease_ms())},
      {"assignments", JsonArray(message.assignments(), &AssignmentJson)},
      {"removed", std::vector<std::string>(message.removed().begin(), message.removed().end())},
  };
}

std::string WatchMessageText(const v1::WatchAssignmentsResponse& message) {
  std::string text = absl::StrCat("revision ", message.revision(), message.snapshot() ? " snapshot" : " delta");
  if (message.lease_ms() != 0) absl::StrAppend(&text, " lease ", message.lease_ms(), "ms");
  std::vector<std::string> assignments;
  for (const v1::Assignment& assignment : message.assignments()) assignments.push_back(AssignmentText(assignment));
  absl::StrAppend(&text, ": ", assignments.empty() ? "no assignments" : absl::StrJoin(assignments, "; "));
  if (!message.removed().empty()) absl::StrAppend(&text, "; removed: ", absl::StrJoin(message.removed(), ","));
  return text;
}

// The fields of an address taken from a pool (external, elastic).
template <typename Address>
nlohmann::json PoolAddressFields(const Address& address) {
  return {
      {"name", address.spec().name()},
      {"pool", address.spec().pool()},
      {"address", address.address()},
      {"prefix_length", address.prefix_length()},
      {"network", address.network()},
      {"requested_address", StringOrNull(address.spec().address())},
  };
}

// An address object's fields with its revisions and creation time added.
template <typename Address>
nlohmann::json WithStamps(const Address& address, nlohmann::json fields) {
  fields["revision"] = address.revision();
  fields["create_revision"] = address.create_revision();
  fields["create_time"] = TimeOrNull(address.create_time_unix_ms());
  return fields;
}

nlohmann::json ExternalAddressJson(const v1::ExternalAddress& address) {
  nlohmann::json fields = PoolAddressFields(address);
  fields["node_selector"] = address.spec().node_selector();
  fields["node"] = StringOrNull(address.node());
  return WithStamps(address, std::move(fields));
}

std::string ExternalAddressesTable(const Repeated<v1::ExternalAddress>& addresses) {
  Table table({"NAME", "POOL", "ADDRESS", "NODE", "NODE-SELECTOR"});
  for (const v1::ExternalAddress& address : addresses) {
    table.AddRow({address.spec().name(), address.spec().pool(), address.address(), OrNone(address.node()),
                  OrNone(address.spec().node_selector())});
  }
  return table.Render();
}

nlohmann::json ElasticAddressJson(const v1::ElasticAddress& address) {
  nlohmann::json association = nullptr;
  if (address.has_association()) {
    association = {{"owner", StringOrNull(address.association().owner())},
                   {"label_selector", StringOrNull(address.association().label_selector())}};
  }
  nlohmann::json fields = PoolAddressFields(address);
  fields["association"] = std::move(association);
  fields["workload_address"] = StringOrNull(address.workload_address());
  fields["workload_owner"] = StringOrNull(address.workload_owner());
  fields["node"] = StringOrNull(address.node());
  return WithStamps(address, std::move(fields));
}

std::string ElasticAddressesTable(const Repeated<v1::ElasticAddress>& addresses) {
  Table table({"NAME", "POOL", "ADDRESS", "ASSOCIATION", "WORKLOAD", "NODE"});
  for (const v1::ElasticAddress& address : addresses) {
    table.AddRow({address.spec().name(), address.spec().pool(), address.address(), ElasticAssociationText(address),
                  OrNone(address.workload_address()), OrNone(address.node())});
  }
  return table.Render();
}

nlohmann::json MagicAddressJson(const v1::MagicAddress& address) {
  const v1::MagicAddressSpec& spec = address.spec();
  return WithStamps(address, {
      {"name", spec.name()},
      {"address", spec.address()},
      {"ports", JsonArray(spec.ports(), &PortJson)},
      {"selector", spec.label_selector()},
      {"policy", PolicyName(spec.policy())},
  });
}

std::string MagicAddressesTable(const Repeated<v1::MagicAddress>& addresses) {
  Table table({"NAME", "ADDRESS", "PORTS", "SELECTOR", "POLICY"});
  for (const v1::MagicAddress& address : addresses) {
    table.AddRow({address.spec().name(), address.spec().address(), PortsText(address.spec().ports()),
                  address.spec().label_selector(), PolicyName(address.spec().policy())});
  }
  return table.Render();
}

void WriteNode(Output& output, const v1::Node& node) {
  output.Write([&] { return NodeJson(node); }, [&] { return NodeDetail(node); });
}

void WriteNodes(Output& output, const Repeated<v1::Node>& nodes) {
  output.Write([&] { return JsonArray(nodes, &NodeJson); }, [&] { return NodesTable(nodes); });
}

void WriteWatchMessage(Output& output, const v1::WatchAssignmentsResponse& message) {
  output.WriteLine([&] { return WatchMessageJson(message); }, [&] { return WatchMessageText(message); });
}

void WriteExternalAddress(Output& output, const v1::ExternalAddress& address) {
  output.Write([&] { return ExternalAddressJson(address); }, [&] { return OneRow(address, &ExternalAddressesTable); });
}

void WriteExternalAddresses(Output& output, const Repeated<v1::ExternalAddress>& addresses) {
  output.Write([&] { return JsonArray(addresses, &ExternalAddressJson); },
               [&] { return ExternalAddressesTable(addresses); });
}

void WriteElasticAddress(Output& output, const v1::ElasticAddress& address) {
  output.Write([&] { return ElasticAddressJson(address); }, [&] { return OneRow(address, &ElasticAddressesTable); });
}

void WriteElasticAddresses(Output& output, const Repeated<v1::ElasticAddress>& addresses) {
  output.Write([&] { return JsonArray(addresses, &ElasticAddressJson); },
               [&] { return ElasticAddressesTable(addresses); });
}

void WriteMagicAddress(Output& output, const v1::MagicAddress& address) {
  output.Write([&] { return MagicAddressJson(address); }, [&] { return OneRow(address, &MagicAddressesTable); });
}

void WriteMagicAddresses(Output& output, const Repeated<v1::MagicAddress>& addresses) {
  output.Write([&] { return JsonArray(addresses, &MagicAddressJson); }, [&] { return MagicAddressesTable(addresses); });
}

void WriteAddressDeleted(Output& output, const std::string& kind, const std::string& name,
                         const v1::DeleteAddressResponse& deleted) {
  output.Write(
      [&]() -> nlohmann::json {
        return {{"name", name}, {"revision", deleted.revision()}};
      },
      [&] { return absl::StrCat(kind, " address \"", name, "\" deleted\n"); });
}

void WriteNodeDeleted(Output& output, const std::string& name, const v1::DeleteNodeResponse& deleted) {
  std::vector<std::string> released;
  for (const auto& a : deleted.released()) released.push_back(a.address());
  const std::vector<std::string> moved(deleted.moved_external_addresses().begin(),
                                       deleted.moved_external_addresses().end());
  output.Write(
      [&]() -> nlohmann::json {
        return {{"name", name},
                {"revision", deleted.revision()},
                {"released", released},
                {"moved_external_addresses", moved}};
      },
      [&] {
        std::string text = absl::StrCat("node \"", name, "\" deleted; ", released.size(), " allocation",
                                        released.size() == 1 ? "" : "s", " released");
        if (!released.empty()) absl::StrAppend(&text, " (", absl::StrJoin(released, ", "), ")");
        if (!moved.empty()) absl::StrAppend(&text, "; external addresses moved: ", absl::StrJoin(moved, ", "));
        return absl::StrCat(text, "\n");
      });
}

}  // namespace abode::cli

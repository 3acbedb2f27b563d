// What abodectl prints for nodes, their assignments, and external, elastic and magic addresses. JSON keys are a
// contract; address_output_test pins them.
#ifndef ABODE_CLI_ADDRESS_OUTPUT_H_
#define ABODE_CLI_ADDRESS_OUTPUT_H_

#include <nlohmann/json.hpp>
#include <string>

#include "abode/v1/nodes.pb.h"
#include "cli/output.h"

namespace abode::cli {

// "tcp" / "udp" / "sctp", as spelled on the command line.
std::string ProtocolName(v1::Protocol protocol);
// "drop" / "fallback".
std::string PolicyName(v1::MagicPolicy policy);
// "8125/udp", or "8125/udp->8126" when the target port differs.
std::string PortMappingText(const v1::PortMapping& port);

// Keys: id, revision, kind ("external", "elastic" or "magic"), name, address, and by kind:
// external: prefix_length, pool; elastic: prefix_length, pool, workload_address, workload_owner;
// magic: ports (array of {protocol, port, target_port}), target_address, target_owner, target_node (null when
// empty).
nlohmann::json AssignmentJson(const v1::Assignment& assignment);
// "external/web 203.0.113.5", "magic/dd 169.254.210.210 8125/udp -> 10.1.0.7 (node-a)".
std::string AssignmentText(const v1::Assignment& assignment);

// Keys: name, labels, interfaces (array of {name, addresses}), ready, ready_change_time, last_heartbeat (null
// when this replica has not heard from the node), connected, revision, create_revision, assignments (array of
// AssignmentJson), statuses (array of {id, revision, state ("ok"/"error"/"unreported"), message, report_time}).
nlohmann::json NodeJson(const v1::Node& node);
// NAME READY LAST-HEARTBEAT CONNECTED LABELS CARRIES.
std::string NodesTable(const Repeated<v1::Node>& nodes);
// The node's fields, then ASSIGNMENT STATUS lines.
std::string NodeDetail(const v1::Node& node);

// Keys: revision, snapshot, lease_ms (null unless set), assignments (array of AssignmentJson), removed (ids).
nlohmann::json WatchMessageJson(const v1::WatchAssignmentsResponse& message);
// "revision 12 snapshot lease 6000ms: external/web 203.0.113.5; ... removed: magic/dd".
std::string WatchMessageText(const v1::WatchAssignmentsResponse& message);

// Keys: name, pool, address, prefix_length, network, requested_address (null when allocated from the pool),
// node_selector, node (null while unserved), revision, create_revision, create_time.
nlohmann::json ExternalAddressJson(const v1::ExternalAddress& address);
// NAME POOL ADDRESS NODE NODE-SELECTOR.
std::string ExternalAddressesTable(const Repeated<v1::ExternalAddress>& addresses);

// Keys: name, pool, address, prefix_length, network, requested_address, association (null, or {owner,
// label_selector} with null for the unused one), workload_address, workload_owner, node (null when none),
// revision, create_revision, create_time.
nlohmann::json ElasticAddressJson(const v1::ElasticAddress& address);
// NAME POOL ADDRESS ASSOCIATION WORKLOAD NODE.
std::string ElasticAddressesTable(const Repeated<v1::ElasticAddress>& addresses);

// Keys: name, address, ports (array of {protocol, port, target_port}), selector, policy, revision,
// create_revision, create_time.
nlohmann::json MagicAddressJson(const v1::MagicAddress& address);
// NAME ADDRESS PORTS SELECTOR POLICY.
std::string MagicAddressesTable(const Repeated<v1::MagicAddress>& addresses);

void WriteNode(Output& output, const v1::Node& node);
void WriteNodes(Output& output, const Repeated<v1::Node>& nodes);
// Keys: name, revision, released (the allocations' addresses), moved_external_addresses.
void WriteNodeDeleted(Output& output, const std::string& name, const v1::DeleteNodeResponse& deleted);
void WriteWatchMessage(Output& output, const v1::WatchAssignmentsResponse& message);
void WriteExternalAddress(Output& output, const v1::ExternalAddress& address);
void WriteExternalAddresses(Output& output, const Repeated<v1::ExternalAddress>& addresses);
void WriteElasticAddress(Output& output, const v1::ElasticAddress& address);
void WriteElasticAddresses(Output& output, const Repeated<v1::ElasticAddress>& addresses);
void WriteMagicAddress(Output& output, const v1::MagicAddress& address);
void WriteMagicAddresses(Output& output, const Repeated<v1::MagicAddress>& addresses);
// `kind` is "external", "elastic" or "magic". Keys: name, revision.
void WriteAddressDeleted(Output& output, const std::string& kind, const std::string& name,
                         const v1::DeleteAddressResponse& deleted);

}  // namespace abode::cli

#endif  // ABODE_CLI_ADDRESS_OUTPUT_H_

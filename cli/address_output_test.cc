#include "cli/address_output.h"

#include <gtest/gtest.h>

namespace abode::cli {
namespace {

v1::Assignment MagicAssignment() {
  v1::Assignment assignment;
  assignment.set_id("magic/dd");
  assignment.set_revision(8);
  v1::MagicAssignment& magic = *assignment.mutable_magic();
  magic.set_name("dd");
  magic.set_address("169.254.210.210");
  v1::PortMapping& port = *magic.add_ports();
  port.set_protocol(v1::PROTOCOL_UDP);
  port.set_port(8125);
  port.set_target_port(8126);
  magic.set_target_address("10.1.0.7");
  magic.set_target_owner("k8s/uid/eth0");
  magic.set_target_node("node-a");
  return assignment;
}

TEST(AddressOutputTest, MagicAssignmentJsonAndText) {
  const nlohmann::json expected = {
      {"id", "magic/dd"},
      {"revision", 8},
      {"kind", "magic"},
      {"name", "dd"},
      {"address", "169.254.210.210"},
      {"ports", nlohmann::json::array({{{"protocol", "udp"}, {"port", 8125}, {"target_port", 8126}}})},
      {"target_address", "10.1.0.7"},
      {"target_owner", "k8s/uid/eth0"},
      {"target_node", "node-a"},
  };
  EXPECT_EQ(AssignmentJson(MagicAssignment()), expected);
  EXPECT_EQ(AssignmentText(MagicAssignment()), "magic/dd 169.254.210.210 8125/udp->8126 -> 10.1.0.7 (node-a)");
}

TEST(AddressOutputTest, NodeJsonTableAndDetail) {
  v1::Node node;
  node.mutable_spec()->set_name("node-a");
  (*node.mutable_spec()->mutable_labels())["zone"] = "a";
  (*node.mutable_set_labels())["rack"] = "r1";
  v1::NodeInterface& interface = *node.mutable_spec()->add_interfaces();
  interface.set_name("eth0");
  interface.add_addresses("192.0.2.10/24");
  node.set_ready(true);
  node.set_ready_change_time_unix_ms(1795356240000);
  node.set_last_heartbeat_unix_ms(1795356300000);
  node.set_connected(true);
  node.set_revision(8);
  node.set_create_revision(2);
  *node.add_assignments() = MagicAssignment();
  v1::AssignmentStatus& status = *node.add_statuses();
  status.set_id("magic/dd");
  status.set_revision(8);
  status.set_state(v1::ASSIGNMENT_STATE_ERROR);
  status.set_message("nft: busy");
  const nlohmann::json json = NodeJson(node);
  EXPECT_EQ(json["name"], "node-a");
  EXPECT_EQ(json["labels"], (nlohmann::json{{"zone", "a"}}));
  EXPECT_EQ(json["set_labels"], (nlohmann::json{{"rack", "r1"}}));
  EXPECT_EQ(json["interfaces"], nlohmann::json::parse(R"([{"name":"eth0","addresses":["192.0.2.10/24"]}])"));
  EXPECT_EQ(json["ready"], true);
  EXPECT_EQ(json["ready_change_time"], "2026-11-22T14:04:00Z");
  EXPECT_EQ(json["last_heartbeat"], "2026-11-22T14:05:00Z");
  EXPECT_EQ(json["connected"], true);
  EXPECT_EQ(json["revision"], 8);
  EXPECT_EQ(json["create_revision"], 2);
  EXPECT_EQ(json["assignments"][0]["id"], "magic/dd");
  EXPECT_EQ(json["statuses"], nlohmann::json::parse(R"([{"id":"magic/dd","revision":8,"state":"error",
                                                        "message":"nft: busy","report_time":null}])"));
  EXPECT_EQ(json.size(), 12u);

  Repeated<v1::Node> nodes;
  *nodes.Add() = node;
  EXPECT_EQ(NodesTable(nodes),
            "NAME     READY   LAST-HEARTBEAT         CONNECTED   LABELS   CARRIES\n"
            "node-a   yes     2026-11-22T14:05:00Z   yes         zone=a   magic/dd=169.254.210.210\n");
  const std::string detail = NodeDetail(node);
  EXPECT_NE(detail.find("INTERFACES   eth0 192.0.2.10/24\n"), std::string::npos) << detail;
  EXPECT_NE(detail.find("SET-LABELS   rack=r1\n"), std::string::npos) << detail;
  EXPECT_NE(detail.find("magic/dd     8          error: nft: busy"), std::string::npos) << detail;
}

TEST(AddressOutputTest, WatchMessageJsonAndText) {
  v1::WatchAssignmentsResponse message;
  message.set_revision(12);
  message.add_removed("external/web");
  *message.add_assignments() = MagicAssignment();
  const nlohmann::json json = WatchMessageJson(message);
  EXPECT_EQ(json["revision"], 12);
  EXPECT_EQ(json["snapshot"], false);
  EXPECT_TRUE(json["lease_ms"].is_null());
  EXPECT_EQ(json["removed"], nlohmann::json::array({"external/web"}));
  EXPECT_EQ(json["assignments"].size(), 1u);
  EXPECT_EQ(WatchMessageText(message),
            "revision 12 delta: magic/dd 169.254.210.210 8125/udp->8126 -> 10.1.0.7 (node-a); removed: external/web");
  EXPECT_EQ(WatchMessageText(v1::WatchAssignmentsResponse()), "revision 0 delta: no assignments");
}

TEST(AddressOutputTest, ExternalAddressJsonHasEveryKey) {
  v1::ExternalAddress address;
  address.mutable_spec()->set_name("web");
  address.mutable_spec()->set_pool("public");
  address.mutable_spec()->set_node_selector("edge=true");
  address.set_address("203.0.113.5");
  address.set_prefix_length(24);
  address.set_network("default");
  address.set_revision(5);
  address.set_create_revision(4);
  address.set_create_time_unix_ms(1795356300000);
  const nlohmann::json expected = {
      {"name", "web"},
      {"pool", "public"},
      {"address", "203.0.113.5"},
      {"prefix_length", 24},
      {"network", "default"},
      {"requested_address", nullptr},
      {"node_selector", "edge=true"},
      {"node", nullptr},
      {"revision", 5},
      {"create_revision", 4},
      {"create_time", "2026-11-22T14:05:00Z"},
  };
  EXPECT_EQ(ExternalAddressJson(address), expected);
}

TEST(AddressOutputTest, ElasticAddressJsonAndTable) {
  v1::ElasticAddress address;
  address.mutable_spec()->set_name("eip-1");
  address.mutable_spec()->set_pool("public");
  address.set_address("203.0.113.9");
  address.mutable_association()->set_owner("k8s/uid/eth0");
  address.set_workload_address("10.1.0.7");
  address.set_workload_owner("k8s/uid/eth0");
  address.set_node("node-a");
  const nlohmann::json json = ElasticAddressJson(address);
  EXPECT_EQ(json["association"], (nlohmann::json{{"owner", "k8s/uid/eth0"}, {"label_selector", nullptr}}));
  EXPECT_EQ(json["workload_address"], "10.1.0.7");
  EXPECT_EQ(json["node"], "node-a");
  EXPECT_EQ(json.size(), 13u);
  address.clear_association();
  EXPECT_TRUE(ElasticAddressJson(address)["association"].is_null());
  Repeated<v1::ElasticAddress> addresses;
  *addresses.Add() = address;
  EXPECT_EQ(ElasticAddressesTable(addresses),
            "NAME    POOL     ADDRESS       ASSOCIATION   WORKLOAD   NODE\n"
            "eip-1   public   203.0.113.9   -             10.1.0.7   node-a\n");
}

TEST(AddressOutputTest, MagicAddressJsonAndTable) {
  v1::MagicAddress address;
  v1::MagicAddressSpec& spec = *address.mutable_spec();
  spec.set_name("dd");
  spec.set_address("169.254.210.210");
  spec.set_label_selector("app=dd");
  v1::PortMapping& port = *spec.add_ports();
  port.set_protocol(v1::PROTOCOL_UDP);
  port.set_port(8125);
  const nlohmann::json json = MagicAddressJson(address);
  EXPECT_EQ(json["ports"], nlohmann::json::parse(R"([{"protocol":"udp","port":8125,"target_port":8125}])"));
  EXPECT_EQ(json["policy"], "drop");
  EXPECT_EQ(json["selector"], "app=dd");
  EXPECT_TRUE(json["create_time"].is_null());
  EXPECT_EQ(json.size(), 8u);
  Repeated<v1::MagicAddress> addresses;
  *addresses.Add() = address;
  EXPECT_EQ(MagicAddressesTable(addresses),
            "NAME   ADDRESS           PORTS      SELECTOR   POLICY\n"
            "dd     169.254.210.210   8125/udp   app=dd     drop\n");
}

}  // namespace
}  // namespace abode::cli

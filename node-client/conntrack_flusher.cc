#include "conntrack_flusher.h"

#include "absl/strings/str_cat.h"

namespace abode::node {

std::string ConntrackFilter::ToString() const {
  std::string text = absl::StrCat(family == IpFamily::kIpv4 ? "ipv4" : "ipv6", " flows");
  if (!original_source.empty()) absl::StrAppend(&text, " src ", original_source);
  if (!original_destination.empty()) absl::StrAppend(&text, " dst ", original_destination);
  if (protocol) absl::StrAppend(&text, " ", L4ProtocolName(*protocol));
  if (original_destination_port != 0) absl::StrAppend(&text, " dport ", original_destination_port);
  if (!reply_destination.empty()) absl::StrAppend(&text, " translated to ", reply_destination);
  return text;
}

std::vector<ConntrackFilter> FlowsTranslatedBy(const MagicDnat& mapping) {
  ConntrackFilter flows;
  flows.family = mapping.family;
  flows.original_destination = mapping.magic_address;
  flows.protocol = mapping.protocol;
  flows.original_destination_port = mapping.port;
  return {flows};
}

std::vector<ConntrackFilter> FlowsTranslatedBy(const ElasticNat& mapping) {
  ConntrackFilter inbound;
  inbound.family = FamilyOf(mapping);
  inbound.original_destination = mapping.elastic_address;
  ConntrackFilter outbound;
  outbound.family = inbound.family;
  outbound.original_source = mapping.workload_address;
  outbound.reply_destination = mapping.elastic_address;
  return {inbound, outbound};
}

}  // namespace abode::node

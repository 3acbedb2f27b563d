#include "ctnetlink_conntrack_flusher.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

namespace abode::node {
namespace {

// Large enough for one dump datagram of the kernel (it fills up to 32 KiB, or a page when that is larger).
constexpr size_t kReceiveBufferSize = 64 * 1024;

struct ParsedFilter {
  const ConntrackFilter* filter;
  std::optional<IpAddress> original_source, original_destination, reply_destination;
};

absl::StatusOr<std::optional<IpAddress>> ParseOptional(const std::string& text, const ConntrackFilter& filter) {
  if (text.empty()) return std::optional<IpAddress>();
  absl::StatusOr<IpAddress> parsed = IpAddress::Parse(text);
  if (!parsed.ok() || parsed->family != filter.family) {
    return absl::InvalidArgumentError(
        absl::StrCat("conntrack filter ", filter.ToString(), ": address ", text, " is not an address of that family"));
  }
  return std::optional<IpAddress>(*parsed);
}

bool Matches(const ParsedFilter& f, const CtnetlinkConntrackFlusher::Entry& entry) {
  if (f.original_source && *f.original_source != entry.original_source) return false;
  if (f.original_destination && *f.original_destination != entry.original_destination) return false;
  if (f.reply_destination && *f.reply_destination != entry.reply_destination) return false;
  if (f.filter->protocol && L4ProtocolNumber(*f.filter->protocol) != entry.protocol) return false;
  return f.filter->original_destination_port == 0 ||
         f.filter->original_destination_port == entry.original_destination_port;
}

// Nested attributes by type, for mnl_attr_parse*. Attributes of unknown types are skipped.
template <int kMax>
struct AttributeTable {
  const nlattr* at[kMax + 1] = {};
  static int Collect(const nlattr* attribute, void* data) {
    const int type = mnl_attr_get_type(attribute);
    if (type >= 0 && type <= kMax) static_cast<AttributeTable*>(data)->at[type] = attribute;
    return MNL_CB_OK;
  }
};

IpAddress AddressOf(const nlattr* attribute) {
  return IpAddress::FromBytes(static_cast<const uint8_t*>(mnl_attr_get_payload(attribute)),
                              mnl_attr_get_payload_len(attribute) == 16 ? 16 : 4);
}

// Reads CTA_TUPLE_IP and CTA_TUPLE_PROTO of one tuple. False when the tuple is malformed.
bool ParseTuple(const nlattr* tuple, IpAddress* source, IpAddress* destination, uint8_t* protocol,
                uint16_t* destination_port) {
  AttributeTable<CTA_TUPLE_MAX> parts;
  if (mnl_attr_parse_nested(tuple, &decltype(parts)::Collect, &parts) < 0) return false;
  if (parts.at[CTA_TUPLE_IP] == nullptr || parts.at[CTA_TUPLE_PROTO] == nullptr) return false;
  AttributeTable<CTA_IP_MAX> ip;
  AttributeTable<CTA_PROTO_MAX> proto;
  if (mnl_attr_parse_nested(parts.at[CTA_TUPLE_IP], &decltype(ip)::Collect, &ip) < 0 ||
      mnl_attr_parse_nested(parts.at[CTA_TUPLE_PROTO], &decltype(proto)::Collect, &proto) < 0) {
    return false;
  }
  const nlattr* src = ip.at[CTA_IP_V4_SRC] != nullptr ? ip.at[CTA_IP_V4_SRC] : ip.at[CTA_IP_V6_SRC];
  const nlattr* dst = ip.at[CTA_IP_V4_DST] != nullptr ? ip.at[CTA_IP_V4_DST] : ip.at[CTA_IP_V6_DST];
  if (src == nullptr || dst == nullptr || proto.at[CTA_PROTO_NUM] == nullptr) return false;
  *source = AddressOf(src);
  *destination = AddressOf(dst);
  *protocol = mnl_attr_get_u8(proto.at[CTA_PROTO_NUM]);
  if (destination_port != nullptr && proto.at[CTA_PROTO_DST_PORT] != nullptr) {
    *destination_port = ntohs(mnl_attr_get_u16(proto.at[CTA_PROTO_DST_PORT]));
  }
  return true;
}

int OnConntrackEntry(const nlmsghdr* message, void* data) {
  AttributeTable<CTA_MAX> top;
  if (mnl_attr_parse(message, sizeof(nfgenmsg), &decltype(top)::Collect, &top) < 0) return MNL_CB_OK;
  if (top.at[CTA_TUPLE_ORIG] == nullptr || top.at[CTA_TUPLE_REPLY] == nullptr) return MNL_CB_OK;
  CtnetlinkConntrackFlusher::Entry entry;
  if (!ParseTuple(top.at[CTA_TUPLE_ORIG], &entry.original_source, &entry.original_destination, &entry.protocol,
                  &entry.original_destination_port)) {
    return MNL_CB_OK;
  }
  uint8_t reply_protocol = 0;
  if (!ParseTuple(top.at[CTA_TUPLE_REPLY], &entry.reply_source, &entry.reply_destination, &reply_protocol, nullptr)) {
    return MNL_CB_OK;
  }
  const auto* raw = reinterpret_cast<const uint8_t*>(top.at[CTA_TUPLE_ORIG]);
  entry.original_tuple.assign(raw, raw + top.at[CTA_TUPLE_ORIG]->nla_len);
  if (top.at[CTA_ZONE] != nullptr) entry.zone = mnl_attr_get_u16(top.at[CTA_ZONE]);
  if (top.at[CTA_ID] != nullptr) entry.id = mnl_attr_get_u32(top.at[CTA_ID]);
  static_cast<std::vector<CtnetlinkConntrackFlusher::Entry>*>(data)->push_back(std::move(entry));
  return MNL_CB_OK;
}

nlmsghdr* PutCtnetlinkHeader(uint8_t* buffer, uint8_t type, uint16_t flags, IpFamily family, uint32_t sequence) {
  nlmsghdr* message = mnl_nlmsg_put_header(buffer);
  message->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | type;
  message->nlmsg_flags = NLM_F_REQUEST | flags;
  message->nlmsg_seq = sequence;
  auto* header = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(message, sizeof(nfgenmsg)));
  header->nfgen_family = family == IpFamily::kIpv4 ? AF_INET : AF_INET6;
  header->version = NFNETLINK_V0;
  header->res_id = 0;
  return message;
}

}  // namespace

absl::StatusOr<std::unique_ptr<CtnetlinkConntrackFlusher>> CtnetlinkConntrackFlusher::Create() {
  MnlSocketPtr socket(mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC));
  if (socket == nullptr) {
    return absl::InternalError(absl::StrCat("opening a netfilter netlink socket: ", std::strerror(errno)));
  }
  if (mnl_socket_bind(socket.get(), 0, MNL_SOCKET_AUTOPID) < 0) {
    return absl::InternalError(absl::StrCat("binding a netfilter netlink socket: ", std::strerror(errno)));
  }
  return std::unique_ptr<CtnetlinkConntrackFlusher>(new CtnetlinkConntrackFlusher(std::move(socket)));
}

CtnetlinkConntrackFlusher::CtnetlinkConntrackFlusher(MnlSocketPtr socket)
    : socket_(std::move(socket)), port_id_(mnl_socket_get_portid(socket_.get())), buffer_(kReceiveBufferSize) {}

absl::Status CtnetlinkConntrackFlusher::Exchange(nlmsghdr* request, std::vector<Entry>* dumped) {
  if (mnl_socket_sendto(socket_.get(), request, request->nlmsg_len) < 0) {
    return absl::InternalError(absl::StrCat("ctnetlink send: ", std::strerror(errno)));
  }
  const uint32_t sequence = request->nlmsg_seq;
  while (true) {
    const ssize_t n = mnl_socket_recvfrom(socket_.get(), buffer_.data(), buffer_.size());
    if (n < 0) return absl::InternalError(absl::StrCat("ctnetlink receive: ", std::strerror(errno)));
    const int run = mnl_cb_run(buffer_.data(), static_cast<size_t>(n), sequence, port_id_,
                               dumped != nullptr ? &OnConntrackEntry : nullptr, dumped);
    if (run < 0) {
      const int error = errno;
      return absl::ErrnoToStatus(error, "ctnetlink");
    }
    if (run == MNL_CB_STOP) return absl::OkStatus();
  }
}

absl::StatusOr<std::vector<CtnetlinkConntrackFlusher::Entry>> CtnetlinkConntrackFlusher::List(IpFamily family) {
  std::vector<uint8_t> request(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* message = PutCtnetlinkHeader(request.data(), IPCTNL_MSG_CT_GET, NLM_F_DUMP, family, ++sequence_);
  std::vector<Entry> entries;
  if (absl::Status dumped = Exchange(message, &entries); !dumped.ok()) {
    return absl::Status(dumped.code(), absl::StrCat("dumping the ", family == IpFamily::kIpv4 ? "ipv4" : "ipv6",
                                                    " conntrack table: ", dumped.message()));
  }
  return entries;
}

absl::StatusOr<int> CtnetlinkConntrackFlusher::Flush(const std::vector<ConntrackFilter>& filters) {
  std::vector<ParsedFilter> parsed;
  for (const ConntrackFilter& filter : filters) {
    ParsedFilter p{&filter, {}, {}, {}};
    for (auto [text, out] : {std::pair{&filter.original_source, &p.original_source},
                             std::pair{&filter.original_destination, &p.original_destination},
                             std::pair{&filter.reply_destination, &p.reply_destination}}) {
      absl::StatusOr<std::optional<IpAddress>> address = ParseOptional(*text, filter);
      if (!address.ok()) return address.status();
      *out = *address;
    }
    parsed.push_back(p);
  }
  int deleted = 0;
  std::vector<uint8_t> request(MNL_SOCKET_BUFFER_SIZE);
  for (IpFamily family : {IpFamily::kIpv4, IpFamily::kIpv6}) {
    std::vector<const ParsedFilter*> of_family;
    for (const ParsedFilter& p : parsed) {
      if (p.filter->family == family) of_family.push_back(&p);
    }
    if (of_family.empty()) continue;
    absl::StatusOr<std::vector<Entry>> entries = List(family);
    if (!entries.ok()) {
      std::string selected = of_family.front()->filter->ToString();
      if (of_family.size() > 1) absl::StrAppend(&selected, " and ", of_family.size() - 1, " more");
      return absl::Status(entries.status().code(),
                          absl::StrCat("flushing conntrack entries of ", selected, ": ", entries.status().message()));
    }
    for (const Entry& entry : *entries) {
      const ParsedFilter* match = nullptr;
      for (const ParsedFilter* p : of_family) {
        if (Matches(*p, entry)) {
          match = p;
          break;
        }
      }
      if (match == nullptr) continue;
      nlmsghdr* message = PutCtnetlinkHeader(request.data(), IPCTNL_MSG_CT_DELETE, NLM_F_ACK, family, ++sequence_);
      const auto* tuple = reinterpret_cast<const nlattr*>(entry.original_tuple.data());
      mnl_attr_put(message, tuple->nla_type, mnl_attr_get_payload_len(tuple), mnl_attr_get_payload(tuple));
      if (entry.zone) mnl_attr_put_u16(message, CTA_ZONE, *entry.zone);
      if (entry.id) mnl_attr_put_u32(message, CTA_ID, *entry.id);
      absl::Status removed = Exchange(message, nullptr);
      if (absl::IsNotFound(removed)) continue;  // expired, or deleted by someone else, since the dump
      if (!removed.ok()) {
        return absl::Status(removed.code(),
                            absl::StrCat("deleting the conntrack entry to ", entry.original_destination.ToString(),
                                         " (", match->filter->ToString(), "): ", removed.message()));
      }
      ++deleted;
    }
  }
  return deleted;
}

}  // namespace abode::node

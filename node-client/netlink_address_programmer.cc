#include "netlink_address_programmer.h"

#include <linux/if_addr.h>
#include <netlink/errno.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace abode::node {

void NlSockDeleter::operator()(nl_sock* sock) const { nl_socket_free(sock); }
void NlCacheDeleter::operator()(nl_cache* cache) const { nl_cache_free(cache); }

namespace {

struct NlMsgDeleter {
  void operator()(nl_msg* msg) const { nlmsg_free(msg); }
};
struct NlCbDeleter {
  void operator()(nl_cb* cb) const { nl_cb_put(cb); }
};
struct RtnlAddrDeleter {
  void operator()(rtnl_addr* addr) const { rtnl_addr_put(addr); }
};
struct NlAddrDeleter {
  void operator()(nl_addr* addr) const { nl_addr_put(addr); }
};
using NlMsgPtr = std::unique_ptr<nl_msg, NlMsgDeleter>;
using NlCbPtr = std::unique_ptr<nl_cb, NlCbDeleter>;
using RtnlAddrPtr = std::unique_ptr<rtnl_addr, RtnlAddrDeleter>;
using NlAddrPtr = std::unique_ptr<nl_addr, NlAddrDeleter>;

std::string NlError(int error) { return nl_geterror(error < 0 ? -error : error); }

int AddressFamily(IpFamily family) { return family == IpFamily::kIpv4 ? AF_INET : AF_INET6; }

struct DumpState {
  std::vector<NetlinkAddressProgrammer::KernelAddress>* out;
};

int OnAddressMessage(nl_msg* msg, void* arg) {
  auto* state = static_cast<DumpState*>(arg);
  nlmsghdr* header = nlmsg_hdr(msg);
  if (header->nlmsg_type != RTM_NEWADDR) return NL_SKIP;
  const auto* ifa = static_cast<const ifaddrmsg*>(nlmsg_data(header));
  nlattr* attrs[IFA_MAX + 1] = {};
  if (nlmsg_parse(header, sizeof(ifaddrmsg), attrs, IFA_MAX, nullptr) < 0) return NL_SKIP;
  nlattr* local = attrs[IFA_LOCAL] != nullptr ? attrs[IFA_LOCAL] : attrs[IFA_ADDRESS];
  if (local == nullptr) return NL_SKIP;
  const size_t length = static_cast<size_t>(nla_len(local));
  if ((ifa->ifa_family != AF_INET || length != 4) && (ifa->ifa_family != AF_INET6 || length != 16)) {
    return NL_SKIP;
  }
  NetlinkAddressProgrammer::KernelAddress address;
  address.ifindex = static_cast<int>(ifa->ifa_index);
  address.address = IpAddress::FromBytes(static_cast<const uint8_t*>(nla_data(local)), length);
  address.prefix_len = ifa->ifa_prefixlen;
  if (attrs[IFA_PROTO] != nullptr && nla_len(attrs[IFA_PROTO]) >= 1) {
    address.protocol = nla_get_u8(attrs[IFA_PROTO]);
  }
  state->out->push_back(address);
  return NL_OK;
}

}  // namespace

absl::StatusOr<std::unique_ptr<NetlinkAddressProgrammer>> NetlinkAddressProgrammer::Create() {
  NlSockPtr sock(nl_socket_alloc());
  if (sock == nullptr) return absl::ResourceExhaustedError("cannot allocate a netlink socket");
  if (int err = nl_connect(sock.get(), NETLINK_ROUTE); err < 0) {
    return absl::UnavailableError(absl::StrCat("cannot connect to rtnetlink: ", NlError(err)));
  }
  nl_cache* links = nullptr;
  if (int err = rtnl_link_alloc_cache(sock.get(), AF_UNSPEC, &links); err < 0) {
    return absl::UnavailableError(absl::StrCat("cannot read the interfaces: ", NlError(err)));
  }
  return std::unique_ptr<NetlinkAddressProgrammer>(
      new NetlinkAddressProgrammer(std::move(sock), NlCachePtr(links)));
}

NetlinkAddressProgrammer::NetlinkAddressProgrammer(NlSockPtr sock, NlCachePtr links)
    : sock_(std::move(sock)), links_(std::move(links)) {}

absl::StatusOr<int> NetlinkAddressProgrammer::InterfaceIndex(const std::string& interface) {
  int index = rtnl_link_name2i(links_.get(), interface.c_str());
  if (index == 0) {
    // Interfaces come and go: refresh once before concluding it is missing.
    if (int err = nl_cache_refill(sock_.get(), links_.get()); err < 0) {
      return absl::UnavailableError(absl::StrCat("cannot read the interfaces: ", NlError(err)));
    }
    index = rtnl_link_name2i(links_.get(), interface.c_str());
  }
  if (index == 0) return absl::NotFoundError(absl::StrCat("interface ", interface, " does not exist"));
  return index;
}

std::string NetlinkAddressProgrammer::InterfaceName(int ifindex) const {
  char name[64] = {};
  if (rtnl_link_i2name(links_.get(), ifindex, name, sizeof(name)) == nullptr) {
    return absl::StrCat("ifindex ", ifindex);
  }
  return name;
}

absl::StatusOr<std::vector<NetlinkAddressProgrammer::KernelAddress>> NetlinkAddressProgrammer::Dump(int family) {
  ifaddrmsg request = {};
  request.ifa_family = static_cast<uint8_t>(family);
  if (int err = nl_send_simple(sock_.get(), RTM_GETADDR, NLM_F_DUMP, &request, sizeof(request)); err < 0) {
    return absl::UnavailableError(absl::StrCat("cannot request the address list: ", NlError(err)));
  }
  std::vector<KernelAddress> out;
  DumpState state{&out};
  NlCbPtr cb(nl_cb_alloc(NL_CB_DEFAULT));
  if (cb == nullptr) return absl::ResourceExhaustedError("cannot allocate a netlink callback");
  nl_cb_set(cb.get(), NL_CB_VALID, NL_CB_CUSTOM, &OnAddressMessage, &state);
  if (int err = nl_recvmsgs(sock_.get(), cb.get()); err < 0) {
    return absl::UnavailableError(absl::StrCat("cannot read the address list: ", NlError(err)));
  }
  return out;
}

absl::StatusOr<std::vector<OwnedAddress>> NetlinkAddressProgrammer::ListOwned() {
  absl::StatusOr<std::vector<KernelAddress>> all = Dump(AF_UNSPEC);
  if (!all.ok()) return all.status();
  if (int err = nl_cache_refill(sock_.get(), links_.get()); err < 0) {
    return absl::UnavailableError(absl::StrCat("cannot read the interfaces: ", NlError(err)));
  }
  std::vector<OwnedAddress> owned;
  for (const KernelAddress& a : *all) {
    if (a.protocol != kAbodeAddressProtocol) continue;
    owned.push_back(OwnedAddress{InterfaceName(a.ifindex), a.address.ToString(), a.prefix_len});
  }
  std::sort(owned.begin(), owned.end());
  return owned;
}

absl::Status NetlinkAddressProgrammer::Add(const OwnedAddress& address) {
  if (absl::Status s = ValidateOwnedAddress(address); !s.ok()) return s;
  absl::StatusOr<int> ifindex = InterfaceIndex(address.interface);
  if (!ifindex.ok()) return ifindex.status();
  absl::StatusOr<IpAddress> ip = IpAddress::Parse(address.address);
  if (!ip.ok()) return ip.status();

  absl::StatusOr<std::vector<KernelAddress>> present = Dump(AddressFamily(ip->family));
  if (!present.ok()) return present.status();
  bool already_ours = false;
  for (const KernelAddress& a : *present) {
    if (a.address != *ip) continue;
    if (a.protocol != kAbodeAddressProtocol) {
      return absl::FailedPreconditionError(absl::StrCat("address ", address.address, " is already held on interface ",
                                                        InterfaceName(a.ifindex), " by another owner (protocol ",
                                                        static_cast<int>(a.protocol), "); not adding it to ", address.interface));
    }
    if (a.ifindex == *ifindex && a.prefix_len == address.prefix_len) already_ours = true;
  }
  if (already_ours) return absl::OkStatus();

  NlMsgPtr msg(nlmsg_alloc_simple(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL));
  if (msg == nullptr) return absl::ResourceExhaustedError("cannot allocate a netlink message");
  ifaddrmsg ifa = {};
  ifa.ifa_family = static_cast<uint8_t>(AddressFamily(ip->family));
  ifa.ifa_prefixlen = static_cast<uint8_t>(address.prefix_len);
  // The allocator guarantees uniqueness, and the address must answer at once (e.g. for the announcement that
  // follows), so IPv6 duplicate address detection is skipped.
  ifa.ifa_flags = ip->family == IpFamily::kIpv6 ? IFA_F_NODAD : 0;
  ifa.ifa_scope = RT_SCOPE_UNIVERSE;
  ifa.ifa_index = static_cast<uint32_t>(*ifindex);
  const int length = static_cast<int>(ip->ByteLength());
  if (nlmsg_append(msg.get(), &ifa, sizeof(ifa), NLMSG_ALIGNTO) < 0 ||
      nla_put(msg.get(), IFA_LOCAL, length, ip->bytes.data()) < 0 ||
      nla_put(msg.get(), IFA_ADDRESS, length, ip->bytes.data()) < 0 ||
      nla_put_u8(msg.get(), IFA_PROTO, kAbodeAddressProtocol) < 0) {
    return absl::ResourceExhaustedError(absl::StrCat("cannot build the request to add ", address.ToString()));
  }
  if (int err = nl_send_auto(sock_.get(), msg.get()); err < 0) {
    return absl::UnavailableError(absl::StrCat("cannot send the request to add ", address.ToString(), ": ",
                                               NlError(err)));
  }
  if (int err = nl_wait_for_ack(sock_.get()); err < 0) {
    if (err == -NLE_EXIST) {
      return absl::AlreadyExistsError(absl::StrCat("cannot add ", address.ToString(),
                                                   ": the kernel already holds a conflicting address"));
    }
    if (err == -NLE_NODEV || err == -NLE_OBJ_NOTFOUND) {
      return absl::NotFoundError(absl::StrCat("interface ", address.interface, " does not exist"));
    }
    return absl::InternalError(absl::StrCat("cannot add ", address.ToString(), ": ", NlError(err)));
  }
  return absl::OkStatus();
}

absl::Status NetlinkAddressProgrammer::Remove(const OwnedAddress& address) {
  if (absl::Status s = ValidateOwnedAddress(address); !s.ok()) return s;
  absl::StatusOr<int> ifindex = InterfaceIndex(address.interface);
  if (absl::IsNotFound(ifindex.status())) return absl::OkStatus();  // gone with its interface
  if (!ifindex.ok()) return ifindex.status();
  absl::StatusOr<IpAddress> ip = IpAddress::Parse(address.address);
  if (!ip.ok()) return ip.status();

  absl::StatusOr<std::vector<KernelAddress>> present = Dump(AddressFamily(ip->family));
  if (!present.ok()) return present.status();
  auto it = std::find_if(present->begin(), present->end(), [&](const KernelAddress& a) {
    return a.ifindex == *ifindex && a.address == *ip && a.prefix_len == address.prefix_len;
  });
  if (it == present->end()) return absl::OkStatus();
  if (it->protocol != kAbodeAddressProtocol) {
    return absl::FailedPreconditionError(absl::StrCat("address ", address.address, " on interface ",
                                                      address.interface, " belongs to another owner (protocol ",
                                                      static_cast<int>(it->protocol), "); not removing it"));
  }

  RtnlAddrPtr request(rtnl_addr_alloc());
  NlAddrPtr local(nl_addr_build(AddressFamily(ip->family), ip->bytes.data(), ip->ByteLength()));
  if (request == nullptr || local == nullptr) return absl::ResourceExhaustedError("cannot allocate a netlink address");
  nl_addr_set_prefixlen(local.get(), address.prefix_len);
  rtnl_addr_set_ifindex(request.get(), *ifindex);
  rtnl_addr_set_family(request.get(), AddressFamily(ip->family));
  if (int err = rtnl_addr_set_local(request.get(), local.get()); err < 0) {
    return absl::InternalError(absl::StrCat("cannot build the request to remove ", address.ToString(), ": ",
                                            NlError(err)));
  }
  rtnl_addr_set_prefixlen(request.get(), address.prefix_len);
  if (int err = rtnl_addr_delete(sock_.get(), request.get(), 0); err < 0) {
    if (err == -NLE_NOADDR || err == -NLE_OBJ_NOTFOUND) return absl::OkStatus();
    return absl::InternalError(absl::StrCat("cannot remove ", address.ToString(), ": ", NlError(err)));
  }
  return absl::OkStatus();
}

}  // namespace abode::node

#include "netlink_address_programmer.h"

#include <linux/if_addr.h>
#include <netlink/errno.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <linux/netlink.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
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

// One message of a dump or a notification: an address that exists (RTM_NEWADDR) or no longer does.
struct AddressEvent {
  bool exists = true;
  NetlinkAddressProgrammer::KernelAddress address;
};

int OnAddressMessage(nl_msg* msg, void* arg) {
  auto* events = static_cast<std::vector<AddressEvent>*>(arg);
  nlmsghdr* header = nlmsg_hdr(msg);
  if (header->nlmsg_type != RTM_NEWADDR && header->nlmsg_type != RTM_DELADDR) return NL_SKIP;
  const auto* ifa = static_cast<const ifaddrmsg*>(nlmsg_data(header));
  nlattr* attrs[IFA_MAX + 1] = {};
  if (nlmsg_parse(header, sizeof(ifaddrmsg), attrs, IFA_MAX, nullptr) < 0) return NL_SKIP;
  nlattr* local = attrs[IFA_LOCAL] != nullptr ? attrs[IFA_LOCAL] : attrs[IFA_ADDRESS];
  if (local == nullptr) return NL_SKIP;
  const size_t length = static_cast<size_t>(nla_len(local));
  if ((ifa->ifa_family != AF_INET || length != 4) && (ifa->ifa_family != AF_INET6 || length != 16)) {
    return NL_SKIP;
  }
  AddressEvent event;
  event.exists = header->nlmsg_type == RTM_NEWADDR;
  event.address.ifindex = static_cast<int>(ifa->ifa_index);
  event.address.address = IpAddress::FromBytes(static_cast<const uint8_t*>(nla_data(local)), length);
  event.address.prefix_len = ifa->ifa_prefixlen;
  if (attrs[IFA_PROTO] != nullptr && nla_len(attrs[IFA_PROTO]) >= 1) {
    event.address.protocol = nla_get_u8(attrs[IFA_PROTO]);
  }
  events->push_back(event);
  return NL_OK;
}

// Reads what is queued on `sock` (non-blocking) into `events`. False when notifications were lost or the socket
// failed: the caller must then resynchronise.
bool DrainNotifications(nl_sock* sock, nl_cb* cb, std::vector<AddressEvent>& events) {
  nl_cb_set(cb, NL_CB_VALID, NL_CB_CUSTOM, &OnAddressMessage, &events);
  // Notifications carry no sequence number of ours.
  nl_cb_set(
      cb, NL_CB_SEQ_CHECK, NL_CB_CUSTOM, [](nl_msg*, void*) { return static_cast<int>(NL_OK); }, nullptr);
  while (true) {
    const int n = nl_recvmsgs_report(sock, cb);
    if (n == -NLE_AGAIN || n == 0) return true;
    if (n < 0) return false;
  }
}

// RTM_NEWADDR for one of abode's addresses; valid_for 0: permanent. Null when it cannot be built.
NlMsgPtr AddressMessage(int flags, int ifindex, const IpAddress& ip, int prefix_len, std::chrono::seconds valid_for) {
  NlMsgPtr msg(nlmsg_alloc_simple(RTM_NEWADDR, flags));
  if (msg == nullptr) return nullptr;
  ifaddrmsg ifa = {};
  ifa.ifa_family = static_cast<uint8_t>(AddressFamily(ip.family));
  ifa.ifa_prefixlen = static_cast<uint8_t>(prefix_len);
  // The allocator guarantees uniqueness, and the address must answer at once (e.g. for the announcement that
  // follows), so IPv6 duplicate address detection is skipped.
  ifa.ifa_flags = ip.family == IpFamily::kIpv6 ? IFA_F_NODAD : 0;
  ifa.ifa_scope = RT_SCOPE_UNIVERSE;
  ifa.ifa_index = static_cast<uint32_t>(ifindex);
  const int length = static_cast<int>(ip.ByteLength());
  ifa_cacheinfo lifetime = {};
  lifetime.ifa_valid = static_cast<uint32_t>(valid_for.count());
  lifetime.ifa_prefered = lifetime.ifa_valid;
  if (nlmsg_append(msg.get(), &ifa, sizeof(ifa), NLMSG_ALIGNTO) < 0 ||
      nla_put(msg.get(), IFA_LOCAL, length, ip.bytes.data()) < 0 ||
      nla_put(msg.get(), IFA_ADDRESS, length, ip.bytes.data()) < 0 ||
      nla_put_u8(msg.get(), IFA_PROTO, kAbodeAddressProtocol) < 0 ||
      (valid_for.count() > 0 && nla_put(msg.get(), IFA_CACHEINFO, sizeof(lifetime), &lifetime) < 0)) {
    return nullptr;
  }
  return msg;
}

}  // namespace

absl::StatusOr<std::unique_ptr<NetlinkAddressProgrammer>> NetlinkAddressProgrammer::Create() {
  NlSockPtr sock(nl_socket_alloc());
  NlSockPtr events(nl_socket_alloc());
  if (sock == nullptr || events == nullptr) return absl::ResourceExhaustedError("cannot allocate a netlink socket");
  if (int err = nl_connect(sock.get(), NETLINK_ROUTE); err < 0) {
    return absl::UnavailableError(absl::StrCat("cannot connect to rtnetlink: ", NlError(err)));
  }
  if (int err = nl_connect(events.get(), NETLINK_ROUTE); err < 0) {
    return absl::UnavailableError(absl::StrCat("cannot connect to rtnetlink: ", NlError(err)));
  }
  if (int err = nl_socket_add_memberships(events.get(), RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR, 0); err < 0) {
    return absl::UnavailableError(absl::StrCat("cannot subscribe to address notifications: ", NlError(err)));
  }
  nl_socket_set_nonblocking(events.get());
  nl_socket_set_buffer_size(events.get(), 4 << 20, 0);  // room for bursts of changes between two calls
  nl_cache* links = nullptr;
  if (int err = rtnl_link_alloc_cache(sock.get(), AF_UNSPEC, &links); err < 0) {
    return absl::UnavailableError(absl::StrCat("cannot read the interfaces: ", NlError(err)));
  }
  NlCachePtr links_cache(links);
  UniqueFd renewals(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
  if (renewals.get() < 0) {
    return absl::UnavailableError(absl::StrCat("cannot open a rtnetlink socket: ", std::strerror(errno)));
  }
  sockaddr_nl local = {};
  local.nl_family = AF_NETLINK;
  if (::bind(renewals.get(), reinterpret_cast<sockaddr*>(&local), sizeof(local)) != 0) {
    return absl::UnavailableError(absl::StrCat("cannot bind a rtnetlink socket: ", std::strerror(errno)));
  }
  int one = 1;
  ::setsockopt(renewals.get(), SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
  return std::unique_ptr<NetlinkAddressProgrammer>(new NetlinkAddressProgrammer(
      std::move(sock), std::move(events), std::move(links_cache), std::move(renewals)));
}

NetlinkAddressProgrammer::NetlinkAddressProgrammer(NlSockPtr sock, NlSockPtr events, NlCachePtr links,
                                                   UniqueFd renewals)
    : sock_(std::move(sock)), events_(std::move(events)), links_(std::move(links)), renewals_(std::move(renewals)) {}

absl::StatusOr<int> NetlinkAddressProgrammer::InterfaceIndex(const std::string& interface) {
  int index = rtnl_link_name2i(links_.get(), interface.c_str());
  if (index == 0) {
    // Interfaces come and go: refresh once before concluding it is missing.
    ++round_trips_;
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

absl::Status NetlinkAddressProgrammer::Resync() {
  NlCbPtr cb(nl_cb_alloc(NL_CB_DEFAULT));
  if (cb == nullptr) return absl::ResourceExhaustedError("cannot allocate a netlink callback");
  // Notifications queued before the dump only repeat what it will show; later ones are applied on top.
  std::vector<AddressEvent> stale;
  DrainNotifications(events_.get(), cb.get(), stale);
  // A dump that overlaps a change of the address list is flagged as interrupted; it is then simply repeated.
  constexpr int kAttempts = 5;
  int err = 0;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    ifaddrmsg request = {};
    request.ifa_family = AF_UNSPEC;
    ++round_trips_;
    if (err = nl_send_simple(sock_.get(), RTM_GETADDR, NLM_F_DUMP, &request, sizeof(request)); err < 0) {
      return absl::UnavailableError(absl::StrCat("cannot request the address list: ", NlError(err)));
    }
    std::vector<AddressEvent> dumped;
    nl_cb_set(cb.get(), NL_CB_VALID, NL_CB_CUSTOM, &OnAddressMessage, &dumped);
    err = nl_recvmsgs(sock_.get(), cb.get());
    if (err >= 0) {
      addresses_.clear();
      for (const AddressEvent& e : dumped) addresses_.emplace(e.address.address, e.address);
      synced_ = true;
      return absl::OkStatus();
    }
    if (err != -NLE_DUMP_INTR) break;
  }
  return absl::UnavailableError(absl::StrCat("cannot read the address list: ", NlError(err)));
}

absl::Status NetlinkAddressProgrammer::Refresh() {
  if (!synced_) return Resync();
  NlCbPtr cb(nl_cb_alloc(NL_CB_DEFAULT));
  if (cb == nullptr) return absl::ResourceExhaustedError("cannot allocate a netlink callback");
  std::vector<AddressEvent> events;
  if (!DrainNotifications(events_.get(), cb.get(), events)) {
    synced_ = false;
    return Resync();
  }
  for (const AddressEvent& e : events) {
    auto [first, last] = addresses_.equal_range(e.address.address);
    for (auto it = first; it != last; ++it) {
      if (it->second.ifindex == e.address.ifindex && it->second.prefix_len == e.address.prefix_len) {
        addresses_.erase(it);
        break;
      }
    }
    if (e.exists) addresses_.emplace(e.address.address, e.address);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<OwnedAddress>> NetlinkAddressProgrammer::ListOwned() {
  if (absl::Status s = Refresh(); !s.ok()) return s;
  ++round_trips_;
  if (int err = nl_cache_refill(sock_.get(), links_.get()); err < 0) {
    return absl::UnavailableError(absl::StrCat("cannot read the interfaces: ", NlError(err)));
  }
  std::vector<OwnedAddress> owned;
  for (const auto& [ip, a] : addresses_) {
    if (a.protocol != kAbodeAddressProtocol) continue;
    owned.push_back(OwnedAddress{InterfaceName(a.ifindex), ip.ToString(), a.prefix_len});
  }
  std::sort(owned.begin(), owned.end());
  return owned;
}

absl::Status NetlinkAddressProgrammer::Add(const OwnedAddress& address) {
  return Place(address, std::chrono::seconds(0));
}

absl::Status NetlinkAddressProgrammer::Add(const OwnedAddress& address, std::chrono::seconds valid_for) {
  if (valid_for < std::chrono::seconds(1)) {
    return absl::InvalidArgumentError(absl::StrCat("lifetime of ", address.ToString(), " must be at least 1 s"));
  }
  return Place(address, valid_for);
}

absl::Status NetlinkAddressProgrammer::Place(const OwnedAddress& address, std::chrono::seconds valid_for) {
  if (absl::Status s = ValidateOwnedAddress(address); !s.ok()) return s;
  absl::StatusOr<int> ifindex = InterfaceIndex(address.interface);
  if (!ifindex.ok()) return ifindex.status();
  absl::StatusOr<IpAddress> ip = IpAddress::Parse(address.address);
  if (!ip.ok()) return ip.status();
  if (absl::Status s = Refresh(); !s.ok()) return s;

  bool already_ours = false;
  auto [first, last] = addresses_.equal_range(*ip);
  for (auto it = first; it != last; ++it) {
    const KernelAddress& a = it->second;
    if (a.protocol != kAbodeAddressProtocol) {
      return absl::FailedPreconditionError(absl::StrCat(
          "address ", address.address, " is already held on interface ", InterfaceName(a.ifindex),
          " by another owner (protocol ", static_cast<int>(a.protocol), "); not adding it to ", address.interface));
    }
    if (a.ifindex == *ifindex && a.prefix_len == address.prefix_len) already_ours = true;
  }
  if (already_ours) return absl::OkStatus();

  NlMsgPtr msg = AddressMessage(NLM_F_CREATE | NLM_F_EXCL, *ifindex, *ip, address.prefix_len, valid_for);
  if (msg == nullptr) {
    return absl::ResourceExhaustedError(absl::StrCat("cannot build the request to add ", address.ToString()));
  }
  ++round_trips_;
  if (int err = nl_send_auto(sock_.get(), msg.get()); err < 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot send the request to add ", address.ToString(), ": ", NlError(err)));
  }
  if (int err = nl_wait_for_ack(sock_.get()); err < 0) {
    if (err == -NLE_EXIST) {
      return absl::AlreadyExistsError(
          absl::StrCat("cannot add ", address.ToString(), ": the kernel already holds a conflicting address"));
    }
    if (err == -NLE_NODEV || err == -NLE_OBJ_NOTFOUND) {
      return absl::NotFoundError(absl::StrCat("interface ", address.interface, " does not exist"));
    }
    return absl::InternalError(absl::StrCat("cannot add ", address.ToString(), ": ", NlError(err)));
  }
  // Recorded at once: the kernel announces IPv6 addresses from a work queue, possibly after this returns. The
  // notification, when it comes, repeats this entry.
  addresses_.emplace(*ip, KernelAddress{*ifindex, *ip, address.prefix_len, kAbodeAddressProtocol});
  return absl::OkStatus();
}

absl::Status NetlinkAddressProgrammer::Remove(const OwnedAddress& address) {
  if (absl::Status s = ValidateOwnedAddress(address); !s.ok()) return s;
  absl::StatusOr<int> ifindex = InterfaceIndex(address.interface);
  if (absl::IsNotFound(ifindex.status())) return absl::OkStatus();  // gone with its interface
  if (!ifindex.ok()) return ifindex.status();
  absl::StatusOr<IpAddress> ip = IpAddress::Parse(address.address);
  if (!ip.ok()) return ip.status();
  if (absl::Status s = Refresh(); !s.ok()) return s;

  auto [first, last] = addresses_.equal_range(*ip);
  auto it = std::find_if(first, last, [&](const auto& entry) {
    return entry.second.ifindex == *ifindex && entry.second.prefix_len == address.prefix_len;
  });
  if (it == last) return absl::OkStatus();
  if (it->second.protocol != kAbodeAddressProtocol) {
    return absl::FailedPreconditionError(absl::StrCat("address ", address.address, " on interface ", address.interface,
                                                      " belongs to another owner (protocol ",
                                                      static_cast<int>(it->second.protocol), "); not removing it"));
  }

  RtnlAddrPtr request(rtnl_addr_alloc());
  NlAddrPtr local(nl_addr_build(AddressFamily(ip->family), ip->bytes.data(), ip->ByteLength()));
  if (request == nullptr || local == nullptr) return absl::ResourceExhaustedError("cannot allocate a netlink address");
  nl_addr_set_prefixlen(local.get(), address.prefix_len);
  rtnl_addr_set_ifindex(request.get(), *ifindex);
  rtnl_addr_set_family(request.get(), AddressFamily(ip->family));
  if (int err = rtnl_addr_set_local(request.get(), local.get()); err < 0) {
    return absl::InternalError(
        absl::StrCat("cannot build the request to remove ", address.ToString(), ": ", NlError(err)));
  }
  rtnl_addr_set_prefixlen(request.get(), address.prefix_len);
  ++round_trips_;
  if (int err = rtnl_addr_delete(sock_.get(), request.get(), 0); err < 0) {
    if (err != -NLE_NOADDR && err != -NLE_OBJ_NOTFOUND) {
      return absl::InternalError(absl::StrCat("cannot remove ", address.ToString(), ": ", NlError(err)));
    }
  }
  addresses_.erase(it);
  return absl::OkStatus();
}

absl::Status NetlinkAddressProgrammer::Renew(const std::vector<OwnedAddress>& addresses,
                                             std::chrono::seconds valid_for) {
  if (valid_for < std::chrono::seconds(1)) return absl::InvalidArgumentError("a renewal must be at least 1 s");
  if (absl::Status s = Refresh(); !s.ok()) return s;
  // Messages per system call: the kernel answers each with an acknowledgement (36 bytes without the request).
  constexpr size_t kPerBatch = 256;
  std::vector<char> batch;
  std::vector<char> answers(64 * 1024);
  size_t i = 0;
  while (i < addresses.size()) {
    batch.clear();
    int pending = 0;
    for (; i < addresses.size() && pending < static_cast<int>(kPerBatch); ++i) {
      const OwnedAddress& address = addresses[i];
      absl::StatusOr<IpAddress> ip = IpAddress::Parse(address.address);
      absl::StatusOr<int> ifindex = InterfaceIndex(address.interface);
      if (!ip.ok() || !ifindex.ok()) continue;
      auto [first, last] = addresses_.equal_range(*ip);
      const bool ours = std::any_of(first, last, [&](const auto& entry) {
        return entry.second.ifindex == *ifindex && entry.second.prefix_len == address.prefix_len &&
               entry.second.protocol == kAbodeAddressProtocol;
      });
      if (!ours) continue;  // expired or removed: placed again by Add
      NlMsgPtr msg =
          AddressMessage(NLM_F_REQUEST | NLM_F_REPLACE | NLM_F_ACK, *ifindex, *ip, address.prefix_len, valid_for);
      if (msg == nullptr) return absl::ResourceExhaustedError("cannot build a renewal");
      nlmsghdr* header = nlmsg_hdr(msg.get());
      header->nlmsg_seq = renewal_seq_++;
      const char* bytes = reinterpret_cast<const char*>(header);
      batch.insert(batch.end(), bytes, bytes + NLMSG_ALIGN(header->nlmsg_len));
      ++pending;
    }
    if (pending == 0) continue;
    ++round_trips_;
    if (::send(renewals_.get(), batch.data(), batch.size(), 0) < 0) {
      return absl::UnavailableError(absl::StrCat("cannot send address renewals: ", std::strerror(errno)));
    }
    std::string first_error;
    while (pending > 0) {
      const ssize_t n = ::recv(renewals_.get(), answers.data(), answers.size(), 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        return absl::UnavailableError(absl::StrCat("cannot read address renewals' answers: ", std::strerror(errno)));
      }
      int left = static_cast<int>(n);
      for (auto* m = reinterpret_cast<nlmsghdr*>(answers.data()); NLMSG_OK(m, left); m = NLMSG_NEXT(m, left)) {
        if (m->nlmsg_type != NLMSG_ERROR) continue;
        --pending;
        const auto* err = static_cast<const nlmsgerr*>(NLMSG_DATA(m));
        if (err->error != 0 && first_error.empty()) first_error = std::strerror(-err->error);
      }
    }
    if (!first_error.empty()) return absl::InternalError(absl::StrCat("renewing addresses: ", first_error));
  }
  return absl::OkStatus();
}

}  // namespace abode::node

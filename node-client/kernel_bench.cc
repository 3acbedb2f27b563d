// abode-node-kernel-bench: programs a fresh network namespace from scratch and measures
//   1. placing N addresses (NetlinkAddressProgrammer), then one change (one added, one removed);
//   2. loading M NAT mappings (NftRuleProgrammer::Apply on empty tables), then one change, then a no-op;
//   3. `nft -f` loading the same tables from a file, side by side with 2., over several rounds;
//   4. renewing the lease of R external and elastic addresses: one nftables batch of the lease guard (how a
//      lease is renewed), side by side with renewing their kernel lifetimes (IFA_CACHEINFO; now only a backstop,
//      renewed every few leases), in the same run; and the guard's renewal at 1,000 and at R guarded addresses,
//      each round paired with a renewal of the earlier per-address layout (every address flushed and added again).
// Prints the figures, the targets and the ratio of abode's full load to `nft -f`. Needs root.
// Exit status: 0 when every target is met, 1 when one is missed, 2 when the run itself failed.
#include <libmnl/libmnl.h>
#include <linux/netfilter/nf_tables.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "kernel_model.h"
#include "netlink_address_programmer.h"
#include "netns_testing.h"
#include "nft_objects.h"
#include "nft_rule_programmer.h"

namespace abode::node {
namespace {

using Clock = std::chrono::steady_clock;

double MillisecondsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

std::string Canonical(const std::string& text) { return *CanonicalAddress(text); }

// Addresses from the benchmarking ranges (RFC 2544 198.18.0.0/15, RFC 5180 2001:2::/48): half IPv4, half IPv6.
std::vector<OwnedAddress> Addresses(int count, const std::string& interface) {
  std::vector<OwnedAddress> out;
  for (int i = 0; i < count; ++i) {
    if (i % 2 == 0) {
      out.push_back({interface, absl::StrCat("198.18.", 200 + i / 500, ".", (i / 2) % 250 + 1), 32});
    } else {
      out.push_back({interface, Canonical(absl::StrCat("2001:2:0:ff::", i / 2 + 1)), 128});
    }
  }
  return out;
}

// Leased addresses, from other parts of the same ranges: half IPv4, half IPv6.
std::vector<OwnedAddress> LeasedAddresses(int count, const std::string& interface) {
  std::vector<OwnedAddress> out;
  for (int i = 0; i < count; ++i) {
    if (i % 2 == 0) {
      out.push_back({interface, absl::StrCat("198.19.", i / 500, ".", (i / 2) % 250 + 1), 32});
    } else {
      out.push_back({interface, Canonical(absl::StrCat("2001:2:0:fe::", i / 2 + 1)), 128});
    }
  }
  return out;
}

// `count` mappings: 40% IPv4 magic, 20% IPv6 magic, 30% IPv4 elastic, 10% IPv6 elastic.
NatRuleset Mappings(int count) {
  NatRuleset r;
  const int v4_magic = count * 4 / 10;
  const int v6_magic = count * 2 / 10;
  const int v4_elastic = count * 3 / 10;
  const int v6_elastic = count - v4_magic - v6_magic - v4_elastic;
  for (int i = 0; i < v4_magic; ++i) {
    r.magic_dnat.insert({IpFamily::kIpv4, absl::StrCat("169.254.", i / 250, ".", i % 250 + 1),
                         i % 2 == 0 ? L4Protocol::kTcp : L4Protocol::kUdp, static_cast<uint16_t>(80 + i % 7),
                         absl::StrCat("198.18.", i / 250, ".", i % 250 + 1), static_cast<uint16_t>(8000 + i % 100)});
  }
  for (int i = 0; i < v6_magic; ++i) {
    r.magic_dnat.insert({IpFamily::kIpv6, Canonical(absl::StrCat("fd00:ec2::", i / 250 + 1, ":", i % 250 + 1)),
                         L4Protocol::kTcp, 80, Canonical(absl::StrCat("2001:2::1:", i / 250 + 1, ":", i % 250 + 1)),
                         8080});
  }
  for (int i = 0; i < v4_elastic; ++i) {
    r.elastic_nat.insert(
        {absl::StrCat("198.19.", i / 250, ".", i % 250 + 1), absl::StrCat("198.18.", 100 + i / 250, ".", i % 250 + 1)});
  }
  for (int i = 0; i < v6_elastic; ++i) {
    r.elastic_nat.insert({Canonical(absl::StrCat("2001:2::2:", i / 250 + 1, ":", i % 250 + 1)),
                          Canonical(absl::StrCat("2001:2::3:", i / 250 + 1, ":", i % 250 + 1))});
  }
  return r;
}

// The same tables as NftRuleProgrammer builds, in nft's language.
std::string NftScript(const NatRuleset& r) {
  std::string script;
  for (IpFamily family : {IpFamily::kIpv4, IpFamily::kIpv6}) {
    const std::string f(IpFamilyName(family));
    const std::string addr = family == IpFamily::kIpv4 ? "ipv4_addr" : "ipv6_addr";
    std::vector<std::string> magic, dnat, snat;
    for (const MagicDnat& m : r.magic_dnat) {
      if (m.family != family) continue;
      magic.push_back(absl::StrCat(m.magic_address, " . ", L4ProtocolName(m.protocol), " . ", m.port, " : ",
                                   m.target_address, " . ", m.target_port));
    }
    for (const ElasticNat& e : r.elastic_nat) {
      if (FamilyOf(e) != family) continue;
      dnat.push_back(absl::StrCat(e.elastic_address, " : ", e.workload_address));
      snat.push_back(absl::StrCat(e.workload_address, " : ", e.elastic_address));
    }
    auto map = [&](const std::string& name, const std::string& type, const std::vector<std::string>& elements) {
      std::string text = absl::StrCat("  map ", name, " {\n    type ", type, "\n");
      if (!elements.empty()) absl::StrAppend(&text, "    elements = { ", absl::StrJoin(elements, ",\n      "), " }\n");
      return text + "  }\n";
    };
    const std::string lookups =
        absl::StrCat("    dnat ", f, " to ", f, " daddr . meta l4proto . th dport map @magic_dnat\n", "    dnat ", f,
                     " to ", f, " daddr map @elastic_dnat\n");
    const std::string drops = absl::StrCat("    ", f, " daddr . meta l4proto . th dport @magic_drop counter drop\n");
    absl::StrAppend(
        &script, "table ", f, " abode {\n",
        map("magic_dnat", absl::StrCat(addr, " . inet_proto . inet_service : ", addr, " . inet_service"), magic),
        map("elastic_dnat", absl::StrCat(addr, " : ", addr), dnat),
        map("elastic_snat", absl::StrCat(addr, " : ", addr), snat),
        "  chain prerouting {\n    type nat hook prerouting priority dstnat; policy accept;\n", lookups,
        "  }\n  chain output {\n    type nat hook output priority -100; policy accept;\n", lookups,
        "  }\n  chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n", "    snat ", f,
        " to ", f, " saddr map @elastic_snat\n  }\n",
        "  set magic_drop {\n    type ", addr, " . inet_proto . inet_service\n  }\n",
        "  chain drop_prerouting {\n    type filter hook prerouting priority raw; policy accept;\n", drops,
        "  }\n  chain drop_output {\n    type filter hook output priority raw; policy accept;\n", drops, "  }\n}\n");
  }
  return script;
}

// The lease as abode-node kept it before the one-timer layout, for comparison in the same run: tables `ip|ip6|arp
// abode_bench_leased` with set `leased`, one timed element per address, renewed by one batch that flushes the set
// and adds every address again. Sent on its own nfnetlink socket, in the benchmark's namespace.
class PerAddressLease {
 public:
  static absl::StatusOr<PerAddressLease> Create(const testing::ScopedNetns& ns) {
    MnlSocketPtr socket;
    absl::Status entered = ns.Inside([&] {
      socket.reset(mnl_socket_open(NETLINK_NETFILTER));
      int one = 1;
      if (socket != nullptr) mnl_socket_setsockopt(socket.get(), NETLINK_CAP_ACK, &one, sizeof(one));
      if (socket != nullptr && mnl_socket_bind(socket.get(), 0, MNL_SOCKET_AUTOPID) < 0) socket.reset();
    });
    if (!entered.ok()) return entered;
    if (socket == nullptr) return absl::UnavailableError("cannot open an nfnetlink socket");
    return PerAddressLease(std::move(socket));
  }

  // Builds the tables anew, each address leased for `lease`.
  absl::Status Place(const std::set<std::string>& addresses, std::chrono::milliseconds lease, uint32_t generation) {
    nft::NftBatch batch(next_seq_, generation);
    for (const nft::FamilyLayout& l : Layouts()) {
      nft::AddTableMessage(batch, l, kTable, NFT_MSG_NEWTABLE);
      nft::AddTableMessage(batch, l, kTable, NFT_MSG_DELTABLE);
      nft::AddTableMessage(batch, l, kTable, NFT_MSG_NEWTABLE);
      const uint32_t set_id = batch.next_seq();
      nft::AddSetMessage(batch, l, kTable, {nft::kLeased, NFT_SET_TIMEOUT, l.addr_type, l.addr_len, 0, 0}, set_id);
      nft::ElementMessages(batch, l, kTable, nft::kLeased, set_id, nft::AddressKeys(l, addresses), /*add=*/true,
                           static_cast<uint64_t>(lease.count()));
    }
    return Send(batch);
  }

  // One renewal: every address again, into the flushed set.
  absl::Status Renew(const std::set<std::string>& addresses, std::chrono::milliseconds lease, uint32_t generation) {
    nft::NftBatch batch(next_seq_, generation);
    for (const nft::FamilyLayout& l : Layouts()) {
      nft::FlushSetMessage(batch, l, kTable, nft::kLeased);
      nft::ElementMessages(batch, l, kTable, nft::kLeased, 0, nft::AddressKeys(l, addresses), /*add=*/true,
                           static_cast<uint64_t>(lease.count()));
    }
    messages_ = batch.messages();
    return Send(batch);
  }

  int messages() const { return messages_; }

 private:
  static constexpr char kTable[] = "abode_bench_leased";

  explicit PerAddressLease(MnlSocketPtr socket) : socket_(std::move(socket)) {}

  static std::array<nft::FamilyLayout, 3> Layouts() {
    return {nft::Layout(IpFamily::kIpv4), nft::Layout(IpFamily::kIpv6), nft::ArpLayout()};
  }

  // Sends the batch and reads one acknowledgement per message.
  absl::Status Send(nft::NftBatch& batch) {
    batch.Finish();
    next_seq_ = batch.next_seq() + 1;
    // A batch of thousands of elements exceeds the default send buffer (as in NftRuleProgrammer::Send).
    const int size = static_cast<int>(batch.bytes().size());
    const int fd = mnl_socket_get_fd(socket_.get());
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) < 0) {
      setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
    }
    if (mnl_socket_sendto(socket_.get(), batch.bytes().data(), batch.bytes().size()) < 0) {
      return absl::UnavailableError(absl::StrCat("cannot send the batch: ", nft::Errno(errno)));
    }
    std::vector<char> buffer(MNL_SOCKET_BUFFER_SIZE * 4);
    for (int acknowledged = 0; acknowledged < batch.messages();) {
      const ssize_t n = mnl_socket_recvfrom(socket_.get(), buffer.data(), buffer.size());
      if (n < 0) return absl::UnavailableError(absl::StrCat("cannot read the acknowledgements: ", nft::Errno(errno)));
      int left = static_cast<int>(n);
      for (auto* m = reinterpret_cast<nlmsghdr*>(buffer.data()); mnl_nlmsg_ok(m, left); m = mnl_nlmsg_next(m, &left)) {
        if (m->nlmsg_type != NLMSG_ERROR) continue;
        const auto* error = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(m));
        if (error->error != 0) {
          return absl::InternalError(absl::StrCat(batch.Describe(m->nlmsg_seq), ": ", nft::Errno(-error->error)));
        }
        ++acknowledged;
      }
    }
    return absl::OkStatus();
  }

  MnlSocketPtr socket_;
  uint32_t next_seq_ = 1;
  int messages_ = 0;
};

struct Target {
  std::string what;
  double value;
  double limit;
  std::string unit;
};

int Run(int address_count, int mapping_count, int rounds, int renewal_count) {
  absl::StatusOr<testing::ScopedNetns> ns = testing::ScopedNetns::Create("bench");
  if (!ns.ok()) {
    std::fprintf(stderr, "%s\n", ns.status().ToString().c_str());
    return 2;
  }
  if (absl::Status s = ns->Run("ip link add b0 type veth peer name b1 && ip link set b0 up"); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 2;
  }
  std::unique_ptr<NetlinkAddressProgrammer> addresses;
  std::unique_ptr<NftRuleProgrammer> rules;
  absl::Status created = ns->Inside([&] {
    absl::StatusOr<std::unique_ptr<NetlinkAddressProgrammer>> a = NetlinkAddressProgrammer::Create();
    absl::StatusOr<std::unique_ptr<NftRuleProgrammer>> r = NftRuleProgrammer::Create();
    if (a.ok()) addresses = std::move(*a);
    if (r.ok()) rules = std::move(*r);
  });
  if (!created.ok() || addresses == nullptr || rules == nullptr) {
    std::fprintf(stderr, "cannot create the programmers in netns %s (root needed)\n", ns->name().c_str());
    return 2;
  }
  auto fail = [](const absl::Status& s) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 2;
  };

  // 1. Addresses.
  const std::vector<OwnedAddress> wanted = Addresses(address_count + 1, "b0");
  Clock::time_point start = Clock::now();
  for (int i = 0; i < address_count; ++i) {
    if (absl::Status s = addresses->Add(wanted[i]); !s.ok()) return fail(s);
  }
  const double address_load_ms = MillisecondsSince(start);
  start = Clock::now();
  if (absl::Status s = addresses->Add(wanted[address_count]); !s.ok()) return fail(s);
  if (absl::Status s = addresses->Remove(wanted[0]); !s.ok()) return fail(s);
  const double address_change_ms = MillisecondsSince(start);
  start = Clock::now();
  absl::StatusOr<std::vector<OwnedAddress>> owned = addresses->ListOwned();
  if (!owned.ok()) return fail(owned.status());
  const double address_list_ms = MillisecondsSince(start);

  // 2. and 3. NAT mappings: abode's full load and `nft -f` of the same tables, alternating, from empty tables.
  const NatRuleset desired = Mappings(mapping_count);
  const std::string script_path = absl::StrCat("/tmp/abode-node-kernel-bench-", getpid(), ".nft");
  std::ofstream(script_path) << NftScript(desired);
  const std::string drop_tables = "nft delete table ip abode; nft delete table ip6 abode";
  std::vector<double> abode_ms, nft_ms;
  for (int round = 0; round < rounds; ++round) {
    ns->Exec(drop_tables);
    start = Clock::now();
    if (absl::Status s = rules->Apply(desired); !s.ok()) return fail(s);
    abode_ms.push_back(MillisecondsSince(start));

    ns->Exec(drop_tables);
    int nft_status = 0;
    absl::Status entered = ns->Inside([&] {
      // A child forked from this thread lives in the namespace.
      const Clock::time_point nft_start = Clock::now();
      nft_status = std::system(absl::StrCat("nft -f ", script_path).c_str());
      nft_ms.push_back(MillisecondsSince(nft_start));
    });
    if (!entered.ok()) return fail(entered);
    if (nft_status != 0) return fail(absl::InternalError(absl::StrCat("nft -f ", script_path, " failed")));
  }
  std::remove(script_path.c_str());
  // `nft -f` left the tables in place: abode's next Apply finds them complete, so the change below is measured
  // against tables abode did not write itself. Check that first.
  absl::StatusOr<NatRuleset> read = rules->Read();
  if (!read.ok()) return fail(read.status());
  if (!(*read == desired)) return fail(absl::InternalError("nft -f and abode disagree about the tables"));
  if (absl::Status s = rules->Apply(desired); !s.ok()) return fail(s);
  const bool nft_equivalent = !rules->last_apply().batch_sent;

  // One mapping retargeted per round, alternating between two targets.
  NatRuleset changed = desired;
  const MagicDnat first = *changed.magic_dnat.begin();
  std::vector<double> change_ms;
  int change_messages = 0;
  for (int round = 0; round < 2 * rounds + 1; ++round) {
    MagicDnat moved = first;
    moved.target_port = static_cast<uint16_t>(first.target_port + 1 + round % 2);
    changed.magic_dnat.erase(changed.magic_dnat.begin());
    changed.magic_dnat.insert(moved);
    start = Clock::now();
    if (absl::Status s = rules->Apply(changed); !s.ok()) return fail(s);
    change_ms.push_back(MillisecondsSince(start));
    change_messages = rules->last_apply().messages;
  }
  const double nat_change_ms = Median(change_ms);
  start = Clock::now();
  if (absl::Status s = rules->Apply(changed); !s.ok()) return fail(s);
  const double nat_noop_ms = MillisecondsSince(start);
  // A restarted abode-node knows nothing: it reads every map element before deciding that nothing changed.
  std::unique_ptr<NftRuleProgrammer> restarted;
  if (absl::Status s = ns->Inside([&] {
        absl::StatusOr<std::unique_ptr<NftRuleProgrammer>> r = NftRuleProgrammer::Create();
        if (r.ok()) restarted = std::move(*r);
      });
      !s.ok() || restarted == nullptr) {
    return fail(absl::InternalError("cannot create a second rule programmer"));
  }
  start = Clock::now();
  if (absl::Status s = restarted->Apply(changed); !s.ok()) return fail(s);
  const double nat_cold_noop_ms = MillisecondsSince(start);
  if (restarted->last_apply().batch_sent) return fail(absl::InternalError("a restarted programmer changed state"));

  // 4. Lease renewals: every leased address's lifetime set again, in batched requests.
  const std::vector<OwnedAddress> leased = LeasedAddresses(renewal_count, "b1");
  if (absl::Status s = ns->Run("ip link set b1 up"); !s.ok()) return fail(s);
  start = Clock::now();
  for (const OwnedAddress& a : leased) {
    if (absl::Status s = addresses->Add(a, std::chrono::seconds(60)); !s.ok()) return fail(s);
  }
  const double leased_load_ms = MillisecondsSince(start);
  std::vector<double> renew_ms;
  int64_t renew_round_trips = 0;
  for (int round = 0; round < rounds; ++round) {
    const int64_t trips = addresses->round_trips();
    start = Clock::now();
    if (absl::Status s = addresses->Renew(leased, std::chrono::seconds(60 + round)); !s.ok()) return fail(s);
    renew_ms.push_back(MillisecondsSince(start));
    renew_round_trips = addresses->round_trips() - trips;
  }
  const double renew_median_ms = Median(renew_ms);
  const std::string lifetimes = ns->Exec("ip -o addr show dev b1 | grep -c 'valid_lft [0-9]*sec'").output;
  // The same addresses guarded, then their lease renewed: one batch each round, at 1,000 addresses and at R; each
  // round paired with a renewal of the earlier layout (every address flushed and added again) over as many.
  absl::StatusOr<PerAddressLease> per_address = PerAddressLease::Create(*ns);
  if (!per_address.ok()) return fail(per_address.status());
  constexpr std::chrono::milliseconds kDefaultLease(5000);
  struct GuardFigures {
    int count = 0;
    int from = 0;  // guarded before: the load is the change from `from` addresses to `count`
    double load_ms = 0;
    std::vector<double> renew_ms, per_address_ms;
    int messages = 0, per_address_messages = 0;
    std::string alive;
  };
  std::vector<GuardFigures> guard_figures;
  for (const int count : {std::min(1000, renewal_count), renewal_count}) {
    if (!guard_figures.empty() && guard_figures.back().count == count) break;
    GuardFigures g;
    g.count = count;
    g.from = guard_figures.empty() ? 0 : guard_figures.back().count;
    std::set<std::string> guarded;
    for (int i = 0; i < count; ++i) guarded.insert(leased[i].address);
    start = Clock::now();
    if (absl::StatusOr<bool> placed = rules->Guard(guarded, kDefaultLease); !placed.ok()) return fail(placed.status());
    g.load_ms = MillisecondsSince(start);
    absl::StatusOr<uint32_t> generation = rules->Generation();
    if (!generation.ok()) return fail(generation.status());
    if (absl::Status s = per_address->Place(guarded, kDefaultLease, *generation); !s.ok()) return fail(s);
    for (int round = 0; round < rounds; ++round) {
      start = Clock::now();
      if (absl::Status s = rules->Renew(kDefaultLease); !s.ok()) return fail(s);
      g.renew_ms.push_back(MillisecondsSince(start));
      generation = rules->Generation();
      if (!generation.ok()) return fail(generation.status());
      start = Clock::now();
      if (absl::Status s = per_address->Renew(guarded, kDefaultLease, *generation); !s.ok()) return fail(s);
      g.per_address_ms.push_back(MillisecondsSince(start));
    }
    g.messages = rules->last_guard_messages();
    g.per_address_messages = per_address->messages();
    g.alive = ns->Exec("nft list set ip abode_lease alive | grep -c expires").output;
    guard_figures.push_back(std::move(g));
  }
  const double guard_renew_median_ms = Median(guard_figures.back().renew_ms);
  const double abode_load = Median(abode_ms);
  const double nft_load = Median(nft_ms);
  const double ratio = abode_load / nft_load;
  std::printf("abode-node kernel benchmark (netns %s, %d rounds, medians)\n", ns->name().c_str(), rounds);
  std::printf("  addresses: %d placed from scratch      %8.1f ms\n", address_count, address_load_ms);
  std::printf("  addresses: one added + one removed      %8.2f ms\n", address_change_ms);
  std::printf("  addresses: list owned (%zu)            %8.2f ms\n", owned->size(), address_list_ms);
  std::printf("  nat: %d mappings, abode full load    %8.1f ms  (rounds: %s)\n", mapping_count, abode_load,
              absl::StrJoin(abode_ms, " ", [](std::string* out, double v) {
                absl::StrAppend(out, static_cast<int>(v));
              }).c_str());
  std::printf("  nat: same tables, nft -f              %8.1f ms  (rounds: %s)\n", nft_load,
              absl::StrJoin(nft_ms, " ", [](std::string* out, double v) {
                absl::StrAppend(out, static_cast<int>(v));
              }).c_str());
  std::printf("  nat: abode / nft -f                    %8.2f\n", ratio);
  std::printf("  nat: one mapping changed (%d messages)  %8.2f ms\n", change_messages, nat_change_ms);
  std::printf("  nat: no-op apply, warm                  %8.2f ms\n", nat_noop_ms);
  std::printf("  nat: no-op apply after a restart       %8.2f ms  (reads every element)\n", nat_cold_noop_ms);
  std::printf("  nat: nft -f result needs no repair      %s\n", nft_equivalent ? "yes" : "NO");
  std::printf("  lease: %d leased addresses placed     %8.1f ms\n", renewal_count, leased_load_ms);
  std::printf("  lease: %d renewed (%lld requests)     %8.1f ms  (rounds: %s; with lifetimes: %s)\n",
              renewal_count, static_cast<long long>(renew_round_trips), renew_median_ms,
              absl::StrJoin(renew_ms, " ", [](std::string* out, double v) {
                absl::StrAppend(out, static_cast<int>(v));
              }).c_str(),
              std::string(absl::StripTrailingAsciiWhitespace(lifetimes)).c_str());
  auto rounds_text = [](const std::vector<double>& values) {
    return absl::StrJoin(values, " ",
                         [](std::string* out, double v) { absl::StrAppend(out, absl::StrFormat("%.2f", v)); });
  };
  for (const GuardFigures& g : guard_figures) {
    const double renew = Median(g.renew_ms);
    const double per_address_renew = Median(g.per_address_ms);
    std::printf("  lease: %d guarded, from %d (one batch)   %8.1f ms\n", g.count, g.from, g.load_ms);
    std::printf("  lease: %d guarded, lease renewed (%d messages) %8.2f ms  (rounds: %s; alive elements in ip: %s)\n",
                g.count, g.messages, renew, rounds_text(g.renew_ms).c_str(),
                std::string(absl::StripTrailingAsciiWhitespace(g.alive)).c_str());
    std::printf("  lease: %d per-address leases renewed (%d messages) %8.2f ms  (paired rounds: %s)\n", g.count,
                g.per_address_messages, per_address_renew, rounds_text(g.per_address_ms).c_str());
    std::printf("  lease: one timer vs per-address leases at %d  %8.1f x faster\n", g.count, per_address_renew / renew);
  }
  std::printf("  lease: guard renewal vs lifetime renewal %8.1f x faster\n", renew_median_ms / guard_renew_median_ms);
  // At the default lease (5 s) a lease renewal falls due every other heartbeat (3.3 s); the backstop lifetime (at
  // least 600 s) every 300 s.
  std::printf("  lease: share of one core at a 5 s lease   %8.2f %%  (guard every 3.3 s + lifetimes every 300 s)\n",
              guard_renew_median_ms / 3333.0 * 100 + renew_median_ms / 300000.0 * 100);

  const std::vector<Target> targets = {
      {"addresses + mappings from scratch", address_load_ms + abode_load, 1000, "ms"},
      {"one address change", address_change_ms, 10, "ms"},
      {"one mapping change", nat_change_ms, 10, "ms"},
      {"full load vs nft -f", ratio, 1.2, "x"},
  };
  bool all_met = nft_equivalent;
  for (const Target& t : targets) {
    const bool met = t.value <= t.limit;
    all_met = all_met && met;
    std::printf("  target %-36s %8.2f %s <= %.1f %s  %s\n", t.what.c_str(), t.value, t.unit.c_str(), t.limit,
                t.unit.c_str(), met ? "met" : "MISSED");
  }
  return all_met ? 0 : 1;
}

}  // namespace
}  // namespace abode::node

int main(int argc, char** argv) {
  int addresses = 1000;
  int mappings = 10000;
  int rounds = 5;
  int renewals = 10000;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    int* slot = flag == "--addresses"  ? &addresses
                : flag == "--mappings" ? &mappings
                : flag == "--rounds"   ? &rounds
                : flag == "--renewals" ? &renewals
                                       : nullptr;
    if (slot == nullptr || !absl::SimpleAtoi(argv[i + 1], slot) || *slot < 1) {
      std::fprintf(stderr, "usage: %s [--addresses N] [--mappings M] [--rounds R] [--renewals L]\n", argv[0]);
      return 2;
    }
  }
  if (argc % 2 == 0) {
    std::fprintf(stderr, "usage: %s [--addresses N] [--mappings M] [--rounds R] [--renewals L]\n", argv[0]);
    return 2;
  }
  if (geteuid() != 0) {
    std::fprintf(stderr, "abode-node-kernel-bench needs root (network namespaces, netlink)\n");
    return 2;
  }
  return abode::node::Run(addresses, mappings, rounds, renewals);
}

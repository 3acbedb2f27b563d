// IPv4/IPv6 addresses and prefixes as the plugin side reads and writes them (inet_pton/inet_ntop, 128-bit
// values). The allocator does the address math that matters; this is enough to check and name ranges.
#ifndef ABODE_CNI_IP_TEXT_H_
#define ABODE_CNI_IP_TEXT_H_

#include <optional>
#include <string>
#include <string_view>

namespace abode::cni {

using u128 = unsigned __int128;

struct Ip {
  int version = 4;  // 4 or 6
  u128 value = 0;   // host order; IPv4 in the low 32 bits

  static std::optional<Ip> Parse(std::string_view text);
  std::string ToString() const;
  int bits() const { return version == 4 ? 32 : 128; }
  bool operator==(const Ip&) const = default;
  auto operator<=>(const Ip&) const = default;
};

struct Prefix {
  Ip ip;           // as written (not necessarily the network address)
  int length = 0;

  // "10.1.2.3/24", "fd00::/64". With `allow_bare`, an address alone is a host prefix (/32, /128).
  static std::optional<Prefix> Parse(std::string_view text, bool allow_bare = false);
  Ip Network() const;
  Ip Last() const;
  bool Contains(const Ip& ip) const;
  std::string ToString() const;  // ip/length, ip as written
  bool operator==(const Prefix&) const = default;
};

}  // namespace abode::cni

#endif  // ABODE_CNI_IP_TEXT_H_

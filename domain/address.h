// IP address and prefix arithmetic for both families, on 128-bit integers so that a /8 IPv4 pool and a /48
// IPv6 pool are handled the same way, without ever enumerating their addresses.
#ifndef ABODE_DOMAIN_ADDRESS_H_
#define ABODE_DOMAIN_ADDRESS_H_

#include <compare>
#include <cstdint>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"

namespace abode::domain {

using u128 = unsigned __int128;

enum class Family : uint8_t { kV4 = 4, kV6 = 6 };

inline int FamilyBits(Family f) { return f == Family::kV4 ? 32 : 128; }

// Decimal text of a 128-bit count (pool sizes of IPv6 pools exceed 2^64).
std::string U128ToString(u128 v);

class IpAddress {
 public:
  IpAddress() = default;
  IpAddress(Family family, u128 value) : family_(family), value_(value) {}

  // Accepts canonical and non-canonical text forms ("10.0.0.1", "fd00::0001"). `field` names the request
  // field in the error message.
  static absl::StatusOr<IpAddress> Parse(absl::string_view text, absl::string_view field);
  // Network byte order: 4 bytes for IPv4, 16 for IPv6.
  static absl::StatusOr<IpAddress> FromBytes(absl::string_view bytes);

  Family family() const { return family_; }
  u128 value() const { return value_; }
  std::string ToString() const;  // canonical text (RFC 5952 for IPv6)
  std::string ToBytes() const;   // network byte order

  friend bool operator==(const IpAddress&, const IpAddress&) = default;
  friend auto operator<=>(const IpAddress&, const IpAddress&) = default;

 private:
  Family family_ = Family::kV4;
  u128 value_ = 0;
};

// A CIDR prefix. The stored address is always the network address (host bits zero).
class Prefix {
 public:
  Prefix() = default;
  Prefix(IpAddress network, int length) : network_(network), length_(length) {}

  // Refuses host bits set ("10.0.0.1/24") so that a typo is not silently widened.
  static absl::StatusOr<Prefix> Parse(absl::string_view text, absl::string_view field);

  const IpAddress& network() const { return network_; }
  Family family() const { return network_.family(); }
  int length() const { return length_; }
  u128 first() const { return network_.value(); }
  u128 last() const;  // highest address in the prefix
  u128 size() const;  // number of addresses; saturates at 2^128-1 for ::/0
  bool Contains(const IpAddress& a) const;
  bool Contains(const Prefix& p) const;
  std::string ToString() const;

  friend bool operator==(const Prefix&, const Prefix&) = default;

 private:
  IpAddress network_;
  int length_ = 0;
};

}  // namespace abode::domain

#endif  // ABODE_DOMAIN_ADDRESS_H_

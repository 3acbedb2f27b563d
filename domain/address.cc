#include "domain/address.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace abode::domain {
namespace {

u128 HostMask(Family f, int length) {
  const int host_bits = FamilyBits(f) - length;
  if (host_bits <= 0) return 0;
  if (host_bits >= 128) return ~u128{0};
  return (u128{1} << host_bits) - 1;
}

}  // namespace

std::string U128ToString(u128 v) {
  if (v == 0) return "0";
  std::string out;
  while (v != 0) {
    out.push_back(static_cast<char>('0' + static_cast<int>(v % 10)));
    v /= 10;
  }
  std::reverse(out.begin(), out.end());
  return out;
}

absl::StatusOr<IpAddress> IpAddress::Parse(absl::string_view text, absl::string_view field) {
  if (text.empty()) return absl::InvalidArgumentError(absl::StrCat(field, ": address is empty"));
  if (text.size() > INET6_ADDRSTRLEN) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": \"", text.substr(0, 64), "\" is not an IP address"));
  }
  const std::string s(text);
  unsigned char buf[16];
  if (s.find(':') == std::string::npos) {
    if (inet_pton(AF_INET, s.c_str(), buf) == 1) return FromBytes(absl::string_view(reinterpret_cast<char*>(buf), 4));
  } else if (inet_pton(AF_INET6, s.c_str(), buf) == 1) {
    return FromBytes(absl::string_view(reinterpret_cast<char*>(buf), 16));
  }
  return absl::InvalidArgumentError(absl::StrCat(field, ": \"", text, "\" is not an IP address"));
}

absl::StatusOr<IpAddress> IpAddress::FromBytes(absl::string_view bytes) {
  if (bytes.size() != 4 && bytes.size() != 16) {
    return absl::InvalidArgumentError(absl::StrCat("address of ", bytes.size(), " bytes"));
  }
  u128 v = 0;
  for (unsigned char c : bytes) v = (v << 8) | c;
  return IpAddress(bytes.size() == 4 ? Family::kV4 : Family::kV6, v);
}

std::string IpAddress::ToBytes() const {
  const size_t n = family_ == Family::kV4 ? 4 : 16;
  std::string out(n, '\0');
  u128 v = value_;
  for (size_t i = 0; i < n; ++i) {
    out[n - 1 - i] = static_cast<char>(static_cast<unsigned char>(v & 0xff));
    v >>= 8;
  }
  return out;
}

std::string IpAddress::ToString() const {
  if (family_ == Family::kV6 && (value_ >> 32) == 0 && (value_ >> 16) != 0) {
    // glibc prints these in the deprecated IPv4-compatible form ("::1.2.3.4"); RFC 5952 wants hexadecimal.
    return absl::StrCat("::", absl::Hex(static_cast<uint16_t>(value_ >> 16)), ":",
                        absl::Hex(static_cast<uint16_t>(value_)));
  }
  if (family_ == Family::kV4) {
    // Dotted quad without inet_ntop, which formats through sprintf: this runs for every allocation applied.
    const auto octet = [this](int shift) { return static_cast<uint32_t>((value_ >> shift) & 0xff); };
    return absl::StrCat(octet(24), ".", octet(16), ".", octet(8), ".", octet(0));
  }
  const std::string bytes = ToBytes();
  char buf[INET6_ADDRSTRLEN];
  if (inet_ntop(AF_INET6, bytes.data(), buf, sizeof(buf)) == nullptr) return "?";
  return buf;
}

absl::StatusOr<Prefix> Prefix::Parse(absl::string_view text, absl::string_view field) {
  const size_t slash = text.find('/');
  if (slash == absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": \"", text.substr(0, 64), "\" is not a CIDR (missing /prefix-length)"));
  }
  auto addr = IpAddress::Parse(text.substr(0, slash), field);
  if (!addr.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": \"", text.substr(0, 64), "\" is not a CIDR"));
  }
  const absl::string_view len_text = text.substr(slash + 1);
  int length = -1;
  auto [ptr, ec] = std::from_chars(len_text.data(), len_text.data() + len_text.size(), length);
  if (len_text.empty() || ec != std::errc() || ptr != len_text.data() + len_text.size() || length < 0 ||
      length > FamilyBits(addr->family())) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": \"", text, "\" has an invalid prefix length (0-", FamilyBits(addr->family()), ")"));
  }
  if ((addr->value() & HostMask(addr->family(), length)) != 0) {
    const IpAddress net(addr->family(), addr->value() & ~HostMask(addr->family(), length));
    return absl::InvalidArgumentError(absl::StrCat(field, ": \"", text, "\" has host bits set (did you mean ",
                                                   net.ToString(), "/", length, "?)"));
  }
  return Prefix(*addr, length);
}

u128 Prefix::last() const { return first() | HostMask(family(), length_); }

u128 Prefix::size() const {
  const u128 mask = HostMask(family(), length_);
  return mask == ~u128{0} ? mask : mask + 1;
}

bool Prefix::Contains(const IpAddress& a) const {
  return a.family() == family() && a.value() >= first() && a.value() <= last();
}

bool Prefix::Contains(const Prefix& p) const {
  return p.family() == family() && p.first() >= first() && p.last() <= last();
}

std::string Prefix::ToString() const { return absl::StrCat(network_.ToString(), "/", length_); }

}  // namespace abode::domain

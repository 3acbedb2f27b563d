#include "cni/ip_text.h"

#include <arpa/inet.h>

namespace abode::cni {
namespace {

u128 Mask(int bits, int length) {
  if (length <= 0) return 0;
  const u128 all = bits == 32 ? u128{0xffffffffu} : ~u128{0};
  return (all << (bits - length)) & all;
}

}  // namespace

std::optional<Ip> Ip::Parse(std::string_view text) {
  if (text.empty() || text.size() > 45) return std::nullopt;
  const std::string s(text);
  unsigned char bytes[16];
  if (::inet_pton(AF_INET, s.c_str(), bytes) == 1) {
    u128 v = 0;
    for (int i = 0; i < 4; ++i) v = (v << 8) | bytes[i];
    return Ip{4, v};
  }
  if (::inet_pton(AF_INET6, s.c_str(), bytes) == 1) {
    u128 v = 0;
    for (int i = 0; i < 16; ++i) v = (v << 8) | bytes[i];
    return Ip{6, v};
  }
  return std::nullopt;
}

std::string Ip::ToString() const {
  const int n = version == 4 ? 4 : 16;
  unsigned char bytes[16];
  u128 v = value;
  for (int i = n - 1; i >= 0; --i) {
    bytes[i] = static_cast<unsigned char>(v & 0xff);
    v >>= 8;
  }
  char text[INET6_ADDRSTRLEN];
  ::inet_ntop(version == 4 ? AF_INET : AF_INET6, bytes, text, sizeof text);
  return text;
}

std::optional<Prefix> Prefix::Parse(std::string_view text, bool allow_bare) {
  const size_t slash = text.find('/');
  if (slash == std::string_view::npos) {
    if (!allow_bare) return std::nullopt;
    auto ip = Ip::Parse(text);
    if (!ip) return std::nullopt;
    return Prefix{*ip, ip->bits()};
  }
  auto ip = Ip::Parse(text.substr(0, slash));
  const std::string_view digits = text.substr(slash + 1);
  if (!ip || digits.empty() || digits.size() > 3) return std::nullopt;
  int length = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
    length = length * 10 + (c - '0');
  }
  if (length > ip->bits()) return std::nullopt;
  return Prefix{*ip, length};
}

Ip Prefix::Network() const { return Ip{ip.version, ip.value & Mask(ip.bits(), length)}; }

Ip Prefix::Last() const {
  const u128 all = ip.bits() == 32 ? u128{0xffffffffu} : ~u128{0};
  return Ip{ip.version, (ip.value & Mask(ip.bits(), length)) | (all & ~Mask(ip.bits(), length))};
}

bool Prefix::Contains(const Ip& other) const {
  return other.version == ip.version &&
         (other.value & Mask(ip.bits(), length)) == (ip.value & Mask(ip.bits(), length));
}

std::string Prefix::ToString() const { return ip.ToString() + "/" + std::to_string(length); }

}  // namespace abode::cni

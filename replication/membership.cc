#include "replication/membership.h"

#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace abode::replication {

std::string ConfigurationAddress(const Member& m) {
  if (m.grpc_address.empty()) return m.raft_address;
  return absl::StrCat(m.raft_address, "@", m.grpc_address);
}

Member MemberFromConfiguration(uint64_t id, absl::string_view address) {
  Member m;
  m.id = id;
  const size_t at = address.find('@');
  m.raft_address = std::string(address.substr(0, at));
  if (at != absl::string_view::npos) m.grpc_address = std::string(address.substr(at + 1));
  return m;
}

std::string RaftPart(absl::string_view address) { return std::string(address.substr(0, address.find('@'))); }

absl::Status SplitHostPort(absl::string_view address, absl::string_view field, std::string* host, int* port) {
  const size_t colon = address.rfind(':');
  if (colon == absl::string_view::npos || colon == 0) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": \"", address, "\" is not HOST:PORT"));
  }
  absl::string_view h = address.substr(0, colon);
  if (h.front() == '[') {
    if (h.back() != ']') return absl::InvalidArgumentError(absl::StrCat(field, ": unbalanced [ in \"", address, "\""));
  } else if (h.find(':') != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": IPv6 hosts go in brackets: \"", address, "\""));
  }
  int p = 0;
  if (!absl::SimpleAtoi(address.substr(colon + 1), &p) || p < 0 || p > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": bad port in \"", address, "\""));
  }
  *host = std::string(h);
  *port = p;
  return absl::OkStatus();
}

const Member* FindMember(const std::vector<Member>& members, uint64_t id) {
  for (const Member& m : members) {
    if (m.id == id) return &m;
  }
  return nullptr;
}

absl::StatusOr<std::vector<Member>> ParsePeers(absl::string_view spec, int default_grpc_port) {
  std::vector<Member> out;
  std::set<uint64_t> ids;
  for (absl::string_view item : absl::StrSplit(spec, ',', absl::SkipWhitespace())) {
    item = absl::StripAsciiWhitespace(item);
    const size_t eq = item.find('=');
    Member m;
    if (eq == absl::string_view::npos || !absl::SimpleAtoi(item.substr(0, eq), &m.id) || m.id == 0) {
      return absl::InvalidArgumentError(absl::StrCat("peers: \"", item, "\" is not ID=HOST:PORT (ID > 0)"));
    }
    if (!ids.insert(m.id).second) return absl::InvalidArgumentError(absl::StrCat("peers: id ", m.id, " twice"));
    absl::string_view addr = item.substr(eq + 1);
    const size_t at = addr.find('@');
    m.raft_address = std::string(addr.substr(0, at));
    std::string host;
    int port = 0;
    if (absl::Status s = SplitHostPort(m.raft_address, "peers", &host, &port); !s.ok()) return s;
    if (at != absl::string_view::npos) {
      m.grpc_address = std::string(addr.substr(at + 1));
      std::string ghost;
      int gport = 0;
      if (absl::Status s = SplitHostPort(m.grpc_address, "peers", &ghost, &gport); !s.ok()) return s;
    } else {
      if (default_grpc_port <= 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("peers: \"", item, "\" has no @GRPC_HOST:PORT and no cluster-wide gRPC port is known"));
      }
      m.grpc_address = absl::StrCat(host, ":", default_grpc_port);
    }
    out.push_back(std::move(m));
  }
  if (out.empty()) return absl::InvalidArgumentError("peers: empty");
  return out;
}

}  // namespace abode::replication

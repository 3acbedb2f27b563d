#include "domain/validation.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace abode::domain {
namespace {

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool IsAlnum(char c) { return IsLowerAlnum(c) || (c >= 'A' && c <= 'Z'); }

// [A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?, at most 63 bytes; empty allowed when allow_empty.
bool IsLabelToken(absl::string_view s, bool allow_empty) {
  if (s.empty()) return allow_empty;
  if (s.size() > 63 || !IsAlnum(s.front()) || !IsAlnum(s.back())) return false;
  for (char c : s) {
    if (!IsAlnum(c) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;
}

bool IsDnsSubdomain(absl::string_view s, size_t max) {
  if (s.empty() || s.size() > max || !IsLowerAlnum(s.front()) || !IsLowerAlnum(s.back())) return false;
  for (char c : s) {
    if (!IsLowerAlnum(c) && c != '-' && c != '.') return false;
  }
  return true;
}

std::string Quote(absl::string_view s) {
  return absl::StrCat("\"", s.size() > 64 ? absl::StrCat(s.substr(0, 64), "...") : std::string(s), "\"");
}

}  // namespace

absl::Status ValidateName(absl::string_view name, absl::string_view field, bool allow_empty) {
  if (name.empty()) {
    if (allow_empty) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(field, ": must not be empty"));
  }
  if (!IsDnsSubdomain(name, 63)) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": ", Quote(name), " must be 1-63 characters of [a-z0-9.-], starting and ending with [a-z0-9]"));
  }
  return absl::OkStatus();
}

absl::Status ValidateOwner(absl::string_view owner, absl::string_view field) {
  if (owner.empty()) return absl::InvalidArgumentError(absl::StrCat(field, ": must not be empty"));
  if (owner.size() > kMaxOwnerBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": ", owner.size(), " bytes is longer than the limit of ", kMaxOwnerBytes));
  }
  for (unsigned char c : owner) {
    if (c < 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError(absl::StrCat(field, ": must not contain control characters"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateNodeName(absl::string_view node, absl::string_view field) {
  if (node.empty() || IsDnsSubdomain(node, 253)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      field, ": ", Quote(node), " must be at most 253 characters of [a-z0-9.-], starting and ending with [a-z0-9]"));
}

absl::Status ValidateLabels(const google::protobuf::Map<std::string, std::string>& labels, absl::string_view field) {
  if (labels.size() > kMaxLabels) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", labels.size(), " labels, at most ", kMaxLabels));
  }
  for (const auto& [key, value] : labels) {
    absl::string_view name = key;
    const size_t slash = key.find('/');
    if (slash != std::string::npos) {
      const absl::string_view prefix = absl::string_view(key).substr(0, slash);
      name = absl::string_view(key).substr(slash + 1);
      if (!IsDnsSubdomain(prefix, 253)) {
        return absl::InvalidArgumentError(absl::StrCat(field, ": key ", Quote(key), " has an invalid prefix"));
      }
    }
    if (!IsLabelToken(name, false)) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ": key ", Quote(key), " must be [prefix/]name with name 1-63 characters of [A-Za-z0-9-_.]"));
    }
    if (!IsLabelToken(value, true)) {
      return absl::InvalidArgumentError(absl::StrCat(field, "[", Quote(key), "]: value ", Quote(value),
                                                     " must be at most 63 characters of [A-Za-z0-9-_.]"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<LabelSelector> ParseLabelSelector(absl::string_view text, absl::string_view field) {
  LabelSelector out;
  if (absl::StripAsciiWhitespace(text).empty()) return out;
  google::protobuf::Map<std::string, std::string> check;
  for (absl::string_view term : absl::StrSplit(text, ',')) {
    term = absl::StripAsciiWhitespace(term);
    const size_t eq = term.find('=');
    if (eq == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat(field, ": term ", Quote(term), " is not key=value"));
    }
    std::string key(absl::StripAsciiWhitespace(term.substr(0, eq)));
    absl::string_view value = term.substr(eq + 1);
    if (absl::ConsumePrefix(&value, "=")) {
      // Accept "k==v" as Kubernetes does.
    }
    std::string v(absl::StripAsciiWhitespace(value));
    check[key] = v;
    out.emplace_back(std::move(key), std::move(v));
  }
  if (absl::Status s = ValidateLabels(check, field); !s.ok()) return s;
  return out;
}

bool SelectorMatches(const LabelSelector& selector, const std::map<std::string, std::string>& labels) {
  for (const auto& [k, v] : selector) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) return false;
  }
  return true;
}

std::string EncodeLabels(const google::protobuf::Map<std::string, std::string>& labels) {
  std::map<std::string, std::string> sorted(labels.begin(), labels.end());
  std::string out;
  for (const auto& [k, v] : sorted) {
    if (!out.empty()) out.push_back('\n');
    absl::StrAppend(&out, k, "=", v);
  }
  return out;
}

std::map<std::string, std::string> DecodeLabels(absl::string_view text) {
  std::map<std::string, std::string> out;
  if (text.empty()) return out;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    const size_t eq = line.find('=');
    if (eq == absl::string_view::npos) continue;
    out.emplace(std::string(line.substr(0, eq)), std::string(line.substr(eq + 1)));
  }
  return out;
}

}  // namespace abode::domain

#include "cli/json_text.h"

#include <charconv>
#include <cstdint>
#include <vector>

namespace abode::cli {
namespace {

// Binary subtype that marks a DecimalNumber too large for nlohmann's integers.
constexpr std::uint8_t kBigDecimalSubtype = 0xab;

bool IsPlainDecimal(std::string_view text) {
  if (text.empty() || (text.size() > 1 && text.front() == '0')) return false;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

void Indent(std::string& out, int depth) { out.append(static_cast<std::size_t>(depth) * 2, ' '); }

void Write(const nlohmann::json& value, int depth, std::string& out);

// Writes an object's members or an array's elements, one per line, between `open` and `close`.
template <typename Items, typename WriteItem>
void WriteContainer(const Items& items, char open, char close, int depth, std::string& out, WriteItem write_item) {
  out += open;
  bool first = true;
  for (const auto& item : items) {
    out += first ? "\n" : ",\n";
    first = false;
    Indent(out, depth + 1);
    write_item(item);
  }
  if (!first) {
    out += '\n';
    Indent(out, depth);
  }
  out += close;
}

void Write(const nlohmann::json& value, int depth, std::string& out) {
  switch (value.type()) {
    case nlohmann::json::value_t::object:
      WriteContainer(value.items(), '{', '}', depth, out, [&](const auto& member) {
        out += nlohmann::json(member.key()).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        out += ": ";
        Write(member.value(), depth + 1, out);
      });
      return;
    case nlohmann::json::value_t::array:
      WriteContainer(value, '[', ']', depth, out,
                     [&](const nlohmann::json& element) { Write(element, depth + 1, out); });
      return;
    case nlohmann::json::value_t::binary: {
      const auto& bytes = value.get_binary();
      if (bytes.has_subtype() && bytes.subtype() == kBigDecimalSubtype) {
        out.append(bytes.begin(), bytes.end());
        return;
      }
      break;
    }
    default:
      break;
  }
  out += value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

nlohmann::json DecimalNumber(std::string_view digits) {
  if (!IsPlainDecimal(digits)) return nlohmann::json(std::string(digits));
  std::uint64_t small = 0;
  const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), small);
  if (error == std::errc() && end == digits.data() + digits.size()) return nlohmann::json(small);
  return nlohmann::json::binary(std::vector<std::uint8_t>(digits.begin(), digits.end()), kBigDecimalSubtype);
}

std::string DumpJson(const nlohmann::json& value) {
  std::string out;
  Write(value, 0, out);
  return out;
}

}  // namespace abode::cli

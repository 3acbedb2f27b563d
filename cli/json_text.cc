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

// Pretty output puts every member and element on a line of its own, indented by depth; compact output is one line.
struct Layout {
  bool pretty;

  void Break(std::string& out, int depth) const {
    if (!pretty) return;
    out += '\n';
    out.append(static_cast<std::size_t>(depth) * 2, ' ');
  }
};

void Write(const nlohmann::json& value, int depth, const Layout& layout, std::string& out);

// Writes an object's members or an array's elements between `open` and `close`.
template <typename Items, typename WriteItem>
void WriteContainer(const Items& items, char open, char close, int depth, const Layout& layout, std::string& out,
                    WriteItem write_item) {
  out += open;
  bool first = true;
  for (const auto& item : items) {
    if (!first) out += ',';
    first = false;
    layout.Break(out, depth + 1);
    write_item(item);
  }
  if (!first) layout.Break(out, depth);
  out += close;
}

void Write(const nlohmann::json& value, int depth, const Layout& layout, std::string& out) {
  switch (value.type()) {
    case nlohmann::json::value_t::object:
      WriteContainer(value.items(), '{', '}', depth, layout, out, [&](const auto& member) {
        out += nlohmann::json(member.key()).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        out += layout.pretty ? ": " : ":";
        Write(member.value(), depth + 1, layout, out);
      });
      return;
    case nlohmann::json::value_t::array:
      WriteContainer(value, '[', ']', depth, layout, out,
                     [&](const nlohmann::json& element) { Write(element, depth + 1, layout, out); });
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
  Write(value, 0, Layout{.pretty = true}, out);
  return out;
}

std::string DumpJsonLine(const nlohmann::json& value) {
  std::string out;
  Write(value, 0, Layout{.pretty = false}, out);
  return out;
}

}  // namespace abode::cli

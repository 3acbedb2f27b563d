#include "integration/promql_names.h"

#include <cctype>
#include <cstddef>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace abode::integration {
namespace {

bool IdentStart(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == ':'; }
bool IdentChar(char c) { return IdentStart(c) || std::isdigit(static_cast<unsigned char>(c)); }

const std::set<std::string>& Aggregations() {
  static const std::set<std::string> names = {"sum",    "avg",   "count",    "min",          "max",
                                              "stddev", "stdvar", "topk",    "bottomk",      "quantile",
                                              "group",  "count_values", "limitk", "limit_ratio"};
  return names;
}

// Keywords followed by a parenthesised list of label names.
const std::set<std::string>& LabelListKeywords() {
  static const std::set<std::string> names = {"by", "without", "on", "ignoring", "group_left", "group_right"};
  return names;
}

// Keywords and literals that are neither metrics nor calls.
const std::set<std::string>& Keywords() {
  static const std::set<std::string> names = {"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"};
  return names;
}

class Scanner {
 public:
  explicit Scanner(const std::string& text) : text_(text) {}

  absl::StatusOr<std::set<std::string>> Names() {
    int depth = 0;
    while (true) {
      SkipSpace();
      if (at_ >= text_.size()) break;
      const char c = text_[at_];
      if (c == '"' || c == '\'' || c == '`') {
        if (absl::Status s = SkipString().status(); !s.ok()) return s;
      } else if (c == '$') {
        SkipVariable();
      } else if (c == '[') {
        if (absl::Status s = SkipPast('[', ']'); !s.ok()) return s;
      } else if (c == '{') {
        if (absl::Status s = Matchers(); !s.ok()) return s;
      } else if (std::isdigit(static_cast<unsigned char>(c)) ||
                 (c == '.' && at_ + 1 < text_.size() && std::isdigit(static_cast<unsigned char>(text_[at_ + 1])))) {
        while (at_ < text_.size() && (IdentChar(text_[at_]) || text_[at_] == '.')) ++at_;
      } else if (IdentStart(c)) {
        if (absl::Status s = Identifier(); !s.ok()) return s;
      } else {
        if (c == '(') ++depth;
        if (c == ')' && --depth < 0) return Error("unbalanced \")\"");
        ++at_;
      }
    }
    if (depth != 0) return Error("unbalanced \"(\"");
    return names_;
  }

 private:
  absl::Status Error(absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat(what, " at offset ", at_, " of: ", text_));
  }
  void SkipSpace() {
    while (at_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[at_]))) ++at_;
  }
  char Next() {
    SkipSpace();
    return at_ < text_.size() ? text_[at_] : '\0';
  }
  // A Grafana variable: $name or ${name...}.
  void SkipVariable() {
    ++at_;
    if (at_ < text_.size() && text_[at_] == '{') {
      while (at_ < text_.size() && text_[at_] != '}') ++at_;
      ++at_;
      return;
    }
    while (at_ < text_.size() && IdentChar(text_[at_])) ++at_;
  }
  // The string starting at at_; returns its text (escapes kept as written).
  absl::StatusOr<std::string> SkipString() {
    const char quote = text_[at_++];
    std::string value;
    while (at_ < text_.size() && text_[at_] != quote) {
      if (text_[at_] == '\\' && quote != '`') value += text_[at_++];
      if (at_ < text_.size()) value += text_[at_++];
    }
    if (at_ >= text_.size()) return Error("unterminated string");
    ++at_;
    return value;
  }
  // From `open` at at_ past its matching `close`, strings inside skipped.
  absl::Status SkipPast(char open, char close) {
    int depth = 0;
    while (at_ < text_.size()) {
      const char c = text_[at_];
      if (c == '"' || c == '\'' || c == '`') {
        if (absl::Status s = SkipString().status(); !s.ok()) return s;
        continue;
      }
      ++at_;
      if (c == open) ++depth;
      if (c == close && --depth == 0) return absl::OkStatus();
    }
    return Error(absl::StrCat("unterminated \"", std::string(1, open), "\""));
  }
  // {label op "value", ...}: only __name__ names a metric.
  absl::Status Matchers() {
    ++at_;
    while (true) {
      const char c = Next();
      if (c == '\0') return Error("unterminated \"{\"");
      if (c == '}') {
        ++at_;
        return absl::OkStatus();
      }
      if (c == '"' || c == '\'' || c == '`') {
        if (absl::Status s = SkipString().status(); !s.ok()) return s;
        continue;
      }
      if (!IdentStart(c)) {
        ++at_;
        continue;
      }
      const size_t start = at_;
      while (at_ < text_.size() && IdentChar(text_[at_])) ++at_;
      const std::string label = text_.substr(start, at_ - start);
      if (label != "__name__") continue;
      while (Next() == '=' || Next() == '!' || Next() == '~') ++at_;
      const char q = Next();
      if (q != '"' && q != '\'' && q != '`') return Error("__name__ without a string");
      absl::StatusOr<std::string> name = SkipString();
      if (!name.ok()) return name.status();
      names_.insert(*name);
    }
  }
  absl::Status Identifier() {
    const size_t start = at_;
    while (at_ < text_.size() && IdentChar(text_[at_])) ++at_;
    const std::string word = text_.substr(start, at_ - start);
    const std::string lower = absl::AsciiStrToLower(word);
    if (LabelListKeywords().count(lower) > 0) {
      return Next() == '(' ? SkipPast('(', ')') : absl::OkStatus();
    }
    if (Keywords().count(lower) > 0) return absl::OkStatus();
    const char next = Next();
    if (Aggregations().count(lower) > 0 && (next == '(' || IdentStart(next))) return absl::OkStatus();
    if (next == '(') return absl::OkStatus();  // a function
    names_.insert(word);
    return absl::OkStatus();
  }

  const std::string& text_;
  size_t at_ = 0;
  std::set<std::string> names_;
};

// The text between the "(" after `function` and its matching ")".
std::string Arguments(const std::string& query, absl::string_view function) {
  const size_t open = query.find('(', function.size());
  const size_t close = query.rfind(')');
  if (open == std::string::npos || close == std::string::npos || close < open) return "";
  return query.substr(open + 1, close - open - 1);
}

}  // namespace

absl::StatusOr<std::set<std::string>> PromqlMetricNames(const std::string& expression) {
  return Scanner(expression).Names();
}

absl::StatusOr<std::set<std::string>> GrafanaVariableMetricNames(const std::string& query) {
  const std::string q(absl::StripAsciiWhitespace(query));
  if (absl::StartsWith(q, "label_values")) {
    const std::string args = Arguments(q, "label_values");
    // The last argument is the label; with one argument there is no expression.
    int depth = 0;
    size_t last_comma = std::string::npos;
    for (size_t i = 0; i < args.size(); ++i) {
      if (args[i] == '(' || args[i] == '{' || args[i] == '[') ++depth;
      if (args[i] == ')' || args[i] == '}' || args[i] == ']') --depth;
      if (args[i] == ',' && depth == 0) last_comma = i;
    }
    if (last_comma == std::string::npos) return std::set<std::string>{};
    return PromqlMetricNames(args.substr(0, last_comma));
  }
  if (absl::StartsWith(q, "metrics(") || absl::StartsWith(q, "label_names(")) return std::set<std::string>{};
  if (absl::StartsWith(q, "query_result")) return PromqlMetricNames(Arguments(q, "query_result"));
  return PromqlMetricNames(q);
}

}  // namespace abode::integration

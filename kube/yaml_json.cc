#include "kube/yaml_json.h"

#include <yaml.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"

namespace abode::kube {
namespace {

struct ParserDeleter {
  void operator()(yaml_parser_t* p) const {
    yaml_parser_delete(p);
    delete p;
  }
};
struct DocumentDeleter {
  void operator()(yaml_document_t* d) const {
    yaml_document_delete(d);
    delete d;
  }
};

bool IsPlain(const yaml_node_t& n) { return n.data.scalar.style == YAML_PLAIN_SCALAR_STYLE; }

nlohmann::json Scalar(const yaml_node_t& n) {
  std::string text(reinterpret_cast<const char*>(n.data.scalar.value), n.data.scalar.length);
  if (!IsPlain(n)) return text;
  if (text == "true" || text == "True" || text == "TRUE") return true;
  if (text == "false" || text == "False" || text == "FALSE") return false;
  if (text.empty() || text == "~" || text == "null" || text == "Null" || text == "NULL") return nullptr;
  char* end = nullptr;
  const long long i = std::strtoll(text.c_str(), &end, 10);
  if (end != nullptr && *end == '\0') return i;
  const double d = std::strtod(text.c_str(), &end);
  if (end != nullptr && *end == '\0') return d;
  return text;
}

// Depth-limited: an alias cycle cannot recurse forever.
absl::StatusOr<nlohmann::json> Convert(yaml_document_t* doc, yaml_node_t* n, int depth) {
  if (n == nullptr) return nlohmann::json();
  if (depth > 64) return absl::InvalidArgumentError("yaml: nested deeper than 64 levels");
  switch (n->type) {
    case YAML_SCALAR_NODE: return Scalar(*n);
    case YAML_SEQUENCE_NODE: {
      nlohmann::json out = nlohmann::json::array();
      for (yaml_node_item_t* it = n->data.sequence.items.start; it < n->data.sequence.items.top; ++it) {
        auto v = Convert(doc, yaml_document_get_node(doc, *it), depth + 1);
        if (!v.ok()) return v.status();
        out.push_back(std::move(*v));
      }
      return out;
    }
    case YAML_MAPPING_NODE: {
      nlohmann::json out = nlohmann::json::object();
      for (yaml_node_pair_t* p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; ++p) {
        yaml_node_t* key = yaml_document_get_node(doc, p->key);
        if (key == nullptr || key->type != YAML_SCALAR_NODE) {
          return absl::InvalidArgumentError("yaml: a mapping key is not a scalar");
        }
        auto v = Convert(doc, yaml_document_get_node(doc, p->value), depth + 1);
        if (!v.ok()) return v.status();
        out[std::string(reinterpret_cast<const char*>(key->data.scalar.value), key->data.scalar.length)] = std::move(*v);
      }
      return out;
    }
    default: return nlohmann::json();
  }
}

}  // namespace

absl::StatusOr<nlohmann::json> ParseYaml(absl::string_view text) {
  std::unique_ptr<yaml_parser_t, ParserDeleter> parser(new yaml_parser_t);
  if (!yaml_parser_initialize(parser.get())) {
    // Nothing to delete: initialisation failed. Release without yaml_parser_delete.
    delete parser.release();
    return absl::ResourceExhaustedError("yaml: cannot initialise the parser");
  }
  yaml_parser_set_input_string(parser.get(), reinterpret_cast<const unsigned char*>(text.data()), text.size());
  std::unique_ptr<yaml_document_t, DocumentDeleter> doc(new yaml_document_t);
  if (!yaml_parser_load(parser.get(), doc.get())) {
    delete doc.release();
    return absl::InvalidArgumentError(absl::StrCat("yaml: ", parser->problem ? parser->problem : "syntax error",
                                                   " at line ", parser->problem_mark.line + 1, " column ",
                                                   parser->problem_mark.column + 1));
  }
  return Convert(doc.get(), yaml_document_get_root_node(doc.get()), 0);
}

}  // namespace abode::kube

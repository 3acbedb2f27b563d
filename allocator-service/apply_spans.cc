#include "allocator-service/apply_spans.h"

#include <map>
#include <string>
#include <variant>

#include "absl/strings/str_cat.h"

namespace abode::allocator {
namespace {

// The fields worth an attribute, wherever a command or result has them (abode.pool, abode.address, ...).
constexpr const char* kFields[] = {"spec", "pool", "owner", "node", "address", "name", "network", "revision"};

using Fields = std::map<std::string, tracing::AttributeValue>;

// Later calls overwrite: a result's fields (the address chosen) win over the request's. A field that is a
// message (a request's `pool` or `address` spec, a result's `spec`) is read one level down.
void AddFields(const google::protobuf::Message& message, Fields& out, bool nested = false) {
  const google::protobuf::Descriptor* d = message.GetDescriptor();
  const google::protobuf::Reflection* r = message.GetReflection();
  for (const char* name : kFields) {
    const google::protobuf::FieldDescriptor* f = d->FindFieldByName(name);
    if (f == nullptr || f->is_repeated()) continue;
    if (f->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE) {
      if (!nested && r->HasField(message, f)) AddFields(r->GetMessage(message, f), out, true);
      continue;
    }
    const std::string key = absl::StrCat("abode.", name);
    if (f->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_STRING) {
      if (std::string v = r->GetString(message, f); !v.empty()) out[key] = std::move(v);
    } else if (f->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_UINT64) {
      if (uint64_t v = r->GetUInt64(message, f); v != 0) out[key] = static_cast<int64_t>(v);
    }
  }
}

// The message set in the oneof `oneof` of `message`, or null.
const google::protobuf::Message* OneofMessage(const google::protobuf::Message& message, const char* oneof) {
  const google::protobuf::OneofDescriptor* o = message.GetDescriptor()->FindOneofByName(oneof);
  if (o == nullptr) return nullptr;
  const google::protobuf::FieldDescriptor* f = message.GetReflection()->GetOneofFieldDescriptor(message, o);
  if (f == nullptr || f->cpp_type() != google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE) return nullptr;
  return &message.GetReflection()->GetMessage(message, f);
}

std::string OpName(const v1::Command& command) {
  const google::protobuf::OneofDescriptor* o = command.GetDescriptor()->FindOneofByName("op");
  const google::protobuf::FieldDescriptor* f = command.GetReflection()->GetOneofFieldDescriptor(command, o);
  return f == nullptr ? "unknown" : f->name();
}

}  // namespace

void RecordApplySpans(tracing::Tracer& tracer, const v1::CommandBatch& batch, uint64_t index, int64_t start_unix_ns,
                      const absl::StatusOr<std::vector<replication::CommandOutcome>>& outcomes) {
  const int64_t end = tracer.Now();
  tracing::Span span;
  if (tracing::ParseTraceparent(batch.traceparent())) {
    span = tracer.StartSpanAt("raft.apply", tracing::SpanKind::kInternal, batch.traceparent(), start_unix_ns);
  } else {
    // Proposed by a leader that traced it not: link to the callers here.
    std::vector<tracing::SpanContext> callers;
    callers.reserve(batch.commands_size());
    for (const v1::Command& command : batch.commands()) {
      if (auto caller = tracing::ParseTraceparent(command.traceparent())) callers.push_back(*caller);
    }
    if (callers.empty()) return;
    span = tracer.StartLinkedSpanAt("raft.apply", tracing::SpanKind::kInternal, callers, start_unix_ns);
  }
  if (!span.recording()) return;
  span.SetAttribute("raft.index", index).SetAttribute("raft.batch_size", batch.commands_size());
  if (!outcomes.ok()) {
    span.SetError(std::string(outcomes.status().message()));
    span.EndAt(end);
    return;
  }
  // Refused commands only: the rare, interesting ones (a full pool). Each names its caller and its facts.
  int failed = 0;
  std::string first_error;
  for (int i = 0; i < batch.commands_size() && static_cast<size_t>(i) < outcomes->size(); ++i) {
    const replication::CommandOutcome& outcome = (*outcomes)[i];
    if (outcome.ok()) continue;
    const v1::Command& command = batch.commands(i);
    if (failed++ == 0) first_error = std::string(outcome.status().message());
    Fields fields;
    if (const auto* op = OneofMessage(command, "op")) AddFields(*op, fields);
    tracing::Attributes attributes;
    attributes.emplace_back("abode.command", OpName(command));
    attributes.emplace_back("abode.error_code", absl::StatusCodeToString(outcome.status().code()));
    attributes.emplace_back("abode.error", std::string(outcome.status().message()));
    if (!command.traceparent().empty()) attributes.emplace_back("abode.caller", command.traceparent());
    for (auto& [key, value] : fields) attributes.emplace_back(key, std::move(value));
    span.AddEvent("command refused", std::move(attributes));
  }
  span.SetAttribute("abode.commands_refused", failed);
  if (failed > 0) {
    span.SetError(absl::StrCat(failed, " of ", batch.commands_size(), " commands refused; the first: ", first_error));
  } else {
    span.SetOk();
  }
  span.EndAt(end);
}

}  // namespace abode::allocator

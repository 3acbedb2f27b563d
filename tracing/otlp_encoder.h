// Spans as an OTLP ExportTraceServiceRequest, written straight in the protobuf wire format of the messages
// in proto/opentelemetry/ (the same field numbers and types) rather than built as message objects first:
// the export thread encodes every span abode records, and building messages cost it several times more.
// otlp_encoder_test decodes what this writes with the code generated from those messages.
#ifndef ABODE_TRACING_OTLP_ENCODER_H_
#define ABODE_TRACING_OTLP_ENCODER_H_

#include <string>

#include "tracing/config.h"
#include "tracing/tracer.h"

namespace abode::tracing {

// Replaces `out` with the request for `spans`: one ResourceSpans per service (the tracer's resource, with
// service.name replaced for spans recorded on behalf of another program), in the order each service first
// appears, each with one scope "abode". `out` keeps its capacity from one call to the next.
void EncodeOtlp(const TracingConfig& config, const SpanBatch& spans, std::string* out);

}  // namespace abode::tracing

#endif  // ABODE_TRACING_OTLP_ENCODER_H_

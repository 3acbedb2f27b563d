#include "cni_spans.h"

#include "tracing/current_span.h"

namespace abode::node {

cni::LocalResponse HandleTraced(tracing::Tracer& tracer, const std::string& node, const cni::LocalRequest& request,
                                const std::function<cni::LocalResponse(const cni::LocalRequest&)>& handle) {
  tracing::Span span = tracer.StartSpan("cni " + request.verb, tracing::SpanKind::kServer, request.traceparent);
  if (!span.context().valid()) return handle(request);
  tracing::ScopedSpanContext scope(span.context());
  span.SetAttribute("cni.command", request.verb)
      .SetAttribute("cni.container_id", request.container_id)
      .SetAttribute("cni.ifname", request.ifname)
      .SetAttribute("abode.network", request.network)
      .SetAttribute("abode.node", node);
  cni::LocalRequest traced = request;
  traced.traceparent = span.traceparent();
  cni::LocalResponse response = handle(traced);
  if (response.error) {
    span.SetAttribute("cni.error_code", static_cast<int64_t>(response.error->code));
    span.SetError(response.error->msg);
  } else {
    for (const cni::AllocatedIp& ip : response.ips) {
      span.SetAttribute("abode.address", ip.address).SetAttribute("abode.pool", ip.pool);
    }
    span.SetOk();
  }
  return response;
}

void RecordPluginSpan(tracing::Tracer& tracer, const std::string& node, const CniRequestRecord& record) {
  auto context = tracing::ParseTraceparent(record.traceparent);
  if (!tracer.enabled() || !context || !context->sampled || record.plugin_start_unix_ns <= 0 ||
      record.plugin_end_unix_ns < record.plugin_start_unix_ns) {
    return;
  }
  tracing::SpanData span;
  span.context = *context;
  if (auto parent = tracing::ParseTraceparent(record.parent_traceparent)) {
    if (parent->trace_id == context->trace_id) {
      span.parent_span_id = parent->span_id;
      span.parent_remote = true;
    }
  }
  span.name = "cni " + record.verb;
  span.kind = tracing::SpanKind::kClient;
  span.start_unix_ns = record.plugin_start_unix_ns;
  span.end_unix_ns = record.plugin_end_unix_ns;
  span.service_name = kCniServiceName;
  span.attributes = {{"cni.command", record.verb},
                     {"cni.container_id", record.container_id},
                     {"cni.ifname", record.ifname},
                     {"abode.node", node}};
  if (record.code != 0) {
    span.attributes.emplace_back("cni.error_code", static_cast<int64_t>(record.code));
    span.status = tracing::StatusCode::kError;
    span.status_message = record.message;
  } else {
    span.status = tracing::StatusCode::kOk;
  }
  tracer.Record(std::move(span));
}

}  // namespace abode::node

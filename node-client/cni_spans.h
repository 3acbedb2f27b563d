// Spans of a CNI request on a node: abode-node's own ("cni ADD", a child of the plugin's span), and the
// plugin's, which abode-node records for it as service abode-cni (the plugin links no gRPC: it sends its
// context, parent and start and end times over the local socket instead). See docs/tracing.md.
#ifndef ABODE_NODE_CLIENT_CNI_SPANS_H_
#define ABODE_NODE_CLIENT_CNI_SPANS_H_

#include <functional>
#include <string>

#include "cni/local_protocol.h"
#include "cni_socket.h"
#include "tracing/tracer.h"

namespace abode::node {

inline constexpr char kCniServiceName[] = "abode-cni";

// Runs `handle` for `request` under a span of its own (the thread's current span meanwhile), handing the
// handler a request whose traceparent is that span's, so the allocator calls it makes continue it.
cni::LocalResponse HandleTraced(tracing::Tracer& tracer, const std::string& node, const cni::LocalRequest& request,
                                const std::function<cni::LocalResponse(const cni::LocalRequest&)>& handle);

// Records the plugin's span from what it reported; nothing when it sent no valid, sampled context or no
// times.
void RecordPluginSpan(tracing::Tracer& tracer, const std::string& node, const CniRequestRecord& record);

}  // namespace abode::node

#endif  // ABODE_NODE_CLIENT_CNI_SPANS_H_

// Spans for applied commands: one "raft.apply <command>" span per command of a log entry, a child of the
// command's traceparent (the span of the call that proposed it), on every replica that applies it. So a
// caller's trace shows where its command was applied, by whom, at which raft index, and with what outcome.
#ifndef ABODE_ALLOCATOR_SERVICE_APPLY_SPANS_H_
#define ABODE_ALLOCATOR_SERVICE_APPLY_SPANS_H_

#include <cstdint>
#include <vector>

#include "abode/v1/commands.pb.h"
#include "absl/status/statusor.h"
#include "replication/command_log.h"
#include "tracing/tracer.h"

namespace abode::allocator {

// Records the spans of `batch` applied at raft `index` from `start_unix_ns` to now. Commands without a
// valid traceparent (housekeeping) get none.
void RecordApplySpans(tracing::Tracer& tracer, const v1::CommandBatch& batch, uint64_t index, int64_t start_unix_ns,
                      const absl::StatusOr<std::vector<replication::CommandOutcome>>& outcomes);

}  // namespace abode::allocator

#endif  // ABODE_ALLOCATOR_SERVICE_APPLY_SPANS_H_

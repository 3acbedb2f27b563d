// Spans for applied log entries: one "raft.apply" span per entry on every replica that applies it, a child
// of the leader's "raft.commit" span of the entry (whose context the entry carries), which links to the span
// of each command's caller: an entry serves many callers and belongs to none of their traces. An entry
// without that context (its leader traced it not) gets an apply span that links to the callers itself. It
// carries the raft index (the same on every replica, and on the leader's raft.commit) and the batch size; a
// command the state machine refused is an event with its caller, its facts and its error code, and makes the
// span an error.
#ifndef ABODE_ALLOCATOR_SERVICE_APPLY_SPANS_H_
#define ABODE_ALLOCATOR_SERVICE_APPLY_SPANS_H_

#include <cstdint>
#include <vector>

#include "abode/v1/commands.pb.h"
#include "absl/status/statusor.h"
#include "replication/command_log.h"
#include "tracing/tracer.h"

namespace abode::allocator {

// Records the span of `batch` applied at raft `index` from `start_unix_ns` to now. An entry with neither a
// commit span's context nor a command with a valid traceparent (housekeeping) gets none.
void RecordApplySpans(tracing::Tracer& tracer, const v1::CommandBatch& batch, uint64_t index, int64_t start_unix_ns,
                      const absl::StatusOr<std::vector<replication::CommandOutcome>>& outcomes);

}  // namespace abode::allocator

#endif  // ABODE_ALLOCATOR_SERVICE_APPLY_SPANS_H_

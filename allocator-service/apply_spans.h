// Spans for applied log entries: one "raft.apply" span per entry on every replica that applies it, the root
// of a new trace that links to the span of each command's caller (the call that proposed it), as the
// leader's "raft.commit" does: an entry serves many callers and belongs to none of their traces. It carries
// the raft index (the same on every replica, and on the leader's raft.commit) and the batch size; a command
// the state machine refused is an event with its caller, its facts and its error code, and makes the span an
// error.
#ifndef ABODE_ALLOCATOR_SERVICE_APPLY_SPANS_H_
#define ABODE_ALLOCATOR_SERVICE_APPLY_SPANS_H_

#include <cstdint>
#include <vector>

#include "abode/v1/commands.pb.h"
#include "absl/status/statusor.h"
#include "replication/command_log.h"
#include "tracing/tracer.h"

namespace abode::allocator {

// Records the span of `batch` applied at raft `index` from `start_unix_ns` to now. An entry none of whose
// commands has a valid traceparent (housekeeping) gets none.
void RecordApplySpans(tracing::Tracer& tracer, const v1::CommandBatch& batch, uint64_t index, int64_t start_unix_ns,
                      const absl::StatusOr<std::vector<replication::CommandOutcome>>& outcomes);

}  // namespace abode::allocator

#endif  // ABODE_ALLOCATOR_SERVICE_APPLY_SPANS_H_

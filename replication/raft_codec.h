// How abode's state machine travels through c-raft: log entries and snapshots as raft buffers.
//
// Log entry: an 8-byte little-endian payload length, the serialized CommandBatch, zero padding to a
// multiple of 8 bytes. c-raft's segment writer requires 8-byte multiples; the length makes the padding
// unambiguous. The CommandBatch carries its own format version.
//
// Snapshot: the magic "ABODERIX", the 8-byte little-endian raft index the snapshot was taken at, then the
// state snapshot (opaque here). The index lets a replica whose database is already past the snapshot
// skip restoring it. A buffer without the frame is a bare state snapshot (index unknown).
#ifndef ABODE_REPLICATION_RAFT_CODEC_H_
#define ABODE_REPLICATION_RAFT_CODEC_H_

// c-raft's headers carry no extern "C" of their own.
extern "C" {
#include <raft.h>
}

#include <cstdint>
#include <string>

#include "abode/v1/commands.pb.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace abode::replication {

// The returned buffer is allocated with raft_calloc; raft takes it over when the entry is appended.
raft_buffer EncodeEntry(const v1::CommandBatch& batch);
absl::Status DecodeEntry(const raft_buffer& buf, v1::CommandBatch* batch);

// The returned buffer is allocated with raft_malloc.
raft_buffer FrameSnapshot(uint64_t raft_index, const std::string& state);

struct SnapshotFrame {
  uint64_t raft_index = 0;     // 0: a bare state snapshot
  absl::string_view state;     // points into the buffer
};
SnapshotFrame UnframeSnapshot(const raft_buffer& buf);

}  // namespace abode::replication

#endif  // ABODE_REPLICATION_RAFT_CODEC_H_

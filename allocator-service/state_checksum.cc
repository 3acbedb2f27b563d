#include "allocator-service/state_checksum.h"

#include <cstdint>
#include <memory>
#include <utility>

#include "abode/v1/snapshot.pb.h"
#include "google/protobuf/io/coded_stream.h"

namespace abode::allocator {

// The allocation count from a snapshot's trailer (its last record).
uint64_t SnapshotAllocations(absl::string_view snap) {
  constexpr size_t kHeader = 12;  // magic + format version
  if (snap.size() < kHeader) return 0;
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(snap.data()) + kHeader,
                                            static_cast<int>(snap.size() - kHeader));
  in.SetTotalBytesLimit(INT32_MAX);
  v1::SnapshotRecord last;
  uint32_t len = 0;
  while (in.ReadVarint32(&len)) {
    const void* data = nullptr;
    int size = 0;
    if (!in.GetDirectBufferPointer(&data, &size) || size < static_cast<int>(len)) return 0;
    if (static_cast<int>(len) == size) {
      if (!last.ParseFromArray(data, static_cast<int>(len))) return 0;
    }
    if (!in.Skip(static_cast<int>(len))) return 0;
  }
  return last.has_trailer() ? last.trailer().allocations() : 0;
}

void TakeStateSnapshot(replication::RaftNode& node, StoreStateMachine& store, ReadExecutor& reads,
                       absl::AnyInvocable<void(absl::StatusOr<StateSnapshot>) &&> done) {
  node.BetweenApplies([&store, &reads, done = std::move(done)](absl::StatusOr<uint64_t> applied) mutable {
    if (!applied.ok()) {
      std::move(done)(applied.status());
      return;
    }
    // Between two applies the store holds exactly the state at the applied index: pin it here, serialise
    // it on the read executor.
    StateSnapshot snap;
    snap.applied_index = *applied;
    snap.revision = store.revision();
    auto pinned = store.PinState();
    if (!pinned.ok()) {
      std::move(done)(pinned.status());
      return;
    }
    reads.Post([snap = std::move(snap), pinned = std::move(*pinned), done = std::move(done)]() mutable {
      auto bytes = pinned->Dump();
      pinned.reset();
      if (!bytes.ok()) {
        std::move(done)(bytes.status());
        return;
      }
      snap.bytes = std::move(*bytes);
      std::move(done)(std::move(snap));
    });
  });
}

void TakeStateChecksum(replication::RaftNode& node, StoreStateMachine& store, ReadExecutor& reads,
                       absl::AnyInvocable<void(absl::StatusOr<StateChecksum>) &&> done) {
  TakeStateSnapshot(node, store, reads, [done = std::move(done)](absl::StatusOr<StateSnapshot> snap) mutable {
    if (!snap.ok()) {
      std::move(done)(snap.status());
      return;
    }
    StateChecksum c;
    c.applied_index = snap->applied_index;
    c.revision = snap->revision;
    c.checksum = Fnv1a64(snap->bytes);
    c.allocations = SnapshotAllocations(snap->bytes);
    std::move(done)(c);
  });
}

}  // namespace abode::allocator

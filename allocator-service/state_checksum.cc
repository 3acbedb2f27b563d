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

namespace {

// Pins the state between two applies and dumps it on a read thread; `then` runs there with the dump, or with
// the error (on the thread that found it).
void DumpState(replication::RaftNode& node, StoreStateMachine& store, ReadExecutor& reads,
               absl::AnyInvocable<void(absl::StatusOr<StateSnapshot>) &&> then) {
  node.BetweenApplies([&store, &reads, then = std::move(then)](absl::StatusOr<uint64_t> applied) mutable {
    if (!applied.ok()) {
      std::move(then)(applied.status());
      return;
    }
    // Between two applies the store holds exactly the state at the applied index: pin it here, serialise
    // it on the read executor.
    StateSnapshot snap;
    snap.applied_index = *applied;
    snap.revision = store.revision();
    auto pinned = store.PinState();
    if (!pinned.ok()) {
      std::move(then)(pinned.status());
      return;
    }
    reads.Post([snap = std::move(snap), pinned = std::move(*pinned), then = std::move(then)]() mutable {
      auto bytes = pinned->Dump();
      pinned.reset();
      if (!bytes.ok()) {
        std::move(then)(bytes.status());
        return;
      }
      snap.bytes = std::move(*bytes);
      std::move(then)(std::move(snap));
    });
  });
}

}  // namespace

void TakeStateSnapshot(replication::RaftNode& node, StoreStateMachine& store, ReadExecutor& reads,
                       absl::AnyInvocable<void(absl::StatusOr<StateSnapshot>) &&> done) {
  DumpState(node, store, reads, [&reads, done = std::move(done)](absl::StatusOr<StateSnapshot> snap) mutable {
    reads.Reply([snap = std::move(snap), done = std::move(done)]() mutable { std::move(done)(std::move(snap)); });
  });
}

void TakeStateChecksum(replication::RaftNode& node, StoreStateMachine& store, ReadExecutor& reads,
                       absl::AnyInvocable<void(absl::StatusOr<StateChecksum>) &&> done) {
  DumpState(node, store, reads, [&reads, done = std::move(done)](absl::StatusOr<StateSnapshot> snap) mutable {
    absl::StatusOr<StateChecksum> c = StateChecksum{};
    if (snap.ok()) {
      c->applied_index = snap->applied_index;
      c->revision = snap->revision;
      c->checksum = Fnv1a64(snap->bytes);
      c->allocations = SnapshotAllocations(snap->bytes);
    } else {
      c = snap.status();
    }
    reads.Reply([c = std::move(c), done = std::move(done)]() mutable { std::move(done)(std::move(c)); });
  });
}

}  // namespace abode::allocator

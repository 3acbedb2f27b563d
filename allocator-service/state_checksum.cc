#include "allocator-service/state_checksum.h"

#include <cstdint>
#include <memory>
#include <utility>

#include "abode/v1/snapshot.pb.h"
#include "google/protobuf/io/coded_stream.h"

namespace abode::allocator {

uint64_t Fnv1a64(absl::string_view data) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : data) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

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

void TakeStateChecksum(replication::RaftNode& node, StoreStateMachine& store, ReadExecutor& reads,
                       absl::AnyInvocable<void(absl::StatusOr<StateChecksum>) &&> done) {
  node.BetweenApplies([&store, &reads, done = std::move(done)](absl::StatusOr<uint64_t> applied) mutable {
    if (!applied.ok()) {
      std::move(done)(applied.status());
      return;
    }
    // Between two applies the store holds exactly the state at the applied index: pin it here, serialise
    // and hash it on the read executor.
    StateChecksum c;
    c.applied_index = *applied;
    c.revision = store.revision();
    auto pinned = store.PinState();
    if (!pinned.ok()) {
      std::move(done)(pinned.status());
      return;
    }
    reads.Post([&reads, c, pinned = std::move(*pinned), done = std::move(done)]() mutable {
      auto snap = pinned->Dump();
      pinned.reset();
      absl::StatusOr<StateChecksum> result = c;
      if (snap.ok()) {
        result->checksum = Fnv1a64(*snap);
        result->allocations = SnapshotAllocations(*snap);
      } else {
        result = snap.status();
      }
      reads.Reply([result = std::move(result), done = std::move(done)]() mutable { std::move(done)(result); });
    });
  });
}

}  // namespace abode::allocator

#include "replication/raft_codec.h"

#include <cstring>

namespace abode::replication {
namespace {

constexpr char kSnapshotFrameMagic[8] = {'A', 'B', 'O', 'D', 'E', 'R', 'I', 'X'};

}  // namespace

raft_buffer EncodeEntry(const v1::CommandBatch& batch) {
  const size_t payload = batch.ByteSizeLong();
  raft_buffer buf;
  buf.len = 8 + ((payload + 7) & ~size_t{7});
  buf.base = raft_calloc(1, buf.len);
  auto* p = static_cast<uint8_t*>(buf.base);
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>((uint64_t{payload} >> (8 * i)) & 0xff);
  batch.SerializeWithCachedSizesToArray(p + 8);
  return buf;
}

absl::Status DecodeEntry(const raft_buffer& buf, v1::CommandBatch* batch) {
  if (buf.len < 8) return absl::DataLossError("entry shorter than its header");
  const auto* p = static_cast<const uint8_t*>(buf.base);
  uint64_t payload = 0;
  for (int i = 0; i < 8; ++i) payload |= uint64_t{p[i]} << (8 * i);
  if (payload > buf.len - 8) return absl::DataLossError("entry length exceeds the entry");
  if (!batch->ParseFromArray(p + 8, static_cast<int>(payload))) return absl::DataLossError("unreadable command batch");
  return absl::OkStatus();
}

raft_buffer FrameSnapshot(uint64_t raft_index, const std::string& state) {
  raft_buffer buf;
  buf.len = 16 + state.size();
  buf.base = raft_malloc(buf.len);
  auto* p = static_cast<uint8_t*>(buf.base);
  std::memcpy(p, kSnapshotFrameMagic, 8);
  for (int i = 0; i < 8; ++i) p[8 + i] = static_cast<uint8_t>((raft_index >> (8 * i)) & 0xff);
  std::memcpy(p + 16, state.data(), state.size());
  return buf;
}

SnapshotFrame UnframeSnapshot(const raft_buffer& buf) {
  const auto* p = static_cast<const char*>(buf.base);
  if (buf.len < 16 || std::memcmp(p, kSnapshotFrameMagic, 8) != 0) return {0, absl::string_view(p, buf.len)};
  uint64_t index = 0;
  for (int i = 0; i < 8; ++i) index |= uint64_t{static_cast<uint8_t>(p[8 + i])} << (8 * i);
  return {index, absl::string_view(p + 16, buf.len - 16)};
}

}  // namespace abode::replication

// FNV-1a, 64 bits: stable across processes and builds, unlike absl::Hash.
#ifndef ABODE_STORAGE_FNV_H_
#define ABODE_STORAGE_FNV_H_

#include <cstdint>

#include "absl/strings/string_view.h"

namespace abode::storage {

inline uint64_t Fnv1a64(absl::string_view data) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : data) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

}  // namespace abode::storage

#endif  // ABODE_STORAGE_FNV_H_

// c-raft's integer errors as absl::Status.
#ifndef ABODE_REPLICATION_RAFT_ERROR_H_
#define ABODE_REPLICATION_RAFT_ERROR_H_

extern "C" {
#include <raft.h>
}

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace abode::replication {

// UNAVAILABLE "what: raft's message[: detail]".
inline absl::Status RaftError(int rv, absl::string_view what, const char* detail) {
  return absl::UnavailableError(absl::StrCat(what, ": ", raft_strerror(rv), detail && *detail ? ": " : "",
                                             detail ? detail : ""));
}

}  // namespace abode::replication

#endif  // ABODE_REPLICATION_RAFT_ERROR_H_

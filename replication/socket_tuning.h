// What abode changes about libraft's TCP transport sockets, and why (all on the raft loop thread).
//
// - libraft 0.15's TCP transport listens with a backlog of 1: members connecting at the same moment (a
//   restart, a new leader) have their SYNs dropped and retry only after 1 s, 3 s, ... Listening again on the
//   same socket only changes the backlog (WidenListenBacklog).
// - It leaves Nagle's algorithm on. Its connections carry messages one way only (each member sends on the
//   connections it opened), so the receiver's TCP acknowledgements are delayed (up to 40 ms), and Nagle
//   holds a small message back until the previous one is acknowledged: a follower could get an
//   AppendEntries, and the leader its commit, ~40 ms late. TCP_NODELAY on every raft socket: the
//   connections this member opens (set as they are made) and the listening socket, whose setting accepted
//   connections inherit. libuv applies it to a socket created later, too.
// - A member whose address went away (its pod was deleted; its name now resolves elsewhere) answers nothing,
//   not even a reset. libraft never reads on the connections it opens, so only a failed write ends one, and
//   TCP would retransmit for ~15 minutes first. TCP_USER_TIMEOUT ends a connection whose data stays
//   unacknowledged for three election timeouts, and TCP_SYNCNT ends an attempt to connect there after 2
//   retransmitted SYNs (~7 s instead of ~2 minutes); libraft then connects again, to the new address.
#ifndef ABODE_REPLICATION_SOCKET_TUNING_H_
#define ABODE_REPLICATION_SOCKET_TUNING_H_

#include <uv.h>

#include <string>

#include "absl/status/status.h"

namespace abode::replication {

// TCP_NODELAY, TCP_SYNCNT and TCP_USER_TIMEOUT (3 election timeouts) on every TCP handle of `loop`.
void TuneSockets(uv_loop_t* loop, unsigned election_timeout_ms);
// Listens again with SOMAXCONN on every listening TCP handle of `loop`.
void WidenListenBacklog(uv_loop_t* loop);
// Binds an IPv4 HOST:PORT the way libuv does (SO_REUSEADDR) and returns the system's reason when that fails
// (c-raft reports only "I/O error").
absl::Status CheckListenAddress(const std::string& address);

}  // namespace abode::replication

#endif  // ABODE_REPLICATION_SOCKET_TUNING_H_

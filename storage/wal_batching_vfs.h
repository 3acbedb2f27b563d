// A SQLite VFS that writes each WAL commit with one system call.
//
// SQLite appends a transaction to the WAL one frame at a time, and each frame with two writes: its 24-byte
// header, then the page. A transaction of 20 pages costs 40 pwrite calls, on the raft loop thread, where
// they were the largest single item in a profile of the allocator under load. This VFS wraps the default
// one and, for WAL files only, gathers contiguous writes in memory and hands them to the file as one
// write.
//
// When the gathered writes reach the file matters, and the VFS keeps SQLite's own order:
//  - before any other operation on the WAL file (read, sync, truncate, size, close) and before a write
//    that does not continue the gathered run;
//  - before the commit becomes visible: SQLite publishes new WAL frames to readers by writing the
//    wal-index header in shared memory, around a memory barrier on the database file (xShmBarrier). The
//    barrier first writes out the connection's gathered WAL writes, so no reader or checkpointer can see a
//    frame that is not yet in the file.
// A crash that loses gathered writes loses a commit that no one could see yet; SQLite's WAL recovery drops
// a torn tail by its checksums, exactly as after a power loss under synchronous=NORMAL.
#ifndef ABODE_STORAGE_WAL_BATCHING_VFS_H_
#define ABODE_STORAGE_WAL_BATCHING_VFS_H_

#include <sqlite3.h>

#include <cstdint>

namespace abode::storage {

// Registers the VFS (once, thread-safe; not as the default) and returns its name for sqlite3_open_v2.
const char* WalBatchingVfsName();

// What a connection's WAL file received and what it issued, through sqlite3_file_control(db, "main",
// kWalBatchingStatsOpcode, &stats) on a connection opened with this VFS.
struct WalBatchingStats {
  uint64_t writes_received = 0;  // xWrite calls from SQLite
  uint64_t writes_issued = 0;    // writes made to the file
};
inline constexpr int kWalBatchingStatsOpcode = 0x61626f64;  // outside SQLite's own SQLITE_FCNTL_ range

}  // namespace abode::storage

#endif  // ABODE_STORAGE_WAL_BATCHING_VFS_H_

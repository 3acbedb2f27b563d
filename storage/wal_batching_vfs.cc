#include "storage/wal_batching_vfs.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>

namespace abode::storage {
namespace {

constexpr char kName[] = "abode-wal-batching";
constexpr int kFrameHeaderSize = 24;             // WAL_FRAME_HDRSIZE
constexpr size_t kMaxGathered = size_t{4} << 20;  // a larger transaction goes to the file in several runs
constexpr size_t kMaxWrite = 0x1f000;            // per write call (see Flush)

// One open file. SQLite allocates szOsFile bytes for it; the wrapped file lives right behind this struct.
struct File {
  sqlite3_file base;
  sqlite3_file* real;
  File* wal;  // a database file: the WAL file its connection opened, if any
  File* db;   // a WAL file: the database file of its connection
  bool is_wal;
  bool commit_page_next;  // the last write was the header of a commit frame: its page comes next
  unsigned char* buf;
  size_t len;
  size_t cap;
  sqlite3_int64 off;
  WalBatchingStats stats;
};

constexpr size_t kRealOffset = (sizeof(File) + 7) & ~size_t{7};

sqlite3_vfs* Real(sqlite3_vfs* vfs) { return static_cast<sqlite3_vfs*>(vfs->pAppData); }
File* Of(sqlite3_file* f) { return reinterpret_cast<File*>(f); }
const sqlite3_io_methods* RealMethods(File* f) { return f->real->pMethods; }

int Flush(File* f) {
  // The unix VFS writes at most 128 KiB per call (it masks the length with 0x1ffff): larger runs go in
  // pieces of kMaxWrite.
  for (size_t done = 0; done < f->len;) {
    const size_t n = std::min(f->len - done, kMaxWrite);
    const int rc = RealMethods(f)->xWrite(f->real, f->buf + done, static_cast<int>(n),
                                          f->off + static_cast<sqlite3_int64>(done));
    ++f->stats.writes_issued;
    if (rc != SQLITE_OK) {
      f->len = 0;
      return rc;
    }
    done += n;
  }
  f->len = 0;
  return SQLITE_OK;
}

// Appends to the gathered run; false when out of memory.
bool Gather(File* f, const void* data, size_t n, sqlite3_int64 off) {
  if (f->len == 0) f->off = off;
  if (f->len + n > f->cap) {
    size_t cap = f->cap == 0 ? 256 * 1024 : f->cap;
    while (cap < f->len + n) cap *= 2;
    auto* grown = static_cast<unsigned char*>(sqlite3_realloc64(f->buf, cap));
    if (grown == nullptr) return false;
    f->buf = grown;
    f->cap = cap;
  }
  std::memcpy(f->buf + f->len, data, n);
  f->len += n;
  return true;
}

uint32_t BigEndian32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

int xClose(sqlite3_file* file) {
  File* f = Of(file);
  int rc = f->is_wal ? Flush(f) : SQLITE_OK;
  if (f->is_wal && f->db != nullptr && f->db->wal == f) f->db->wal = nullptr;
  if (!f->is_wal && f->wal != nullptr) f->wal->db = nullptr;
  sqlite3_free(f->buf);
  f->buf = nullptr;
  const int closed = RealMethods(f)->xClose(f->real);
  return rc != SQLITE_OK ? rc : closed;
}

int xRead(sqlite3_file* file, void* out, int n, sqlite3_int64 off) {
  File* f = Of(file);
  if (int rc = Flush(f); rc != SQLITE_OK) return rc;
  return RealMethods(f)->xRead(f->real, out, n, off);
}

int xWrite(sqlite3_file* file, const void* data, int n, sqlite3_int64 off) {
  File* f = Of(file);
  if (!f->is_wal) return RealMethods(f)->xWrite(f->real, data, n, off);
  ++f->stats.writes_received;
  if (f->len > 0 && off != f->off + static_cast<sqlite3_int64>(f->len)) {
    if (int rc = Flush(f); rc != SQLITE_OK) return rc;
  }
  if (!Gather(f, data, static_cast<size_t>(n), off)) {
    if (int rc = Flush(f); rc != SQLITE_OK) return rc;
    ++f->stats.writes_issued;
    return RealMethods(f)->xWrite(f->real, data, n, off);
  }
  // A frame header carries the database size after commit in bytes 4..7: non-zero only on a commit frame.
  // Its page is the last write of the commit, so the gathered run goes to the file with it, and a failure
  // (a full disk, say) reaches SQLite as the commit's own error.
  const bool commit_page = f->commit_page_next;
  f->commit_page_next = n == kFrameHeaderSize && BigEndian32(static_cast<const unsigned char*>(data) + 4) != 0;
  if (commit_page || f->len >= kMaxGathered) return Flush(f);
  return SQLITE_OK;
}

int xTruncate(sqlite3_file* file, sqlite3_int64 size) {
  File* f = Of(file);
  if (int rc = Flush(f); rc != SQLITE_OK) return rc;
  return RealMethods(f)->xTruncate(f->real, size);
}

int xSync(sqlite3_file* file, int flags) {
  File* f = Of(file);
  if (int rc = Flush(f); rc != SQLITE_OK) return rc;
  return RealMethods(f)->xSync(f->real, flags);
}

int xFileSize(sqlite3_file* file, sqlite3_int64* size) {
  File* f = Of(file);
  if (int rc = Flush(f); rc != SQLITE_OK) return rc;
  return RealMethods(f)->xFileSize(f->real, size);
}

int xLock(sqlite3_file* file, int level) { return RealMethods(Of(file))->xLock(Of(file)->real, level); }
int xUnlock(sqlite3_file* file, int level) { return RealMethods(Of(file))->xUnlock(Of(file)->real, level); }
int xCheckReservedLock(sqlite3_file* file, int* out) {
  return RealMethods(Of(file))->xCheckReservedLock(Of(file)->real, out);
}

int xFileControl(sqlite3_file* file, int op, void* arg) {
  File* f = Of(file);
  if (op == kWalBatchingStatsOpcode) {
    const File* wal = f->is_wal ? f : f->wal;
    *static_cast<WalBatchingStats*>(arg) = wal != nullptr ? wal->stats : WalBatchingStats{};
    return SQLITE_OK;
  }
  if (f->is_wal) {
    if (int rc = Flush(f); rc != SQLITE_OK) return rc;
  }
  return RealMethods(f)->xFileControl(f->real, op, arg);
}

int xSectorSize(sqlite3_file* file) { return RealMethods(Of(file))->xSectorSize(Of(file)->real); }
int xDeviceCharacteristics(sqlite3_file* file) {
  return RealMethods(Of(file))->xDeviceCharacteristics(Of(file)->real);
}

int xShmMap(sqlite3_file* file, int page, int size, int extend, void volatile** out) {
  return RealMethods(Of(file))->xShmMap(Of(file)->real, page, size, extend, out);
}
int xShmLock(sqlite3_file* file, int offset, int n, int flags) {
  return RealMethods(Of(file))->xShmLock(Of(file)->real, offset, n, flags);
}
int xShmUnmap(sqlite3_file* file, int delete_flag) {
  return RealMethods(Of(file))->xShmUnmap(Of(file)->real, delete_flag);
}

// SQLite publishes a commit to readers around this barrier. Every commit was written out with its commit
// frame already (see xWrite); were anything still gathered here, it must reach the file first, and a write
// that fails at this point cannot be reported: readers would be shown frames the file does not hold.
void xShmBarrier(sqlite3_file* file) {
  File* f = Of(file);
  if (f->wal != nullptr && Flush(f->wal) != SQLITE_OK) {
    std::fprintf(stderr, "abode: cannot write the SQLite WAL before publishing a commit; stopping\n");
    std::abort();
  }
  RealMethods(f)->xShmBarrier(f->real);
}

int xFetch(sqlite3_file* file, sqlite3_int64 off, int n, void** out) {
  File* f = Of(file);
  if (int rc = Flush(f); rc != SQLITE_OK) return rc;
  return RealMethods(f)->xFetch(f->real, off, n, out);
}
int xUnfetch(sqlite3_file* file, sqlite3_int64 off, void* p) {
  return RealMethods(Of(file))->xUnfetch(Of(file)->real, off, p);
}

constexpr sqlite3_io_methods kMethods = {
    3,        xClose,      xRead,   xWrite,    xTruncate,   xSync,
    xFileSize, xLock,      xUnlock, xCheckReservedLock, xFileControl, xSectorSize,
    xDeviceCharacteristics, xShmMap, xShmLock, xShmBarrier, xShmUnmap, xFetch,
    xUnfetch,
};

int xOpen(sqlite3_vfs* vfs, sqlite3_filename name, sqlite3_file* file, int flags, int* out_flags) {
  File* f = new (file) File();  // SQLite hands over szOsFile bytes, uninitialised
  f->real = reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(file) + kRealOffset);
  const int rc = Real(vfs)->xOpen(Real(vfs), name, f->real, flags, out_flags);
  if (rc != SQLITE_OK || f->real->pMethods == nullptr) {
    file->pMethods = nullptr;  // SQLite does not close a file whose open failed
    return rc;
  }
  // The real file's methods must offer what ours forward to (the unix VFS offers version 3).
  if (f->real->pMethods->iVersion < 3) {
    f->real->pMethods->xClose(f->real);
    file->pMethods = nullptr;
    return SQLITE_CANTOPEN;
  }
  f->is_wal = (flags & SQLITE_OPEN_WAL) != 0;
  if (f->is_wal && name != nullptr) {
    sqlite3_file* db = sqlite3_database_file_object(name);
    if (db != nullptr && db->pMethods == &kMethods) {
      f->db = Of(db);
      f->db->wal = f;
    }
  }
  file->pMethods = &kMethods;
  return SQLITE_OK;
}

int xDelete(sqlite3_vfs* vfs, const char* name, int sync_dir) { return Real(vfs)->xDelete(Real(vfs), name, sync_dir); }
int xAccess(sqlite3_vfs* vfs, const char* name, int flags, int* out) {
  return Real(vfs)->xAccess(Real(vfs), name, flags, out);
}
int xFullPathname(sqlite3_vfs* vfs, const char* name, int n, char* out) {
  return Real(vfs)->xFullPathname(Real(vfs), name, n, out);
}
void* xDlOpen(sqlite3_vfs* vfs, const char* name) { return Real(vfs)->xDlOpen(Real(vfs), name); }
void xDlError(sqlite3_vfs* vfs, int n, char* out) { Real(vfs)->xDlError(Real(vfs), n, out); }
void (*xDlSym(sqlite3_vfs* vfs, void* handle, const char* symbol))(void) {
  return Real(vfs)->xDlSym(Real(vfs), handle, symbol);
}
void xDlClose(sqlite3_vfs* vfs, void* handle) { Real(vfs)->xDlClose(Real(vfs), handle); }
int xRandomness(sqlite3_vfs* vfs, int n, char* out) { return Real(vfs)->xRandomness(Real(vfs), n, out); }
int xSleep(sqlite3_vfs* vfs, int us) { return Real(vfs)->xSleep(Real(vfs), us); }
int xCurrentTime(sqlite3_vfs* vfs, double* out) { return Real(vfs)->xCurrentTime(Real(vfs), out); }
int xGetLastError(sqlite3_vfs* vfs, int n, char* out) { return Real(vfs)->xGetLastError(Real(vfs), n, out); }
int xCurrentTimeInt64(sqlite3_vfs* vfs, sqlite3_int64* out) {
  return Real(vfs)->xCurrentTimeInt64(Real(vfs), out);
}

}  // namespace

const char* WalBatchingVfsName() {
  // Registered once per process and never changed after: SQLite keeps a pointer to it.
  static std::once_flag once;
  static sqlite3_vfs vfs;
  std::call_once(once, [] {
    sqlite3_vfs* real = sqlite3_vfs_find(nullptr);
    vfs = sqlite3_vfs{};
    vfs.iVersion = 2;
    vfs.szOsFile = static_cast<int>(kRealOffset) + real->szOsFile;
    vfs.mxPathname = real->mxPathname;
    vfs.zName = kName;
    vfs.pAppData = real;
    vfs.xOpen = xOpen;
    vfs.xDelete = xDelete;
    vfs.xAccess = xAccess;
    vfs.xFullPathname = xFullPathname;
    vfs.xDlOpen = xDlOpen;
    vfs.xDlError = xDlError;
    vfs.xDlSym = xDlSym;
    vfs.xDlClose = xDlClose;
    vfs.xRandomness = xRandomness;
    vfs.xSleep = xSleep;
    vfs.xCurrentTime = xCurrentTime;
    vfs.xGetLastError = xGetLastError;
    vfs.xCurrentTimeInt64 = xCurrentTimeInt64;
    sqlite3_vfs_register(&vfs, /*makeDflt=*/0);
  });
  return kName;
}

}  // namespace abode::storage

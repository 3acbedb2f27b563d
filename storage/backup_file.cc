#include "storage/backup_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"

namespace abode::storage {
namespace {

absl::Status Errno(absl::string_view what, const std::string& path) {
  const int err = errno;
  const std::string message = absl::StrCat(what, " ", path, ": ", std::strerror(err));
  if (err == ENOENT) return absl::NotFoundError(message);
  if (err == EACCES || err == EPERM) return absl::PermissionDeniedError(message);
  return absl::InternalError(message);
}

absl::Status WriteAll(int fd, absl::string_view data, const std::string& path) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Errno("backup: write", path);
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

std::string Prologue(const v1::BackupHeader& header) {
  std::string out(kBackupMagic, sizeof kBackupMagic);
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((kBackupFormatVersion >> (8 * i)) & 0xff));
  google::protobuf::io::StringOutputStream stream(&out);
  google::protobuf::io::CodedOutputStream coded(&stream);
  coded.WriteVarint32(static_cast<uint32_t>(header.ByteSizeLong()));
  header.SerializeToCodedStream(&coded);
  return out;
}

}  // namespace

uint64_t Fnv1a64(absl::string_view data) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : data) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

absl::Status VerifyBackup(const v1::BackupHeader& header, absl::string_view snapshot) {
  if (snapshot.size() != header.size()) {
    return absl::DataLossError(
        absl::StrCat("backup: the snapshot holds ", snapshot.size(), " bytes, the header says ", header.size()));
  }
  if (const uint64_t sum = Fnv1a64(snapshot); sum != header.checksum()) {
    return absl::DataLossError(absl::StrFormat("backup: the snapshot's checksum is %016x, the header says %016x", sum,
                                               header.checksum()));
  }
  return absl::OkStatus();
}

absl::Status WriteBackupFile(const std::string& path, const Backup& backup) {
  if (absl::Status s = VerifyBackup(backup.header, backup.snapshot); !s.ok()) return s;
  const size_t slash = path.rfind('/');
  const std::string folder = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  const std::string tmp = absl::StrCat(path, ".tmp-", ::getpid());
  absl::Status s = [&]() -> absl::Status {
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return Errno("backup: create", tmp);
    absl::Cleanup closer = [fd] { ::close(fd); };
    if (absl::Status w = WriteAll(fd, Prologue(backup.header), tmp); !w.ok()) return w;
    if (absl::Status w = WriteAll(fd, backup.snapshot, tmp); !w.ok()) return w;
    if (::fsync(fd) != 0) return Errno("backup: fsync", tmp);
    return absl::OkStatus();
  }();
  if (s.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) s = Errno("backup: rename to", path);
  if (!s.ok()) {
    ::unlink(tmp.c_str());
    return s;
  }
  const int dir = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return Errno("backup: open folder", folder);
  absl::Cleanup closer = [dir] { ::close(dir); };
  if (::fsync(dir) != 0) return Errno("backup: fsync folder", folder);
  return absl::OkStatus();
}

absl::StatusOr<Backup> ReadBackupFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Errno("backup: open", path);
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return Errno("backup: read", path);
  const std::string data = std::move(text).str();
  constexpr size_t kPrologue = sizeof kBackupMagic + 4;
  if (data.size() < kPrologue || std::memcmp(data.data(), kBackupMagic, sizeof kBackupMagic) != 0) {
    return absl::FailedPreconditionError(absl::StrCat("backup: ", path, " is not an abode backup"));
  }
  uint32_t version = 0;
  for (int i = 0; i < 4; ++i) version |= static_cast<uint32_t>(static_cast<unsigned char>(data[8 + i])) << (8 * i);
  if (version != kBackupFormatVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat("backup: ", path, " has format version ", version, "; this build reads ", kBackupFormatVersion));
  }
  google::protobuf::io::CodedInputStream coded(reinterpret_cast<const uint8_t*>(data.data()) + kPrologue,
                                               static_cast<int>(std::min<size_t>(data.size() - kPrologue, INT32_MAX)));
  uint32_t header_size = 0;
  Backup backup;
  if (!coded.ReadVarint32(&header_size)) return absl::DataLossError(absl::StrCat("backup: ", path, ": truncated header"));
  const auto limit = coded.PushLimit(static_cast<int>(header_size));
  if (!backup.header.ParseFromCodedStream(&coded) || coded.BytesUntilLimit() != 0) {
    return absl::DataLossError(absl::StrCat("backup: ", path, ": truncated or damaged header"));
  }
  coded.PopLimit(limit);
  const size_t offset = kPrologue + static_cast<size_t>(coded.CurrentPosition());
  backup.snapshot = data.substr(offset);
  if (absl::Status s = VerifyBackup(backup.header, backup.snapshot); !s.ok()) {
    return absl::DataLossError(absl::StrCat(path, ": ", s.message()));
  }
  return backup;
}

}  // namespace abode::storage

#include "storage/sqlite.h"

#include "absl/strings/str_cat.h"

namespace abode::storage {

absl::Status SqliteError(sqlite3* db, int rc, absl::string_view what) {
  const std::string msg = absl::StrCat(what, ": ", db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  switch (rc & 0xff) {
    case SQLITE_CONSTRAINT:
      return absl::FailedPreconditionError(msg);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::UnavailableError(msg);
    case SQLITE_FULL:
      return absl::ResourceExhaustedError(msg);
    default:
      return absl::InternalError(msg);
  }
}

Statement& Statement::Bind(int i, int64_t v) {
  sqlite3_bind_int64(stmt_.get(), i, v);
  return *this;
}

Statement& Statement::Bind(int i, absl::string_view text) {
  sqlite3_bind_text(stmt_.get(), i, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
  return *this;
}

Statement& Statement::BindBlob(int i, absl::string_view bytes) {
  sqlite3_bind_blob(stmt_.get(), i, bytes.data(), static_cast<int>(bytes.size()), SQLITE_TRANSIENT);
  return *this;
}

Statement& Statement::BindNull(int i) {
  sqlite3_bind_null(stmt_.get(), i);
  return *this;
}

absl::StatusOr<bool> Statement::Step() {
  const int rc = sqlite3_step(stmt_.get());
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  sqlite3* db = sqlite3_db_handle(stmt_.get());
  absl::Status s = SqliteError(db, rc, sqlite3_sql(stmt_.get()));
  sqlite3_reset(stmt_.get());
  return s;
}

absl::Status Statement::Run() {
  auto r = Step();
  Reset();
  if (!r.ok()) return r.status();
  return absl::OkStatus();
}

absl::Status Statement::EachRow(absl::FunctionRef<void()> row) {
  return EachRowUntilError([&] {
    row();
    return absl::OkStatus();
  });
}

absl::Status Statement::EachRowUntilError(absl::FunctionRef<absl::Status()> row) {
  absl::Status s;
  for (;;) {
    auto more = Step();
    if (!more.ok()) {
      s = more.status();
      break;
    }
    if (!*more) break;
    s = row();
    if (!s.ok()) break;
  }
  Reset();
  return s;
}

void Statement::Reset() {
  sqlite3_reset(stmt_.get());
  sqlite3_clear_bindings(stmt_.get());
}

absl::string_view Statement::Text(int col) const {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_.get(), col));
  if (p == nullptr) return {};
  return absl::string_view(p, static_cast<size_t>(sqlite3_column_bytes(stmt_.get(), col)));
}

absl::string_view Statement::Blob(int col) const {
  const auto* p = static_cast<const char*>(sqlite3_column_blob(stmt_.get(), col));
  if (p == nullptr) return {};
  return absl::string_view(p, static_cast<size_t>(sqlite3_column_bytes(stmt_.get(), col)));
}

absl::StatusOr<Database> Database::Open(const std::string& path, bool read_only, const char* vfs) {
  sqlite3* raw = nullptr;
  const int flags = (read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
                    SQLITE_OPEN_NOMUTEX;
  const int rc = sqlite3_open_v2(path.c_str(), &raw, flags, vfs);
  Database db;
  db.db_.reset(raw);
  if (rc != SQLITE_OK) return SqliteError(raw, rc, absl::StrCat("open ", path));
  sqlite3_extended_result_codes(raw, 1);
  sqlite3_busy_timeout(raw, 5000);
  return db;
}

absl::Status Database::Exec(absl::string_view sql) {
  char* err = nullptr;
  const std::string s(sql);
  const int rc = sqlite3_exec(db_.get(), s.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    absl::Status st = SqliteError(db_.get(), rc, err ? err : s);
    sqlite3_free(err);
    return st;
  }
  return absl::OkStatus();
}

absl::StatusOr<Statement> Database::Prepare(absl::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  const int rc = sqlite3_prepare_v3(db_.get(), sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT,
                                    &stmt, nullptr);
  if (rc != SQLITE_OK) return SqliteError(db_.get(), rc, absl::StrCat("prepare ", sql));
  return Statement(stmt);
}

absl::Status Database::PrepareAll(std::initializer_list<std::pair<Statement*, std::string>> statements) {
  for (const auto& [stmt, sql] : statements) {
    auto s = Prepare(sql);
    if (!s.ok()) return s.status();
    *stmt = std::move(*s);
  }
  return absl::OkStatus();
}

absl::Status Database::ForEachRow(absl::string_view sql, absl::FunctionRef<absl::Status(const Statement&)> row) {
  auto stmt = Prepare(sql);
  if (!stmt.ok()) return stmt.status();
  return stmt->EachRowUntilError([&] { return row(*stmt); });
}

}  // namespace abode::storage

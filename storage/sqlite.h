// Thin RAII wrappers over the SQLite C API. Errors are absl::Status values carrying SQLite's message.
#ifndef ABODE_STORAGE_SQLITE_H_
#define ABODE_STORAGE_SQLITE_H_

#include <sqlite3.h>

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <utility>
#include "absl/strings/string_view.h"

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace abode::storage {

struct SqliteCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct StatementFinalizer {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};

// A prepared statement. Not thread-safe: belongs to the connection's owner.
class Statement {
 public:
  Statement() = default;
  explicit Statement(sqlite3_stmt* s) : stmt_(s) {}

  Statement& Bind(int i, int64_t v);
  Statement& Bind(int i, absl::string_view text);  // TEXT
  Statement& BindBlob(int i, absl::string_view bytes);
  Statement& BindNull(int i);

  // Steps once: true when a row is available, false when done.
  absl::StatusOr<bool> Step();
  // Steps to completion, expecting no rows; resets the statement.
  absl::Status Run();
  // Steps to completion, calling `row` at each row; resets the statement (also after an error).
  absl::Status EachRow(absl::FunctionRef<void()> row);
  // The same, stopping at the first error `row` returns.
  absl::Status EachRowUntilError(absl::FunctionRef<absl::Status()> row);
  void Reset();

  int64_t Int(int col) const { return sqlite3_column_int64(stmt_.get(), col); }
  absl::string_view Text(int col) const;
  absl::string_view Blob(int col) const;
  bool IsNull(int col) const { return sqlite3_column_type(stmt_.get(), col) == SQLITE_NULL; }

 private:
  std::unique_ptr<sqlite3_stmt, StatementFinalizer> stmt_;
};

// One SQLite connection.
class Database {
 public:
  // `vfs`: the name of a registered SQLite VFS, or null for the default one.
  static absl::StatusOr<Database> Open(const std::string& path, bool read_only, const char* vfs = nullptr);

  absl::Status Exec(absl::string_view sql);
  absl::StatusOr<Statement> Prepare(absl::string_view sql);
  // Prepares each statement into its slot; stops at the first error.
  absl::Status PrepareAll(std::initializer_list<std::pair<Statement*, std::string>> statements);
  // Runs a query, calling `row` at each row until it returns an error, which ForEachRow then returns.
  absl::Status ForEachRow(absl::string_view sql, absl::FunctionRef<absl::Status(const Statement&)> row);
  sqlite3* handle() const { return db_.get(); }
  int64_t changes() const { return sqlite3_changes64(db_.get()); }
  int64_t last_insert_rowid() const { return sqlite3_last_insert_rowid(db_.get()); }

 private:
  std::unique_ptr<sqlite3, SqliteCloser> db_;
};

// Maps an SQLite result code to a status; a constraint violation becomes FAILED_PRECONDITION.
absl::Status SqliteError(sqlite3* db, int rc, absl::string_view what);

}  // namespace abode::storage

#endif  // ABODE_STORAGE_SQLITE_H_

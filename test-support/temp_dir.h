// Tests only: a fresh directory, removed with everything in it when the TempDir goes away.
#ifndef ABODE_TEST_SUPPORT_TEMP_DIR_H_
#define ABODE_TEST_SUPPORT_TEMP_DIR_H_

#include <string>

#include "absl/strings/string_view.h"

namespace abode::test_support {

class TempDir {
 public:
  // Creates <root>/abode-<prefix>-XXXXXX, where root is $TEST_TMPDIR, else $TMPDIR, else /tmp. Aborts the
  // process with a message if the directory cannot be made: no test can run without it.
  explicit TempDir(absl::string_view prefix = "test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // path()/name.
  std::string File(absl::string_view name) const;

 private:
  std::string path_;
};

}  // namespace abode::test_support

#endif  // ABODE_TEST_SUPPORT_TEMP_DIR_H_

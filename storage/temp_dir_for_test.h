// Tests only: a fresh directory under the test temp dir, removed with everything in it.
#ifndef ABODE_STORAGE_TEMP_DIR_FOR_TEST_H_
#define ABODE_STORAGE_TEMP_DIR_FOR_TEST_H_

#include <stdlib.h>

#include <filesystem>
#include <string>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "gtest/gtest.h"

namespace abode::storage {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = ::testing::TempDir() + "abode-storage-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) ADD_FAILURE() << "mkdtemp " << tmpl;
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string File(absl::string_view name) const { return absl::StrCat(path_, "/", name); }

 private:
  std::string path_;
};

}  // namespace abode::storage

#endif  // ABODE_STORAGE_TEMP_DIR_FOR_TEST_H_

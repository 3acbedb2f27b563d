#include "test-support/temp_dir.h"

#include <stdlib.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"

namespace abode::test_support {
namespace {

std::string Root() {
  for (const char* var : {"TEST_TMPDIR", "TMPDIR"}) {
    const char* v = ::getenv(var);
    if (v != nullptr && *v != '\0') return v;
  }
  return "/tmp";
}

}  // namespace

TempDir::TempDir(absl::string_view prefix) {
  std::string tmpl = absl::StrCat(Root(), "/abode-", prefix, "-XXXXXX");
  if (::mkdtemp(tmpl.data()) == nullptr) {
    std::fprintf(stderr, "mkdtemp %s: %s\n", tmpl.c_str(), std::strerror(errno));
    std::abort();
  }
  path_ = std::move(tmpl);
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string TempDir::File(absl::string_view name) const { return absl::StrCat(path_, "/", name); }

}  // namespace abode::test_support

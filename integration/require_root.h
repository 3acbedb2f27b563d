// The root check of the tests that need network namespaces or nftables.
#ifndef ABODE_INTEGRATION_REQUIRE_ROOT_H_
#define ABODE_INTEGRATION_REQUIRE_ROOT_H_

#include <unistd.h>

#include <cstdlib>

#include <gtest/gtest.h>

// In a test body: without root, fails under CI (which runs as root) and skips elsewhere.
#define ABODE_REQUIRE_ROOT(ci_failure, skip_reason)             \
  do {                                                          \
    if (::geteuid() != 0) {                                     \
      if (std::getenv("CI") != nullptr) FAIL() << (ci_failure); \
      GTEST_SKIP() << (skip_reason);                            \
    }                                                           \
  } while (false)

#endif  // ABODE_INTEGRATION_REQUIRE_ROOT_H_

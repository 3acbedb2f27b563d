// A process's resident memory, as the benchmarks report it.
#ifndef ABODE_TEST_SUPPORT_PROCESS_MEMORY_H_
#define ABODE_TEST_SUPPORT_PROCESS_MEMORY_H_

#include <fstream>
#include <string>

namespace abode::test_support {

// VmRSS of process `pid` in KiB (/proc/PID/status); -1 when it cannot be read.
inline long VmRssKiB(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  while (in >> key) {
    if (key == "VmRSS:") {
      long kib = -1;
      in >> kib;
      return kib;
    }
    std::string rest;
    std::getline(in, rest);
  }
  return -1;
}

}  // namespace abode::test_support

#endif  // ABODE_TEST_SUPPORT_PROCESS_MEMORY_H_

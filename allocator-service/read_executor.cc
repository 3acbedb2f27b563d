#include "allocator-service/read_executor.h"

#include <string>

#include "spdlog/spdlog.h"

namespace abode::allocator {

ReadExecutor::ReadExecutor(size_t threads, const char* name, ThreadPriority priority,
                           std::function<void()> observer)
    : observer_(std::move(observer)),
      replies_(1, "abode-reply"),
      reads_(threads, name, [priority] {
        if (absl::Status s = SetThisThreadPriority(priority); !s.ok()) {
          spdlog::warn("a read thread keeps (some of) the process's priority: {}", std::string(s.message()));
        }
      }) {}

void ReadExecutor::Post(Task task) {
  if (!observer_) {
    reads_.Post(std::move(task));
    return;
  }
  reads_.Post([this, task = std::move(task)]() mutable {
    observer_();
    std::move(task)();
  });
}

}  // namespace abode::allocator

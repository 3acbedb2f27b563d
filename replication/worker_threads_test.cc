// How the answers of one entry are spread over the completion threads.
#include "replication/worker_threads.h"

#include <future>
#include <set>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "absl/synchronization/mutex.h"

namespace abode::replication {
namespace {

// A large entry's callers are answered by both completion threads, each taking a run of them in order;
// small entries stay on one thread.
TEST(AnswerChunksTest, SpreadsLargeEntriesOverTheThreadsInRunsOfAtLeastTheMinimum) {
  EXPECT_TRUE(AnswerChunks(0, 2).empty());
  EXPECT_EQ(AnswerChunks(1, 2), std::vector<size_t>({1}));
  EXPECT_EQ(AnswerChunks(2 * kMinAnswersPerChunk - 1, 2), std::vector<size_t>({2 * kMinAnswersPerChunk - 1}));
  EXPECT_EQ(AnswerChunks(2 * kMinAnswersPerChunk, 2),
            std::vector<size_t>({kMinAnswersPerChunk, kMinAnswersPerChunk}));
  EXPECT_EQ(AnswerChunks(51, 2), std::vector<size_t>({26, 25}));
  EXPECT_EQ(AnswerChunks(1000, 2), std::vector<size_t>({500, 500}));
  EXPECT_EQ(AnswerChunks(50, 4), std::vector<size_t>({13, 13, 12, 12}));
  EXPECT_EQ(AnswerChunks(17, 4), std::vector<size_t>({9, 8}));  // never below the minimum
  EXPECT_EQ(AnswerChunks(40, 1), std::vector<size_t>({40}));
  EXPECT_EQ(AnswerChunks(40, 0), std::vector<size_t>({40}));  // no threads configured: still one chunk
}

// Tasks posted before the threads stop all run.
TEST(WorkerThreadsTest, RunsEveryPostedTaskBeforeStopping) {
  std::vector<std::promise<void>> ran(100);
  {
    WorkerThreads threads(2, "abode-test");
    for (auto& p : ran) threads.Post([&p] { p.set_value(); });
  }
  for (auto& p : ran) {
    EXPECT_EQ(p.get_future().wait_for(std::chrono::seconds(0)), std::future_status::ready);
  }
}

// The start hook has run on every thread, and not on the constructing one, when the constructor returns.
TEST(WorkerThreadsTest, RunsTheStartHookOnEveryThreadBeforeReturning) {
  absl::Mutex mu;
  std::set<std::thread::id> started;
  WorkerThreads threads(3, "abode-test", [&] {
    absl::MutexLock lock(&mu);
    started.insert(std::this_thread::get_id());
  });
  absl::MutexLock lock(&mu);
  EXPECT_EQ(started.size(), 3u);
  EXPECT_EQ(started.count(std::this_thread::get_id()), 0u);
}

}  // namespace
}  // namespace abode::replication

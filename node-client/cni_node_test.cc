#include "cni_node.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "cni/plugin.h"

namespace abode::node {
namespace {

using Clock = std::chrono::steady_clock;

// An allocator that cannot be reached.
class UnreachableAllocator final : public CniAllocator {
 public:
  absl::StatusOr<v1::Pool> GetPool(const std::string&, const CallContext&) override { return Down(); }
  absl::StatusOr<v1::Pool> CreatePool(const v1::PoolSpec&, const CallContext&) override { return Down(); }
  absl::StatusOr<v1::Allocation> Allocate(const v1::AllocateRequest&, const CallContext&) override { return Down(); }
  absl::StatusOr<v1::AllocateManyResponse> AllocateMany(const v1::AllocateManyRequest&, const CallContext&) override {
    return Down();
  }
  absl::StatusOr<v1::ReleaseResponse> Release(const v1::ReleaseRequest&, const CallContext&) override {
    return v1::ReleaseResponse();
  }
  absl::StatusOr<v1::GetAllocationResponse> GetAllocation(const v1::GetAllocationRequest&,
                                                          const CallContext&) override {
    return Down();
  }
  absl::StatusOr<v1::ListAllocationsResponse> ListAllocations(const v1::ListAllocationsRequest&,
                                                              const CallContext&) override {
    return Down();
  }

 private:
  static absl::Status Down() { return absl::UnavailableError("connection refused"); }
};

// The value of `family`'s sample with `labels` (counter value or histogram count), or -1.
double Sample(const prometheus::Registry& registry, const std::string& family,
              const std::map<std::string, std::string>& labels) {
  for (const prometheus::MetricFamily& f : registry.Collect()) {
    if (f.name != family) continue;
    for (const prometheus::ClientMetric& m : f.metric) {
      std::map<std::string, std::string> have;
      for (const auto& l : m.label) have[l.name] = l.value;
      if (have != labels) continue;
      return f.type == prometheus::MetricType::Histogram ? static_cast<double>(m.histogram.sample_count)
                                                         : m.counter.value;
    }
  }
  return -1;
}

TEST(CniNodeTest, CountsRequestsByVerbAndAnswerAndRecordsThePluginsSpan) {
  const std::string dir = std::filesystem::temp_directory_path() / ("abode-cni-node-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto node = CniNode::Start(dir + "/cni.sock", "node-a", std::make_unique<UnreachableAllocator>());
  ASSERT_TRUE(node.ok()) << node.status();
  cni::LocalRequest add;
  add.verb = "ADD";
  add.container_id = "c1";
  add.ifname = "eth0";
  add.plugin_start_unix_ns = 1;
  add.timeout_ms = 1000;
  cni::PoolRequest pool;
  pool.name = "10.1.0.0-24";
  pool.cidr = *cni::Prefix::Parse("10.1.0.0/24");
  add.pools = {pool};
  auto answer = cni::CallNodeOverSocket(dir + "/cni.sock", add, Clock::now() + std::chrono::seconds(5));
  ASSERT_TRUE(answer.ok());
  ASSERT_TRUE(answer->error.has_value());
  EXPECT_EQ(answer->error->code, cni::kTryAgainLater);
  cni::LocalRequest del = add;
  del.verb = "DEL";
  ASSERT_TRUE(cni::CallNodeOverSocket(dir + "/cni.sock", del, Clock::now() + std::chrono::seconds(5)).ok());
  // The server records a request after the plugin's closing frame, each on the worker that served it, so the
  // two may land in either order: wait for both (bounded).
  const prometheus::Registry& registry = *(*node)->metrics();
  const auto give_up = Clock::now() + std::chrono::seconds(10);
  while ((Sample(registry, "abode_node_cni_plugin_duration_seconds", {{"verb", "ADD"}}) < 1 ||
          Sample(registry, "abode_node_cni_requests_total", {{"verb", "DEL"}, {"result", "ok"}}) < 1) &&
         Clock::now() < give_up) {
    std::this_thread::yield();
  }
  EXPECT_EQ(Sample(registry, "abode_node_cni_requests_total", {{"verb", "ADD"}, {"result", "11"}}), 1);
  EXPECT_EQ(Sample(registry, "abode_node_cni_requests_total", {{"verb", "DEL"}, {"result", "ok"}}), 1);
  EXPECT_EQ(Sample(registry, "abode_node_cni_request_duration_seconds", {{"verb", "ADD"}}), 1);
  EXPECT_EQ(Sample(registry, "abode_node_cni_plugin_duration_seconds", {{"verb", "ADD"}}), 1);
  node->reset();
  EXPECT_FALSE(std::filesystem::exists(dir + "/cni.sock"));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace abode::node

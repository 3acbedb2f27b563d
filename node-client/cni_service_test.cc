#include "cni_service.h"

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "cni/cni_invocation.h"

namespace abode::node {
namespace {

// An in-memory allocator: pools by name, addresses handed out from the pool's first host upwards.
class FakeAllocator final : public CniAllocator {
 public:
  absl::StatusOr<v1::Pool> GetPool(const std::string& name, const CallContext&) override {
    std::lock_guard lock(mu_);
    ++calls;
    if (down) return absl::UnavailableError("down");
    auto it = pools.find(name);
    if (it == pools.end()) return absl::NotFoundError("pool " + name + " not found");
    return it->second;
  }
  absl::StatusOr<v1::Pool> CreatePool(const v1::PoolSpec& spec, const CallContext&) override {
    std::lock_guard lock(mu_);
    ++calls;
    ++creates;
    if (down) return absl::UnavailableError("down");
    if (pools.count(spec.name()) > 0) return absl::AlreadyExistsError("exists");
    v1::Pool p;
    *p.mutable_spec() = spec;
    p.set_free("250");
    pools[spec.name()] = p;
    return p;
  }
  absl::StatusOr<v1::Allocation> Allocate(const v1::AllocateRequest& req, const CallContext&) override {
    std::lock_guard lock(mu_);
    ++calls;
    if (down) return absl::UnavailableError("down");
    if (absl::Status s = Refusal(req.pool()); !s.ok()) return s;
    return Take(req);
  }
  // All items or none, as the allocator applies it.
  absl::StatusOr<v1::AllocateManyResponse> AllocateMany(const v1::AllocateManyRequest& req,
                                                        const CallContext&) override {
    std::lock_guard lock(mu_);
    ++calls;
    ++allocate_many_calls;
    if (down) return absl::UnavailableError("down");
    for (int i = 0; i < req.items_size(); ++i) {
      if (absl::Status s = Refusal(req.items(i).pool()); !s.ok()) {
        return absl::Status(s.code(), absl::StrCat("items[", i, "] (pool \"", req.items(i).pool(), "\"): ", s.message()));
      }
    }
    v1::AllocateManyResponse out;
    for (const v1::AllocateItem& item : req.items()) {
      v1::AllocateRequest one;
      one.set_pool(item.pool());
      one.set_address(item.address());
      one.set_owner(req.owner());
      one.set_node(req.node());
      *one.mutable_labels() = req.labels();
      *out.add_allocations() = Take(one);
    }
    return out;
  }
  absl::Status Refusal(const std::string& pool) {
    if (fail_pool == pool) return absl::ResourceExhaustedError("pool " + pool + " is full");
    if (pools.count(pool) == 0) return absl::NotFoundError("pool not found");
    return absl::OkStatus();
  }
  v1::Allocation Take(const v1::AllocateRequest& req) {
    auto pool = pools.find(req.pool());
    for (const v1::Allocation& a : allocations) {
      if (a.owner() == req.owner() && a.pool() == req.pool()) return a;
    }
    const auto cidr = *cni::Prefix::Parse(pool->second.spec().cidr());
    v1::Allocation a;
    a.set_pool(req.pool());
    a.set_owner(req.owner());
    a.set_node(req.node());
    a.set_prefix_length(cidr.length);
    a.set_gateway(pool->second.spec().gateway());
    *a.mutable_labels() = req.labels();
    a.set_address(req.address().empty() ? cni::Ip{cidr.ip.version, cidr.ip.value + 10 + next_[req.pool()]++}.ToString()
                                        : req.address());
    allocations.push_back(a);
    return a;
  }
  absl::StatusOr<v1::ReleaseResponse> Release(const v1::ReleaseRequest& req, const CallContext&) override {
    std::lock_guard lock(mu_);
    ++calls;
    ++releases;
    if (down) return absl::UnavailableError("down");
    v1::ReleaseResponse out;
    for (auto it = allocations.begin(); it != allocations.end();) {
      if (it->owner() == req.owner() && (req.pool().empty() || req.pool() == it->pool())) {
        *out.add_released() = *it;
        it = allocations.erase(it);
      } else {
        ++it;
      }
    }
    return out;
  }
  absl::StatusOr<v1::GetAllocationResponse> GetAllocation(const v1::GetAllocationRequest& req,
                                                          const CallContext&) override {
    std::lock_guard lock(mu_);
    if (down) return absl::UnavailableError("down");
    v1::GetAllocationResponse out;
    for (const v1::Allocation& a : allocations) {
      if (a.owner() == req.owner()) *out.add_allocations() = a;
    }
    return out;
  }
  absl::StatusOr<v1::ListAllocationsResponse> ListAllocations(const v1::ListAllocationsRequest& req,
                                                              const CallContext&) override {
    std::lock_guard lock(mu_);
    if (down) return absl::UnavailableError("down");
    if (pools.count(req.pool()) == 0) return absl::NotFoundError("pool not found");
    v1::ListAllocationsResponse out;
    for (const v1::Allocation& a : allocations) {
      if (a.pool() == req.pool() && a.node() == req.node()) *out.add_allocations() = a;
    }
    return out;
  }

  std::mutex mu_;
  std::map<std::string, v1::Pool> pools;
  std::vector<v1::Allocation> allocations;
  std::map<std::string, uint32_t> next_;
  bool down = false;
  std::string fail_pool;
  int calls = 0;
  int creates = 0;
  int releases = 0;
  int allocate_many_calls = 0;
};

cni::PoolRequest Range(const std::string& cidr, const std::string& network = "") {
  cni::PoolRequest p;
  p.cidr = *cni::Prefix::Parse(cidr);
  p.name = cni::PoolNameFor(network, p.cidr);
  p.network = network;
  return p;
}

cni::LocalRequest Request(const std::string& verb, const std::string& container, std::vector<cni::PoolRequest> pools,
                          const std::string& network = "net") {
  cni::LocalRequest r;
  r.verb = verb;
  r.network = network;
  r.labels = {{cni::kLabelNetwork, network}};
  r.container_id = container;
  r.ifname = "eth0";
  r.pools = std::move(pools);
  r.timeout_ms = 2000;
  return r;
}

TEST(CniServiceTest, AddCreatesThePoolOnceAndIsIdempotent) {
  FakeAllocator allocator;
  CniService service("node-a", &allocator);
  auto first = service.Handle(Request("ADD", "c1", {Range("10.1.0.0/24")}));
  ASSERT_FALSE(first.error) << first.error->msg;
  ASSERT_EQ(first.ips.size(), 1u);
  EXPECT_EQ(first.ips[0].address, "10.1.0.10");
  EXPECT_EQ(first.ips[0].prefix_length, 24);
  EXPECT_EQ(allocator.allocations[0].owner(), "cni/c1/eth0");
  EXPECT_EQ(allocator.allocations[0].node(), "node-a");
  auto again = service.Handle(Request("ADD", "c1", {Range("10.1.0.0/24")}));
  ASSERT_FALSE(again.error);
  EXPECT_EQ(again.ips, first.ips);
  EXPECT_EQ(allocator.creates, 1);
  EXPECT_EQ(allocator.allocations.size(), 1u);
}

TEST(CniServiceTest, TwoNodesShareOnePoolAndADifferentSpecIsAConfigError) {
  FakeAllocator allocator;
  CniService a("node-a", &allocator), b("node-b", &allocator);
  ASSERT_FALSE(a.Handle(Request("ADD", "c1", {Range("10.2.0.0/24")})).error);
  auto same = b.Handle(Request("ADD", "c2", {Range("10.2.0.0/24")}));
  ASSERT_FALSE(same.error);
  EXPECT_EQ(allocator.pools.size(), 1u);
  cni::PoolRequest narrowed = Range("10.2.0.0/24");
  narrowed.range_start = "10.2.0.100";
  auto conflict = b.Handle(Request("ADD", "c3", {narrowed}));
  ASSERT_TRUE(conflict.error);
  EXPECT_EQ(conflict.error->code, cni::kInvalidConfig);
  EXPECT_NE(conflict.error->msg.find("range_start 10.2.0.100"), std::string::npos) << conflict.error->msg;
  EXPECT_NE(conflict.error->msg.find("exists as {cidr 10.2.0.0/24"), std::string::npos) << conflict.error->msg;
}

TEST(CniServiceTest, MultiRangeAddIsOneAllOrNothingRequest) {
  FakeAllocator allocator;
  CniService service("node-a", &allocator);
  const auto v4 = Range("10.3.0.0/24"), v6 = Range("fd00:3::/64");
  auto ok = service.Handle(Request("ADD", "c1", {v4, v6}));
  ASSERT_FALSE(ok.error);
  ASSERT_EQ(ok.ips.size(), 2u);
  EXPECT_EQ(ok.ips[0].address, "10.3.0.10");
  EXPECT_EQ(ok.ips[1].address, "fd00:3::a");
  EXPECT_EQ(allocator.allocate_many_calls, 1);
  for (const v1::Allocation& a : allocator.allocations) EXPECT_EQ(a.node(), "node-a");
  allocator.fail_pool = v6.name;
  auto failed = service.Handle(Request("ADD", "c2", {v4, v6}));
  ASSERT_TRUE(failed.error);
  EXPECT_EQ(failed.error->code, cni::kPoolExhausted);
  EXPECT_NE(failed.error->msg.find("items[1] (pool \"" + v6.name + "\")"), std::string::npos) << failed.error->msg;
  EXPECT_EQ(allocator.allocate_many_calls, 2);
  EXPECT_EQ(allocator.releases, 0) << "no client-side rollback";
  for (const v1::Allocation& a : allocator.allocations) EXPECT_NE(a.owner(), "cni/c2/eth0");
  // A retried ADD gets the same addresses; a single range keeps to Allocate.
  allocator.fail_pool.clear();
  auto retry = service.Handle(Request("ADD", "c1", {v4, v6}));
  ASSERT_FALSE(retry.error);
  EXPECT_EQ(retry.ips, ok.ips);
  ASSERT_FALSE(service.Handle(Request("ADD", "c3", {v4})).error);
  EXPECT_EQ(allocator.allocate_many_calls, 3);
}

TEST(CniServiceTest, MultiRangeAddCreatesAPoolDeletedSinceItWasChecked) {
  FakeAllocator allocator;
  CniService service("node-a", &allocator);
  const auto v4 = Range("10.4.0.0/24"), v6 = Range("fd00:4::/64");
  ASSERT_FALSE(service.Handle(Request("ADD", "c1", {v4, v6})).error);
  allocator.pools.erase(v6.name);
  auto again = service.Handle(Request("ADD", "c2", {v4, v6}));
  ASSERT_FALSE(again.error) << again.error->msg;
  ASSERT_EQ(again.ips.size(), 2u);
  EXPECT_EQ(allocator.pools.count(v6.name), 1u);
  EXPECT_EQ(allocator.creates, 3);
}

TEST(CniServiceTest, DelIsIdempotentAndReleasesEverything) {
  FakeAllocator allocator;
  CniService service("node-a", &allocator);
  ASSERT_FALSE(service.Handle(Request("ADD", "c1", {Range("10.4.0.0/24"), Range("fd00:4::/64")})).error);
  auto del = service.Handle(Request("DEL", "c1", {Range("10.4.0.0/24")}));
  ASSERT_FALSE(del.error);
  EXPECT_EQ(del.released, 2);  // also what an earlier configuration of the attachment took
  auto again = service.Handle(Request("DEL", "c1", {Range("10.4.0.0/24")}));
  ASSERT_FALSE(again.error);
  EXPECT_EQ(again.released, 0);
  EXPECT_FALSE(service.Handle(Request("DEL", "never-seen", {Range("10.99.0.0/24")})).error);
}

TEST(CniServiceTest, CheckPassesAndFails) {
  FakeAllocator allocator;
  CniService service("node-a", &allocator);
  const auto pool = Range("10.5.0.0/24");
  auto add = service.Handle(Request("ADD", "c1", {pool}));
  ASSERT_FALSE(add.error);
  auto check = Request("CHECK", "c1", {pool});
  check.prev_ips = {"10.5.0.10/24"};
  EXPECT_FALSE(service.Handle(check).error);
  check.prev_ips = {"10.5.0.11/24"};
  auto wrong = service.Handle(check);
  ASSERT_TRUE(wrong.error);
  EXPECT_EQ(wrong.error->code, cni::kCheckFailed);
  auto missing = Request("CHECK", "c9", {pool});
  missing.prev_ips = {"10.5.0.10/24"};
  ASSERT_TRUE(service.Handle(missing).error);
  EXPECT_EQ(service.Handle(missing).error->code, cni::kCheckFailed);
}

TEST(CniServiceTest, GcReleasesUnlistedAttachmentsOfThisNodeOnlyAndNothingWithoutAList) {
  FakeAllocator allocator;
  CniService a("node-a", &allocator), b("node-b", &allocator);
  const auto pool = Range("10.6.0.0/24");
  for (const std::string c : {"c1", "c2", "c3"}) ASSERT_FALSE(a.Handle(Request("ADD", c, {pool})).error);
  ASSERT_FALSE(b.Handle(Request("ADD", "c4", {pool})).error);
  // Another configuration (another name) sharing the pool on this node: not this GC's business.
  ASSERT_FALSE(a.Handle(Request("ADD", "c5", {pool}, "other-net")).error);
  auto no_list = a.Handle(Request("GC", "", {pool}));
  ASSERT_FALSE(no_list.error);
  EXPECT_EQ(no_list.released, 0);
  EXPECT_EQ(allocator.allocations.size(), 5u);
  auto gc = Request("GC", "", {pool});
  gc.valid_attachments = std::vector<std::pair<std::string, std::string>>{{"c2", "eth0"}};
  auto result = a.Handle(gc);
  ASSERT_FALSE(result.error);
  EXPECT_EQ(result.released, 2);
  std::set<std::string> left;
  for (const v1::Allocation& x : allocator.allocations) left.insert(x.owner());
  EXPECT_EQ(left, (std::set<std::string>{"cni/c2/eth0", "cni/c4/eth0", "cni/c5/eth0"}));
}

TEST(CniServiceTest, AllocatorDownIsTryAgainLaterAndStatusFifty) {
  FakeAllocator allocator;
  CniService service("node-a", &allocator);
  allocator.down = true;
  auto add = service.Handle(Request("ADD", "c1", {Range("10.7.0.0/24")}));
  ASSERT_TRUE(add.error);
  EXPECT_EQ(add.error->code, cni::kTryAgainLater);
  auto status = service.Handle(Request("STATUS", "", {Range("10.7.0.0/24")}));
  ASSERT_TRUE(status.error);
  EXPECT_EQ(status.error->code, cni::kNotAvailable);
  allocator.down = false;
  EXPECT_FALSE(service.Handle(Request("ADD", "c1", {Range("10.7.0.0/24")})).error);
  EXPECT_FALSE(service.Handle(Request("STATUS", "", {Range("10.7.0.0/24")})).error);
}

TEST(CniServiceTest, NamedPoolMustExist) {
  FakeAllocator allocator;
  CniService service("node-a", &allocator);
  cni::PoolRequest named;
  named.name = "pods";
  named.has_spec = false;
  auto add = service.Handle(Request("ADD", "c1", {named}));
  ASSERT_TRUE(add.error);
  EXPECT_EQ(add.error->code, cni::kInvalidConfig);
  EXPECT_NE(add.error->msg.find("\"pods\" does not exist"), std::string::npos);
}

TEST(CniServiceTest, APoolDeletedSinceItWasCheckedIsMadeAgain) {
  FakeAllocator allocator;
  CniService service("node-a", &allocator);
  const auto pool = Range("10.8.0.0/24");
  ASSERT_FALSE(service.Handle(Request("ADD", "c1", {pool})).error);
  allocator.pools.clear();
  allocator.allocations.clear();
  auto add = service.Handle(Request("ADD", "c2", {pool}));
  ASSERT_FALSE(add.error) << add.error->msg;
  EXPECT_EQ(allocator.creates, 2);
}

TEST(CniServiceTest, AReusedStatefulSetNameNeverReleasesTheNewPodsAddress) {
  FakeAllocator allocator;
  CniService service("node-a", &allocator);
  const auto pool = Range("10.9.0.0/24");
  // web-0 (uid-1) is replaced by web-0 (uid-2) with a new sandbox before the old one's DEL arrives.
  auto old_pod = Request("ADD", "sandbox-old", {pool});
  old_pod.labels = {{"k8s-pod-name", "web-0"}, {"k8s-pod-uid", "uid-1"}};
  auto new_pod = Request("ADD", "sandbox-new", {pool});
  new_pod.labels = {{"k8s-pod-name", "web-0"}, {"k8s-pod-uid", "uid-2"}};
  ASSERT_FALSE(service.Handle(old_pod).error);
  auto added = service.Handle(new_pod);
  ASSERT_FALSE(added.error);
  ASSERT_FALSE(service.Handle(Request("DEL", "sandbox-old", {pool})).error);
  ASSERT_EQ(allocator.allocations.size(), 1u);
  EXPECT_EQ(allocator.allocations[0].owner(), "cni/sandbox-new/eth0");
  EXPECT_EQ(allocator.allocations[0].address(), added.ips[0].address);
  EXPECT_EQ(allocator.allocations[0].labels().at("k8s-pod-uid"), "uid-2");
}

}  // namespace
}  // namespace abode::node

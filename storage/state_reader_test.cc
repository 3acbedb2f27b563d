#include "storage/state_reader.h"

#include <stdlib.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/arena.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "storage/state_machine.h"
#include "test-support/temp_dir.h"

namespace abode::storage {
namespace {

using test_support::TempDir;

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::SizeIs;
using ::testing::UnorderedElementsAre;

constexpr int64_t kT0 = 1'700'000'000'000;

v1::PoolSpec Spec(const std::string& name, const std::string& cidr, const std::string& network = "") {
  v1::PoolSpec s;
  s.set_name(name);
  s.set_cidr(cidr);
  s.set_network(network);
  return s;
}

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

std::vector<std::string> Owners(const google::protobuf::RepeatedPtrField<v1::Allocation>& list) {
  std::vector<std::string> out;
  for (const auto& a : list) out.push_back(a.owner());
  return out;
}

class StateReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StateMachineOptions opts;
    opts.db_path = dir_.File("state.db");
    auto sm = StateMachine::Open(opts);
    ASSERT_TRUE(sm.ok()) << sm.status();
    sm_ = std::move(*sm);
    auto reader = StateReader::Open(opts.db_path, sm_->owner_index());
    ASSERT_TRUE(reader.ok()) << reader.status();
    reader_ = std::move(*reader);
  }

  CommandOutcome Run(v1::Command c) {
    v1::CommandBatch b;
    b.set_format_version(kCommandFormatVersion);
    b.set_time_unix_ms(now_);
    *b.add_commands() = std::move(c);
    auto r = sm_->Apply(b);
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok() || r->size() != 1) return absl::InternalError("batch refused");
    EXPECT_TRUE((*r)[0].ok()) << (*r)[0].status();
    return (*r)[0];
  }

  void CreatePool(const v1::PoolSpec& spec) {
    v1::Command c;
    *c.mutable_create_pool()->mutable_pool() = spec;
    (void)Run(c);
  }

  v1::Allocation Allocate(const std::string& pool, const std::string& owner, const std::string& address = "",
                          const std::string& node = "", std::vector<std::pair<std::string, std::string>> labels = {},
                          int64_t ttl = 0) {
    v1::Command c;
    v1::AllocateRequest* a = c.mutable_allocate();
    a->set_pool(pool);
    a->set_owner(owner);
    a->set_address(address);
    a->set_node(node);
    a->set_ttl_seconds(ttl);
    for (auto& [k, v] : labels) (*a->mutable_labels())[k] = v;
    CommandOutcome r = Run(c);
    return r.ok() ? r->allocation() : v1::Allocation();
  }

  void Release(const std::string& owner) {
    v1::Command c;
    c.mutable_release()->set_owner(owner);
    (void)Run(c);
  }

  void Command(v1::Command c) { (void)Run(std::move(c)); }

  TempDir dir_;
  std::unique_ptr<StateMachine> sm_;
  std::unique_ptr<StateReader> reader_;
  int64_t now_ = kT0;
};

// The owner index lives in the state machine's memory, the rows in SQLite: a reader must see the two at the
// same commit. Every batch here releases the owner's address and allocates it a new one, so after every
// commit the owner holds exactly one; a reader pairing the index of one commit with rows of another would
// find none (or two).
TEST_F(StateReaderTest, OwnerLookupsSeeTheIndexAndTheRowsOfOneCommit) {
  CreatePool(Spec("pods", "10.0.0.0/16"));
  Allocate("pods", "moving");
  std::atomic<bool> done{false};
  std::atomic<int> reads{0};
  std::vector<std::string> failures;
  std::mutex failures_mu;
  auto fail = [&](std::string what) {
    std::lock_guard<std::mutex> lock(failures_mu);
    if (failures.size() < 5) failures.push_back(std::move(what));
  };
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; ++t) {
    readers.emplace_back([&, t] {
      while (!done.load()) {
        if (t == 0) {
          v1::GetAllocationRequest req;
          req.set_owner("moving");
          auto got = reader_->GetAllocation(req);
          if (!got.ok() || got->allocations_size() != 1) {
            fail(got.ok() ? absl::StrCat(got->allocations_size(), " allocations") : got.status().ToString());
          }
        } else {
          v1::ListAllocationsRequest req;
          req.set_owner("moving");
          auto got = reader_->ListAllocations(req);
          if (!got.ok() || got->allocations_size() != 1) {
            fail(got.ok() ? absl::StrCat(got->allocations_size(), " listed") : got.status().ToString());
          }
        }
        reads.fetch_add(1);
      }
    });
  }
  v1::CommandBatch b;
  b.set_format_version(kCommandFormatVersion);
  b.add_commands()->mutable_release()->set_owner("moving");
  v1::AllocateRequest* again = b.add_commands()->mutable_allocate();
  again->set_pool("pods");
  again->set_owner("moving");
  for (int i = 0; i < 3000 && (i < 300 || reads.load() < 2000); ++i) {
    b.set_time_unix_ms(now_ + i);
    auto r = sm_->Apply(b);
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_TRUE((*r)[1].ok()) << (*r)[1].status();
  }
  done.store(true);
  for (auto& t : readers) t.join();
  EXPECT_THAT(failures, IsEmpty());
  EXPECT_GT(reads.load(), 100);
}

TEST_F(StateReaderTest, OpenNeedsTheDatabase) { EXPECT_FALSE(StateReader::Open(dir_.File("missing.db"), sm_->owner_index()).ok());
  EXPECT_FALSE(StateReader::Open(dir_.File("state.db"), nullptr).ok()); }

TEST_F(StateReaderTest, GetPoolAndListPoolsCount) {
  v1::PoolSpec pods = Spec("pods", "10.0.0.0/24", "red");
  pods.set_gateway("10.0.0.1");
  CreatePool(pods);
  CreatePool(Spec("big", "fd00:1:2::/48"));
  CreatePool(Spec("ext", "192.0.2.0/28", "blue"));
  for (int i = 0; i < 3; ++i) Allocate("pods", absl::StrCat("o", i));
  Allocate("big", "o0");

  v1::GetPoolRequest get;
  get.set_name("pods");
  auto p = reader_->GetPool(get);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->spec().cidr(), "10.0.0.0/24");
  EXPECT_EQ(p->spec().gateway(), "10.0.0.1");
  EXPECT_EQ(p->size(), "253");
  EXPECT_EQ(p->used(), 3u);
  EXPECT_EQ(p->free(), "250");
  EXPECT_EQ(p->create_revision(), 1u);
  EXPECT_EQ(p->create_time_unix_ms(), kT0);

  get.set_name("big");
  auto big = reader_->GetPool(get);
  ASSERT_TRUE(big.ok());
  EXPECT_EQ(big->size(), "1208925819614629174706175");
  EXPECT_EQ(big->used(), 1u);
  EXPECT_EQ(big->free(), "1208925819614629174706174");

  get.set_name("nope");
  EXPECT_EQ(reader_->GetPool(get).status().code(), absl::StatusCode::kNotFound);
  get.set_name("");
  EXPECT_EQ(reader_->GetPool(get).status().code(), absl::StatusCode::kInvalidArgument);

  auto all = reader_->ListPools(v1::ListPoolsRequest());
  ASSERT_TRUE(all.ok());
  ASSERT_THAT(all->pools(), SizeIs(3));
  EXPECT_EQ(all->pools(0).spec().name(), "big");  // by name
  EXPECT_EQ(all->pools(1).spec().name(), "ext");
  EXPECT_EQ(all->pools(2).spec().name(), "pods");
  EXPECT_EQ(all->pools(2).used(), 3u);
  EXPECT_EQ(all->pools(1).free(), "14");

  v1::ListPoolsRequest red;
  red.set_network("red");
  auto reds = reader_->ListPools(red);
  ASSERT_TRUE(reds.ok());
  ASSERT_THAT(reds->pools(), SizeIs(1));
  EXPECT_EQ(reds->pools(0).spec().name(), "pods");
  red.set_network("Not Valid");
  EXPECT_EQ(reader_->ListPools(red).status().code(), absl::StatusCode::kInvalidArgument);

  // Counts follow releases.
  Release("o1");
  get.set_name("pods");
  EXPECT_EQ(reader_->GetPool(get)->free(), "251");
  auto rev = reader_->Revision();
  ASSERT_TRUE(rev.ok());
  EXPECT_EQ(*rev, sm_->revision());
}

TEST_F(StateReaderTest, GetAllocationByOwnerAndAddress) {
  v1::PoolSpec red = Spec("red-pods", "10.0.0.0/24", "red");
  red.set_gateway("10.0.0.254");
  CreatePool(red);
  CreatePool(Spec("red-ext", "192.0.2.0/24", "red"));
  CreatePool(Spec("blue-pods", "10.0.0.0/24", "blue"));
  Allocate("red-pods", "a", "", "node-1", {{"app", "web"}});
  Allocate("red-ext", "a");
  Allocate("blue-pods", "b");

  v1::GetAllocationRequest req;
  req.set_owner("a");
  auto by_owner = reader_->GetAllocation(req);
  ASSERT_TRUE(by_owner.ok()) << by_owner.status();
  ASSERT_THAT(by_owner->allocations(), SizeIs(2));
  const v1::Allocation& first = by_owner->allocations(0);
  EXPECT_EQ(first.pool(), "red-pods");
  EXPECT_EQ(first.network(), "red");
  EXPECT_EQ(first.address(), "10.0.0.1");
  EXPECT_EQ(first.prefix_length(), 24);
  EXPECT_EQ(first.gateway(), "10.0.0.254");
  EXPECT_EQ(first.node(), "node-1");
  EXPECT_THAT(first.labels(), UnorderedElementsAre(Pair("app", "web")));
  EXPECT_EQ(first.create_time_unix_ms(), kT0);
  EXPECT_EQ(first.create_revision(), 4u);
  EXPECT_EQ(by_owner->allocations(1).pool(), "red-ext");

  req.set_pool("red-ext");
  auto narrowed = reader_->GetAllocation(req);
  ASSERT_TRUE(narrowed.ok());
  ASSERT_THAT(narrowed->allocations(), SizeIs(1));
  EXPECT_EQ(narrowed->allocations(0).address(), "192.0.2.1");

  req.set_pool("blue-pods");
  auto none = reader_->GetAllocation(req);
  EXPECT_EQ(none.status().code(), absl::StatusCode::kNotFound);
  req.set_pool("missing");
  EXPECT_EQ(reader_->GetAllocation(req).status().code(), absl::StatusCode::kNotFound);
  req.set_pool("");
  req.set_owner("nobody");
  EXPECT_EQ(reader_->GetAllocation(req).status().code(), absl::StatusCode::kNotFound);

  // By address: every network holding it, unless narrowed.
  v1::GetAllocationRequest addr;
  addr.set_address("10.0.0.1");
  auto both = reader_->GetAllocation(addr);
  ASSERT_TRUE(both.ok());
  EXPECT_THAT(Owners(both->allocations()), UnorderedElementsAre("a", "b"));
  addr.set_network("blue");
  auto blue = reader_->GetAllocation(addr);
  ASSERT_TRUE(blue.ok());
  EXPECT_THAT(Owners(blue->allocations()), ElementsAre("b"));
  addr.set_network("");
  addr.set_pool("red-pods");
  auto red_pool = reader_->GetAllocation(addr);
  ASSERT_TRUE(red_pool.ok());
  EXPECT_THAT(Owners(red_pool->allocations()), ElementsAre("a"));
  addr.set_pool("red-ext");
  EXPECT_EQ(reader_->GetAllocation(addr).status().code(), absl::StatusCode::kNotFound);
  addr.set_pool("");
  addr.set_address("10.0.0.99");
  auto free_addr = reader_->GetAllocation(addr);
  EXPECT_EQ(free_addr.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Msg(free_addr.status()), HasSubstr("10.0.0.99 is not allocated"));
  addr.set_address("10.0.0");
  EXPECT_EQ(reader_->GetAllocation(addr).status().code(), absl::StatusCode::kInvalidArgument);

  v1::GetAllocationRequest neither;
  EXPECT_EQ(reader_->GetAllocation(neither).status().code(), absl::StatusCode::kInvalidArgument);
  neither.set_owner("a");
  neither.set_address("10.0.0.1");
  EXPECT_EQ(reader_->GetAllocation(neither).status().code(), absl::StatusCode::kInvalidArgument);
}

class ListAllocationsTest : public StateReaderTest {
 protected:
  void SetUp() override {
    StateReaderTest::SetUp();
    CreatePool(Spec("pods", "10.0.0.0/24"));
    CreatePool(Spec("ext", "192.0.2.0/24"));
    Allocate("pods", "p1", "", "node-a", {{"app", "web"}, {"tier", "front"}});
    Allocate("pods", "p2", "", "node-b", {{"app", "web"}, {"tier", "back"}});
    Allocate("ext", "e1", "", "node-a", {{"app", "db"}});
    Allocate("pods", "p3", "", "node-a");
    Allocate("ext", "p1", "", "", {{"app", "web"}});
  }

  v1::ListAllocationsResponse List(v1::ListAllocationsRequest req) {
    auto r = reader_->ListAllocations(req);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : v1::ListAllocationsResponse();
  }
};

// A page built into a response on a protobuf arena (as the service builds it) is the page itself, labels
// and paging included; refusals come back the same way.
TEST_F(ListAllocationsTest, APageBuiltOnAnArenaIsThePage) {
  v1::ListAllocationsRequest req;
  req.set_page_size(2);
  req.set_label_selector("app=web");
  for (int pages = 0;; ++pages) {
    ASSERT_LT(pages, 5);
    google::protobuf::Arena arena;
    auto* page = google::protobuf::Arena::CreateMessage<v1::ListAllocationsResponse>(&arena);
    ASSERT_TRUE(reader_->ListAllocationsInto(req, page).ok());
    const v1::ListAllocationsResponse plain = List(req);
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(*page, plain))
        << page->DebugString() << " vs " << plain.DebugString();
    EXPECT_GT(page->allocations_size(), 0);
    if (page->next_page_token().empty()) break;
    req.set_page_token(page->next_page_token());
  }
  google::protobuf::Arena arena;
  auto* page = google::protobuf::Arena::CreateMessage<v1::ListAllocationsResponse>(&arena);
  req.set_pool("no-such-pool");
  EXPECT_EQ(reader_->ListAllocationsInto(req, page).code(), absl::StatusCode::kNotFound);
}

TEST_F(ListAllocationsTest, FiltersCombine) {
  v1::ListAllocationsRequest req;
  const auto all = List(req);
  EXPECT_THAT(Owners(all.allocations()), ElementsAre("p1", "p2", "e1", "p3", "p1"));  // in creation order
  EXPECT_EQ(all.next_page_token(), "");
  EXPECT_EQ(all.revision(), sm_->revision());

  req.set_pool("ext");
  EXPECT_THAT(Owners(List(req).allocations()), ElementsAre("e1", "p1"));
  req.set_pool("");
  req.set_owner("p1");
  const auto p1 = List(req);
  ASSERT_THAT(p1.allocations(), SizeIs(2));
  EXPECT_EQ(p1.allocations(0).pool(), "pods");
  EXPECT_EQ(p1.allocations(1).pool(), "ext");
  req.set_owner("");
  req.set_node("node-a");
  EXPECT_THAT(Owners(List(req).allocations()), ElementsAre("p1", "e1", "p3"));
  req.set_label_selector("app=web");
  EXPECT_THAT(Owners(List(req).allocations()), ElementsAre("p1"));
  req.set_node("");
  EXPECT_THAT(Owners(List(req).allocations()), ElementsAre("p1", "p2", "p1"));
  req.set_label_selector("app=web, tier=back");
  EXPECT_THAT(Owners(List(req).allocations()), ElementsAre("p2"));
  req.set_pool("ext");
  EXPECT_THAT(List(req).allocations(), IsEmpty());
  req.set_pool("");
  req.set_label_selector("app=nothing");
  EXPECT_THAT(List(req).allocations(), IsEmpty());

  v1::ListAllocationsRequest bad;
  bad.set_pool("missing");
  EXPECT_EQ(reader_->ListAllocations(bad).status().code(), absl::StatusCode::kNotFound);
  bad.set_pool("");
  bad.set_label_selector("app");
  EXPECT_EQ(reader_->ListAllocations(bad).status().code(), absl::StatusCode::kInvalidArgument);
  bad.set_label_selector("");
  bad.set_node("Bad_Node");
  EXPECT_EQ(reader_->ListAllocations(bad).status().code(), absl::StatusCode::kInvalidArgument);
  bad.set_node("");
  bad.set_page_size(-1);
  EXPECT_EQ(reader_->ListAllocations(bad).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ListAllocationsTest, PagesOfTwoOverFiveItems) {
  v1::ListAllocationsRequest req;
  req.set_page_size(2);
  std::vector<std::string> seen;
  std::vector<std::string> tokens;
  int pages = 0;
  do {
    const auto page = List(req);
    ++pages;
    ASSERT_LE(page.allocations_size(), 2);
    for (const auto& a : page.allocations()) seen.push_back(absl::StrCat(a.pool(), "/", a.owner()));
    tokens.push_back(page.next_page_token());
    req.set_page_token(page.next_page_token());
    ASSERT_LE(pages, 3) << "too many pages";
  } while (!req.page_token().empty());
  EXPECT_EQ(pages, 3);
  EXPECT_THAT(seen, ElementsAre("pods/p1", "pods/p2", "ext/e1", "pods/p3", "ext/p1"));
  EXPECT_NE(tokens[0], "");
  EXPECT_NE(tokens[1], "");
  EXPECT_EQ(tokens[2], "");

  // Exactly a full last page: no token pointing at an empty page.
  v1::ListAllocationsRequest four;
  four.set_page_size(2);
  four.set_owner("p1");
  EXPECT_EQ(List(four).next_page_token(), "");

  // Pages stay stable across a release of an already listed allocation.
  v1::ListAllocationsRequest again;
  again.set_page_size(2);
  const auto first = List(again);
  Release("p2");
  again.set_page_token(first.next_page_token());
  EXPECT_THAT(Owners(List(again).allocations()), ElementsAre("e1", "p3"));

  // Paging with a filter.
  v1::ListAllocationsRequest filtered;
  filtered.set_page_size(1);
  filtered.set_label_selector("app=web");
  const auto f1 = List(filtered);
  ASSERT_THAT(Owners(f1.allocations()), ElementsAre("p1"));
  filtered.set_page_token(f1.next_page_token());
  const auto f2 = List(filtered);
  EXPECT_EQ(f2.allocations(0).pool(), "ext");
  EXPECT_EQ(f2.next_page_token(), "");

  for (const char* token : {"garbage", "a1.", "a1.x", "a1.-5", "a1.12x", "b1.3"}) {
    v1::ListAllocationsRequest bad;
    bad.set_page_token(token);
    auto r = reader_->ListAllocations(bad);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << token;
    EXPECT_THAT(Msg(r.status()), HasSubstr("page_token")) << token;
  }
}

TEST_F(StateReaderTest, HistoryAnswersWhoHeldAnAddressWhen) {
  CreatePool(Spec("pods", "10.0.0.0/24"));
  now_ = kT0 + 1000;
  Allocate("pods", "alice", "10.0.0.7", "node-1");
  now_ = kT0 + 5000;
  Release("alice");
  now_ = kT0 + 9000;
  Allocate("pods", "bob", "10.0.0.7", "node-2");

  auto ask = [&](int64_t at) {
    v1::GetHistoryRequest req;
    req.set_address("10.0.0.7");
    req.set_at_time_unix_ms(at);
    auto r = reader_->GetHistory(req);
    EXPECT_TRUE(r.ok()) << r.status();
    std::vector<std::string> owners;
    if (r.ok()) {
      for (const auto& e : r->entries()) owners.push_back(e.owner());
    }
    return owners;
  };
  EXPECT_THAT(ask(kT0 + 500), IsEmpty());
  EXPECT_THAT(ask(kT0 + 1000), ElementsAre("alice"));
  EXPECT_THAT(ask(kT0 + 4999), ElementsAre("alice"));
  EXPECT_THAT(ask(kT0 + 5000), IsEmpty());  // released at that instant
  EXPECT_THAT(ask(kT0 + 8999), IsEmpty());
  EXPECT_THAT(ask(kT0 + 9000), ElementsAre("bob"));
  EXPECT_THAT(ask(kT0 + 1'000'000), ElementsAre("bob"));

  v1::GetHistoryRequest all;
  all.set_address("10.0.0.7");
  auto h = reader_->GetHistory(all);
  ASSERT_TRUE(h.ok()) << h.status();
  ASSERT_THAT(h->entries(), SizeIs(2));
  const v1::HistoryEntry& open = h->entries(0);  // newest first
  EXPECT_EQ(open.owner(), "bob");
  EXPECT_EQ(open.node(), "node-2");
  EXPECT_EQ(open.pool(), "pods");
  EXPECT_EQ(open.address(), "10.0.0.7");
  EXPECT_EQ(open.from_time_unix_ms(), kT0 + 9000);
  EXPECT_EQ(open.to_time_unix_ms(), 0);
  EXPECT_EQ(open.to_revision(), 0u);
  EXPECT_EQ(open.end_reason(), "");
  const v1::HistoryEntry& closed = h->entries(1);
  EXPECT_EQ(closed.owner(), "alice");
  EXPECT_EQ(closed.node(), "node-1");
  EXPECT_EQ(closed.from_time_unix_ms(), kT0 + 1000);
  EXPECT_EQ(closed.to_time_unix_ms(), kT0 + 5000);
  EXPECT_EQ(closed.from_revision(), 2u);
  EXPECT_EQ(closed.to_revision(), 3u);
  EXPECT_EQ(closed.end_reason(), "released");

  all.set_limit(1);
  EXPECT_THAT(reader_->GetHistory(all)->entries(), SizeIs(1));
  all.set_limit(-1);
  EXPECT_EQ(reader_->GetHistory(all).status().code(), absl::StatusCode::kInvalidArgument);
  v1::GetHistoryRequest bad;
  bad.set_address("");
  EXPECT_EQ(reader_->GetHistory(bad).status().code(), absl::StatusCode::kInvalidArgument);
  v1::GetHistoryRequest other;
  other.set_address("10.0.0.8");
  EXPECT_THAT(reader_->GetHistory(other)->entries(), IsEmpty());
}

TEST_F(StateReaderTest, HistoryRecordsWhyAHoldEnded) {
  CreatePool(Spec("pods", "10.0.0.0/24", "red"));
  CreatePool(Spec("blue", "10.0.0.0/24", "blue"));
  Allocate("pods", "leased", "10.0.0.1", "", {}, 10);
  Allocate("blue", "other", "10.0.0.1");
  now_ = kT0 + 10000;
  v1::Command expire;
  expire.mutable_expire_allocations();
  Command(expire);
  Allocate("pods", "kept", "10.0.0.1");
  v1::Command del;
  del.mutable_delete_pool()->set_name("pods");
  del.mutable_delete_pool()->set_force(true);
  Command(del);

  v1::GetHistoryRequest req;
  req.set_address("10.0.0.1");
  req.set_network("red");
  auto h = reader_->GetHistory(req);
  ASSERT_TRUE(h.ok()) << h.status();
  ASSERT_THAT(h->entries(), SizeIs(2));
  EXPECT_EQ(h->entries(0).owner(), "kept");
  EXPECT_EQ(h->entries(0).end_reason(), "pool-deleted");
  EXPECT_EQ(h->entries(1).owner(), "leased");
  EXPECT_EQ(h->entries(1).end_reason(), "expired");
  EXPECT_EQ(h->entries(1).to_time_unix_ms(), kT0 + 10000);

  // The other network's holder is untouched, and found by pool too.
  req.set_network("");
  req.set_pool("blue");
  auto blue = reader_->GetHistory(req);
  ASSERT_TRUE(blue.ok());
  ASSERT_THAT(blue->entries(), SizeIs(1));
  EXPECT_EQ(blue->entries(0).owner(), "other");
  EXPECT_EQ(blue->entries(0).to_revision(), 0u);
  req.set_pool("");
  EXPECT_THAT(reader_->GetHistory(req)->entries(), SizeIs(3));
}

}  // namespace
}  // namespace abode::storage

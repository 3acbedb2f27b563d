// The pieces of a state checksum: the hash, and the allocation count read from a real store's snapshot.
#include "allocator-service/state_checksum.h"

#include <string>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "allocator-service/store_state_machine.h"
#include "test-support/temp_dir.h"

namespace abode::allocator {
namespace {

TEST(StateChecksumTest, CountsTheAllocationsOfAStoresSnapshot) {
  test_support::TempDir dir;
  auto store = StoreStateMachine::Open(dir.File("state.db"), /*reuse_existing=*/false, nullptr);
  ASSERT_TRUE(store.ok()) << store.status();
  v1::CommandBatch batch;
  batch.set_format_version(storage::kCommandFormatVersion);
  batch.set_time_unix_ms(1'700'000'000'000);
  v1::PoolSpec* pool = batch.add_commands()->mutable_create_pool()->mutable_pool();
  pool->set_name("pods");
  pool->set_cidr("10.1.0.0/24");
  for (int i = 0; i < 7; ++i) {
    v1::AllocateRequest* a = batch.add_commands()->mutable_allocate();
    a->set_pool("pods");
    a->set_owner(absl::StrCat("owner-", i));
  }
  auto outcomes = (*store)->Apply(batch, 1, [](const std::vector<replication::CommandOutcome>&) {});
  ASSERT_TRUE(outcomes.ok()) << outcomes.status();
  for (const auto& o : *outcomes) ASSERT_TRUE(o.ok()) << o.status();

  auto pinned = (*store)->PinState();
  ASSERT_TRUE(pinned.ok()) << pinned.status();
  auto snapshot = (*pinned)->Dump();
  ASSERT_TRUE(snapshot.ok()) << snapshot.status();
  EXPECT_EQ(SnapshotAllocations(*snapshot), 7u);
  EXPECT_EQ(SnapshotAllocations(snapshot->substr(0, 8)), 0u) << "no trailer: nothing counted";
}

}  // namespace
}  // namespace abode::allocator

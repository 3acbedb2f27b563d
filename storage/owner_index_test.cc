#include "storage/owner_index.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace abode::storage {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

std::vector<int64_t> Ids(const OwnerIndex::Rows& rows) {
  std::vector<int64_t> out;
  for (const auto& r : rows) out.push_back(r.row_id);
  return out;
}

uint64_t EveryOwnerCollides(absl::string_view) { return 7; }

TEST(OwnerIndexTest, FindsAnOwnersRowsInRowOrderAndByPool) {
  OwnerIndex index;
  absl::MutexLock lock(&index.mutex());
  index.Add("k8s/a/eth0", 9, 2);
  index.Add("k8s/a/eth0", 4, 1);
  index.Add("k8s/b/eth0", 5, 1);
  EXPECT_THAT(Ids(index.Find("k8s/a/eth0")), ElementsAre(4, 9));
  EXPECT_THAT(Ids(index.Find("k8s/a/eth0", 2)), ElementsAre(9));
  EXPECT_THAT(Ids(index.Find("k8s/a/eth0", 3)), IsEmpty());
  EXPECT_THAT(Ids(index.Find("k8s/c/eth0")), IsEmpty());
  EXPECT_EQ(index.rows(), 3u);

  index.Remove("k8s/a/eth0", 4);
  index.Remove("k8s/a/eth0", 4);  // twice: no-op
  index.Remove("k8s/c/eth0", 1);  // unknown owner: no-op
  EXPECT_THAT(Ids(index.Find("k8s/a/eth0")), ElementsAre(9));
  EXPECT_EQ(index.rows(), 2u);
  index.Remove("k8s/a/eth0", 9);
  EXPECT_THAT(Ids(index.Find("k8s/a/eth0")), IsEmpty());

  index.Clear();
  EXPECT_THAT(Ids(index.Find("k8s/b/eth0")), IsEmpty());
  EXPECT_EQ(index.rows(), 0u);
}

TEST(OwnerIndexTest, OwnersWithEqualHashesShareCandidatesAndKeepTheirOwnRows) {
  OwnerIndex index(&EveryOwnerCollides);
  absl::MutexLock lock(&index.mutex());
  index.Add("a", 1, 1);
  index.Add("b", 2, 1);
  // A lookup returns a superset: callers check the stored owner of each row.
  EXPECT_THAT(Ids(index.Find("a")), ElementsAre(1, 2));
  EXPECT_THAT(Ids(index.Find("nobody")), ElementsAre(1, 2));
  // Removing one owner's row leaves the other's.
  index.Remove("b", 2);
  EXPECT_THAT(Ids(index.Find("a")), ElementsAre(1));
}

TEST(OwnerIndexTest, DefaultHashSeparatesOwners) {
  EXPECT_EQ(OwnerIndex::DefaultHash("k8s/a/eth0"), OwnerIndex::DefaultHash(std::string("k8s/a/") + "eth0"));
  EXPECT_NE(OwnerIndex::DefaultHash("k8s/a/eth0"), OwnerIndex::DefaultHash("k8s/a/eth1"));
  EXPECT_NE(OwnerIndex::DefaultHash(""), OwnerIndex::DefaultHash("a"));
}

}  // namespace
}  // namespace abode::storage

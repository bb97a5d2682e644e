#include "engine/block_manager.h"

#include <numeric>

#include <gtest/gtest.h>

namespace seekserve {
namespace {

TEST(BlockManagerTest, AllocatesUntilEmptyThenSaysNoBlocks) {
  BlockManager m(3, 4);
  EXPECT_EQ(m.n_available(), 3);
  std::vector<int32_t> got;
  for (int i = 0; i < 3; ++i) got.push_back(*m.allocate());
  EXPECT_FALSE(m.allocate().has_value());
  EXPECT_EQ(m.n_in_use(), 3);
  for (int32_t b : got) m.release(b);
  EXPECT_EQ(m.n_available(), 3);
}

TEST(BlockManagerTest, SharesRegisteredPrefixBlocksAndEvictsLeastRecentlyUsed) {
  BlockManager m(4, 4);
  std::vector<int32_t> tokens(12);
  std::iota(tokens.begin(), tokens.end(), 100);
  // Sequence A computes 3 full blocks and registers them.
  std::vector<int32_t> a;
  uint64_t h = 0;
  for (int i = 0; i < 3; ++i) {
    a.push_back(*m.allocate());
    h = m.register_full_block(a.back(), h, std::span(tokens).subspan(4 * i, 4));
  }
  // B shares A's first two blocks (at most 2 asked: it keeps a token to compute).
  std::vector<uint64_t> hashes;
  std::vector<int32_t> b = m.acquire_prefix(tokens, 2, hashes);
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b[0], a[0]);
  EXPECT_EQ(m.ref_count(a[0]), 2);
  EXPECT_EQ(hashes[1], BlockManager::chain_hash(hashes[0], std::span(tokens).subspan(4, 4)));
  // A different second block stops the match.
  std::vector<int32_t> other = tokens;
  other[5] = 7;
  EXPECT_EQ(m.acquire_prefix(other, 3, hashes).size(), 1u);
  m.release(a[0]);
  // A ends: its blocks stay cached (available, not in use) except those B holds.
  for (int32_t x : a) m.release(x);
  EXPECT_EQ(m.n_in_use(), 2);
  EXPECT_EQ(m.n_available(), 2);
  for (int32_t x : b) m.release(x);
  EXPECT_EQ(m.n_in_use(), 0);
  // The whole prefix is still there; allocating everything evicts it, oldest first.
  EXPECT_EQ(m.acquire_prefix(tokens, 3, hashes).size(), 3u);
  for (int32_t x : std::vector<int32_t>{a[0], a[1], a[2]}) m.release(x);
  std::vector<int32_t> all;
  while (auto x = m.allocate()) all.push_back(*x);
  EXPECT_EQ(all.size(), 4u);
  for (int32_t x : all) m.release(x);
  EXPECT_EQ(m.acquire_prefix(tokens, 3, hashes).size(), 0u);
}

TEST(BlockManagerTest, DuplicateBlockStaysPrivate) {
  BlockManager m(2, 2);
  const std::vector<int32_t> t = {1, 2};
  int32_t x = *m.allocate(), y = *m.allocate();
  m.register_full_block(x, 0, t);
  m.register_full_block(y, 0, t);
  m.release(y);  // not registered: back on the free list
  m.release(x);  // registered: cached
  std::vector<uint64_t> hashes;
  EXPECT_EQ(m.acquire_prefix(std::vector<int32_t>{1, 2, 3}, 1, hashes).at(0), x);
}

TEST(BlockManagerTest, DisabledPrefixCacheFindsNothing) {
  BlockManager m(2, 2, /*enable_prefix_cache=*/false);
  const std::vector<int32_t> t = {1, 2};
  int32_t x = *m.allocate();
  m.register_full_block(x, 0, t);
  m.release(x);
  std::vector<uint64_t> hashes;
  EXPECT_TRUE(m.acquire_prefix(std::vector<int32_t>{1, 2, 3}, 1, hashes).empty());
  EXPECT_EQ(m.n_available(), 2);
}

}  // namespace
}  // namespace seekserve

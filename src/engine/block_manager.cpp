#include "engine/block_manager.h"

#include <algorithm>

#include "core/check.h"

namespace seekserve {

BlockManager::BlockManager(int64_t n_blocks, int64_t block_size, bool enable_prefix_cache)
    : n_blocks_(n_blocks), block_size_(block_size), enable_prefix_cache_(enable_prefix_cache) {
  SEEK_CHECK(n_blocks > 0 && block_size > 0, "positive block count and size");
  blocks_.resize(static_cast<size_t>(n_blocks));
  free_.reserve(static_cast<size_t>(n_blocks));
  // Lowest ids are handed out first (a stack popped from the back).
  for (int64_t b = n_blocks - 1; b >= 0; --b) free_.push_back(static_cast<int32_t>(b));
}

uint64_t BlockManager::chain_hash(uint64_t parent_hash, std::span<const int32_t> tokens) {
  // FNV-1a over the parent hash and the token ids, then a final avalanche (splitmix64).
  uint64_t h = 1469598103934665603ull;
  auto mix = [&h](uint64_t v) {
    for (int i = 0; i < 8; ++i) {
      h ^= (v >> (8 * i)) & 0xff;
      h *= 1099511628211ull;
    }
  };
  mix(parent_hash);
  for (int32_t t : tokens) mix(static_cast<uint32_t>(t));
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  h ^= h >> 31;
  return h;
}

void BlockManager::take_from_lru(int32_t block) {
  Block& b = blocks_[static_cast<size_t>(block)];
  lru_.erase(b.lru_entry);
  b.lru_entry = {};
}

int32_t BlockManager::find(uint64_t hash, std::span<const int32_t> chunk) const {
  auto it = by_hash_.find(hash);
  if (it == by_hash_.end()) return -1;
  const Block& b = blocks_[static_cast<size_t>(it->second)];
  if (!std::equal(chunk.begin(), chunk.end(), b.tokens.begin(), b.tokens.end())) return -1;
  return it->second;
}

BlockManager::PrefixPeek BlockManager::peek_prefix(std::span<const int32_t> tokens,
                                                   int64_t max_blocks) const {
  PrefixPeek peek;
  if (!enable_prefix_cache_) return peek;
  uint64_t parent = 0;
  const int64_t n_full = static_cast<int64_t>(tokens.size()) / block_size_;
  for (int64_t i = 0; i < std::min(n_full, max_blocks); ++i) {
    std::span<const int32_t> chunk =
        tokens.subspan(static_cast<size_t>(i * block_size_), static_cast<size_t>(block_size_));
    const uint64_t h = chain_hash(parent, chunk);
    const int32_t id = find(h, chunk);
    if (id < 0) break;
    ++peek.n_blocks;
    if (blocks_[static_cast<size_t>(id)].refs == 0) ++peek.n_unused;
    parent = h;
  }
  return peek;
}

std::vector<int32_t> BlockManager::acquire_prefix(std::span<const int32_t> tokens,
                                                  int64_t max_blocks,
                                                  std::vector<uint64_t>& hashes) {
  std::vector<int32_t> out;
  hashes.clear();
  if (!enable_prefix_cache_) return out;
  uint64_t parent = 0;
  const int64_t n_full = static_cast<int64_t>(tokens.size()) / block_size_;
  for (int64_t i = 0; i < std::min(n_full, max_blocks); ++i) {
    std::span<const int32_t> chunk =
        tokens.subspan(static_cast<size_t>(i * block_size_), static_cast<size_t>(block_size_));
    const uint64_t h = chain_hash(parent, chunk);
    const int32_t id = find(h, chunk);
    if (id < 0) break;
    Block& b = blocks_[static_cast<size_t>(id)];
    if (b.refs == 0) take_from_lru(id);
    ++b.refs;
    out.push_back(id);
    hashes.push_back(h);
    parent = h;
  }
  return out;
}

std::optional<int32_t> BlockManager::allocate() {
  int32_t id;
  if (!free_.empty()) {
    id = free_.back();
    free_.pop_back();
  } else if (!lru_.empty()) {
    id = lru_.front();
    lru_.pop_front();
    Block& b = blocks_[static_cast<size_t>(id)];
    by_hash_.erase(b.hash);
    b.registered = false;
    b.tokens.clear();
    b.lru_entry = {};
  } else {
    return std::nullopt;
  }
  blocks_[static_cast<size_t>(id)].refs = 1;
  return id;
}

void BlockManager::share(int32_t block) {
  SEEK_CHECK(block >= 0 && block < n_blocks_, "block id in range");
  Block& b = blocks_[static_cast<size_t>(block)];
  SEEK_CHECK(b.refs > 0, "sharing a block nobody holds");
  ++b.refs;
}

void BlockManager::release(int32_t block) {
  SEEK_CHECK(block >= 0 && block < n_blocks_, "block id in range");
  Block& b = blocks_[static_cast<size_t>(block)];
  SEEK_CHECK(b.refs > 0, "release of a block nobody holds");
  if (--b.refs > 0) return;
  if (b.registered) {
    lru_.push_back(block);
    b.lru_entry = std::prev(lru_.end());
  } else {
    free_.push_back(block);
  }
}

uint64_t BlockManager::register_full_block(int32_t block, uint64_t parent_hash,
                                           std::span<const int32_t> tokens) {
  SEEK_CHECK(static_cast<int64_t>(tokens.size()) == block_size_, "a full block of tokens");
  const uint64_t h = chain_hash(parent_hash, tokens);
  if (!enable_prefix_cache_) return h;
  Block& b = blocks_[static_cast<size_t>(block)];
  SEEK_CHECK(b.refs > 0, "registering a block nobody holds");
  if (b.registered || by_hash_.count(h)) return h;
  b.registered = true;
  b.hash = h;
  b.tokens.assign(tokens.begin(), tokens.end());
  by_hash_[h] = block;
  return h;
}

}  // namespace seekserve

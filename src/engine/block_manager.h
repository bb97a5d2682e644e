#pragma once
// Hands out the KV cache's fixed-size blocks to sequences, and keeps full blocks of computed
// tokens as a prefix cache.
//
// A block is in one of three states:
//   free      on the free list, holds nothing useful;
//   in use    ref_count > 0: one or more sequences' block tables point at it;
//   cached    ref_count == 0 but its tokens are known (registered): kept in an LRU list so a
//             later sequence with the same prefix can reuse its KV values copy-free. Allocation
//             takes free blocks first, then evicts the least recently used cached block.
// A full block is identified by hash(parent block's hash, its block_size tokens), so a block's
// identity covers the whole prefix before it; lookups also compare the tokens, so a hash
// collision can never hand out wrong KV values.
//
// Nothing here throws or aborts on exhaustion: allocate() returns nullopt ("no blocks").
// Thread-safety: none; one owner (the engine thread).

#include <cstdint>
#include <list>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

namespace seekserve {

class BlockManager {
 public:
  // n_blocks > 0, block_size > 0.
  BlockManager(int64_t n_blocks, int64_t block_size, bool enable_prefix_cache = true);

  int64_t n_blocks() const { return n_blocks_; }
  int64_t block_size() const { return block_size_; }
  // Blocks allocate() can still hand out: free plus cached-but-unused.
  int64_t n_available() const { return static_cast<int64_t>(free_.size() + lru_.size()); }
  // Blocks some sequence holds (what "KV cache usage" means).
  int64_t n_in_use() const { return n_blocks_ - n_available(); }
  // Blocks needed to hold n_tokens tokens.
  int64_t blocks_for(int64_t n_tokens) const { return (n_tokens + block_size_ - 1) / block_size_; }

  // The longest run of cached full blocks matching a prefix of `tokens`, at most `max_blocks`
  // of them; each returned block gains a reference (release() it later). `hashes` receives
  // their chain hashes (to continue the chain when registering later blocks).
  std::vector<int32_t> acquire_prefix(std::span<const int32_t> tokens, int64_t max_blocks,
                                      std::vector<uint64_t>& hashes);

  // What acquire_prefix would return, without taking anything: the number of matching blocks
  // and how many of them are unused now (cached, counted in n_available()).
  struct PrefixPeek {
    int64_t n_blocks = 0;
    int64_t n_unused = 0;
  };
  PrefixPeek peek_prefix(std::span<const int32_t> tokens, int64_t max_blocks) const;

  // A block with one reference, or nullopt when none is free or evictable.
  std::optional<int32_t> allocate();

  // Adds a reference to a block someone already holds (a forked sequence sharing it).
  void share(int32_t block);

  // Drops one reference; an unused registered block becomes cached, an unregistered one free.
  void release(int32_t block);

  // Records that `block` (held by the caller) now holds exactly `tokens` (block_size of them)
  // computed after the prefix whose chain hash is `parent_hash` (0 for the first block).
  // Returns the block's chain hash. If an identical block is already registered, this one stays
  // private (it is freed, not cached, when released).
  uint64_t register_full_block(int32_t block, uint64_t parent_hash,
                               std::span<const int32_t> tokens);

  // Chain hash of a full block of tokens after a prefix with hash parent_hash.
  static uint64_t chain_hash(uint64_t parent_hash, std::span<const int32_t> tokens);

  int32_t ref_count(int32_t block) const { return blocks_[static_cast<size_t>(block)].refs; }

 private:
  struct Block {
    int32_t refs = 0;
    bool registered = false;
    uint64_t hash = 0;
    std::vector<int32_t> tokens;             // registered blocks: their tokens
    std::list<int32_t>::iterator lru_entry;  // valid while cached (refs == 0 && registered)
  };

  void take_from_lru(int32_t block);
  // Registered block holding chunk after `parent`, or -1.
  int32_t find(uint64_t hash, std::span<const int32_t> chunk) const;

  int64_t n_blocks_, block_size_;
  bool enable_prefix_cache_;
  std::vector<Block> blocks_;
  std::vector<int32_t> free_;                      // stack of free block ids
  std::list<int32_t> lru_;                         // cached unused blocks, oldest first
  std::unordered_map<uint64_t, int32_t> by_hash_;  // chain hash -> registered block
};

}  // namespace seekserve

#pragma once
// The KV cache, paged: every layer has a pool of fixed-size blocks of `block_size` token slots;
// a sequence owns a block table (block ids covering its positions in order), so the server's
// block manager can hand blocks out, share prefix blocks and free them without copying.
//
// What a slot holds ("width" values per token per layer):
//   MLA (DeepSeek):  the normalised latent c [kv_lora_rank], then the rotated shared rope key
//                    k_pe [qk_rope_head_dim]: 576 values at V3 sizes, for all heads together.
//   GQA (Qwen2/Llama): K [kv_heads, head_dim] (rotated), then V [kv_heads, head_dim].
// Storage type F32, BF16 or FP8 E4M3 (`--kv-dtype`); reads and writes convert to/from f32.
//
// Thread-safety: one owner (the engine thread); the forward pass writes a sequence's new slots
// before any task reads them, and tasks of one step read disjoint or read-only slots.

#include <cstdint>
#include <span>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"
#include "formats/model_config.h"

namespace seekserve {

class KvCache {
 public:
  // Values one token's slot holds in one layer (see above): MLA kv_lora_rank + qk_rope_head_dim,
  // GQA 2 * num_key_value_heads * head_dim. Shared with the capacity planner (tools/estimate).
  static int64_t width_for(const ModelConfig& config);

  // F32, BF16 or F8E4M3 only; n_blocks * block_size slots per layer.
  static Result<KvCache> create(const ModelConfig& config, int64_t n_blocks, int64_t block_size,
                                DType dtype);

  int64_t n_layers() const { return n_layers_; }
  int64_t n_blocks() const { return n_blocks_; }
  int64_t block_size() const { return block_size_; }
  int64_t width() const { return width_; }
  DType dtype() const { return dtype_; }
  // Bytes one token takes across all layers.
  uint64_t bytes_per_token() const;
  uint64_t total_bytes() const { return storage_.size(); }

  // Writes `values` [width] into the slot of `layer` at position `pos` of a sequence.
  void write(int64_t layer, std::span<const int32_t> block_table, int64_t pos, const float* values);
  // Reads `count` values starting at column `first` of that slot into out.
  void read(int64_t layer, std::span<const int32_t> block_table, int64_t pos, int64_t first,
            int64_t count, float* out) const;
  // The first `n_slots` slots of block `block` of `layer` as f32 rows [n_slots, width]: a pointer
  // into the cache when it stores F32 (no copy, valid until the next write), else the slots
  // decoded into `scratch` (room for n_slots * width floats), which is returned. What attention
  // reads: the slots of a block are contiguous, so one block is one strided matrix.
  const float* block_rows(int64_t layer, int32_t block, int64_t n_slots, float* scratch) const;

 private:
  uint8_t* slot(int64_t layer, std::span<const int32_t> block_table, int64_t pos);
  const uint8_t* slot(int64_t layer, std::span<const int32_t> block_table, int64_t pos) const;

  int64_t n_layers_ = 0, n_blocks_ = 0, block_size_ = 0, width_ = 0;
  DType dtype_ = DType::kF32;
  uint64_t slot_bytes_ = 0;
  std::vector<uint8_t> storage_;  // [n_layers, n_blocks, block_size, width] of dtype
};

}  // namespace seekserve

#include "model/kv_cache.h"

#include <cstring>

#include "core/check.h"
#include "core/quant.h"

namespace seekserve {

int64_t KvCache::width_for(const ModelConfig& c) {
  return c.is_mla() ? c.kv_lora_rank + c.qk_rope_head_dim : 2 * c.num_key_value_heads * c.head_dim;
}

Result<KvCache> KvCache::create(const ModelConfig& c, int64_t n_blocks, int64_t block_size,
                                DType dtype) {
  if (dtype != DType::kF32 && dtype != DType::kBF16 && dtype != DType::kF8E4M3) {
    return invalid_argument("--kv-dtype: {} is not f32, bf16 or fp8", dtype_name(dtype));
  }
  if (n_blocks <= 0 || block_size <= 0)
    return invalid_argument("KV cache: blocks and block size must be positive");
  KvCache kv;
  kv.n_layers_ = c.num_hidden_layers;
  kv.n_blocks_ = n_blocks;
  kv.block_size_ = block_size;
  kv.width_ = width_for(c);
  kv.dtype_ = dtype;
  kv.slot_bytes_ = *dtype_bytes(dtype, static_cast<uint64_t>(kv.width_));
  const uint64_t total =
      kv.slot_bytes_ * static_cast<uint64_t>(kv.n_layers_ * n_blocks * block_size);
  try {
    kv.storage_.assign(total, 0);
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kResourceExhausted,
                  fmt::format("KV cache: cannot allocate {} bytes", total));
  }
  return kv;
}

uint64_t KvCache::bytes_per_token() const {
  return slot_bytes_ * static_cast<uint64_t>(n_layers_);
}

uint8_t* KvCache::slot(int64_t layer, std::span<const int32_t> table, int64_t pos) {
  return const_cast<uint8_t*>(std::as_const(*this).slot(layer, table, pos));
}

const uint8_t* KvCache::slot(int64_t layer, std::span<const int32_t> table, int64_t pos) const {
  const int64_t b = pos / block_size_;
  SEEK_CHECK(b < static_cast<int64_t>(table.size()), "the block table covers every position");
  const int64_t block = table[static_cast<size_t>(b)];
  SEEK_CHECK(block >= 0 && block < n_blocks_, "block ids are in range");
  const uint64_t index =
      static_cast<uint64_t>((layer * n_blocks_ + block) * block_size_ + pos % block_size_);
  return storage_.data() + index * slot_bytes_;
}

void KvCache::write(int64_t layer, std::span<const int32_t> table, int64_t pos,
                    const float* values) {
  quantize_row(dtype_, values, slot(layer, table, pos), width_);
}

void KvCache::read(int64_t layer, std::span<const int32_t> table, int64_t pos, int64_t first,
                   int64_t count, float* out) const {
  const uint8_t* s = slot(layer, table, pos);
  const uint64_t elem = dtype_info(dtype_).block_bytes;  // plain types: bytes per value
  dequantize_row(dtype_, s + static_cast<uint64_t>(first) * elem, out, count);
}

const float* KvCache::block_rows(int64_t layer, int32_t block, int64_t n_slots,
                                 float* scratch) const {
  SEEK_CHECK(block >= 0 && block < n_blocks_, "block ids are in range");
  SEEK_CHECK(n_slots >= 0 && n_slots <= block_size_, "a block holds block_size slots");
  const uint8_t* base =
      storage_.data() +
      static_cast<uint64_t>((layer * n_blocks_ + block) * block_size_) * slot_bytes_;
  if (dtype_ == DType::kF32) return reinterpret_cast<const float*>(base);
  dequantize_row(dtype_, base, scratch, n_slots * width_);  // plain types: slots are back to back
  return scratch;
}

}  // namespace seekserve

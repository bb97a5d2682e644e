// Q8_0/Q4_0 weights in the 16-row-interleaved layout (WeightLayout::kRows16, matmul.h): the
// in-place repacking done once at load, and the portable kernel with matmul_reference_q8act's
// arithmetic that every path without the VNNI kernel (matmul_q8_packed_avx512.cpp) runs on it.
// Baseline x86-64 code: no ISA flags.

#include <cstring>
#include <vector>

#include "core/check.h"
#include "core/cpu_features.h"
#include "kernels/matmul.h"
#include "kernels/matmul_kernels.h"

namespace seekserve {

using matmul_detail::kQBlock;

bool rows16_packing_pays(const WeightView& w) {
  if (w.dtype != DType::kQ8_0 && w.dtype != DType::kQ4_0) return false;
  if (w.layout != WeightLayout::kRows || w.rows < 16 || !validate_weight(w).ok()) return false;
  return active_isa_level() == IsaLevel::kAvx512 && cpu_features().avx512_vnni;
}

int64_t rows16_groups(const WeightView& w) {
  return w.rows / 16;
}

void pack_weight_rows16(const WeightView& w, uint8_t* bytes, int64_t g0, int64_t g1) {
  SEEK_CHECK(w.dtype == DType::kQ8_0 || w.dtype == DType::kQ4_0,
             "pack_weight_rows16: Q8_0 or Q4_0 weights only");
  SEEK_CHECK(w.layout == WeightLayout::kRows && g0 >= 0 && g1 <= rows16_groups(w),
             "pack_weight_rows16: row-major weights and groups within the matrix");
  const bool q8 = w.dtype == DType::kQ8_0;
  const int64_t block_bytes = q8 ? 34 : 18, n_chunks = q8 ? 8 : 4;
  const int64_t n_blocks = w.cols / kQBlock, row_bytes = n_blocks * block_bytes;
  const uint32_t flip = q8 ? 0x80808080u : 0u;  // Q8_0: w + 128, what vpdpbusd reads unsigned
  std::vector<uint8_t> rows(16 * row_bytes);    // [16, row_bytes]: the group as files store it
  for (int64_t g = g0; g < g1; ++g) {
    uint8_t* group = bytes + g * 16 * row_bytes;  // 16 rows' bytes either way
    std::memcpy(rows.data(), group, rows.size());
    for (int64_t b = 0; b < n_blocks; ++b) {
      uint8_t* out = group + b * 16 * block_bytes;
      for (int64_t r = 0; r < 16; ++r) {
        const uint8_t* block = rows.data() + r * row_bytes + b * block_bytes;
        std::memcpy(out + 2 * r, block, 2);  // the f16 scale
        for (int64_t c = 0; c < n_chunks; ++c) {
          uint32_t v;
          std::memcpy(&v, block + 2 + 4 * c, 4);
          v ^= flip;
          std::memcpy(out + 32 + c * 64 + 4 * r, &v, 4);
        }
      }
    }
  }
}

namespace matmul_detail {

void matmul_block_q8act_generic(const MatmulJob& job, int64_t i0, int64_t i1, int64_t j0,
                                int64_t j1) {
  const int64_t n_blocks = job.k / kQBlock;
  std::vector<int8_t> qw(job.k);    // [k] i8: one weight row
  std::vector<float> dw(n_blocks);  // [k / 32]
  for (int64_t j = j0; j < j1; ++j) {
    for (int64_t b = 0; b < n_blocks; ++b) dw[b] = weight_block_q8(*job.w, j, b, &qw[b * kQBlock]);
    for (int64_t i = i0; i < i1; ++i) {
      const int8_t* xq = job.xq + i * job.k;
      const float* xd = job.xd + i * n_blocks;
      float sum = 0.0f;
      for (int64_t b = 0; b < n_blocks; ++b) {
        int32_t dot = 0;
        for (int64_t t = 0; t < kQBlock; ++t) dot += qw[b * kQBlock + t] * xq[b * kQBlock + t];
        sum += (xd[b] * dw[b]) * static_cast<float>(dot);
      }
      job.y[i * job.n + j] = sum;
    }
  }
}

}  // namespace matmul_detail
}  // namespace seekserve

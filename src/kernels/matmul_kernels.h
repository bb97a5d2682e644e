#pragma once
// Internal to the matmul family: what matmul.cpp prepares once per call and the per-ISA kernel
// files (compiled with their own -m flags, see CMakeLists.txt) compute from. Only matmul.cpp and
// the tests include this; callers use matmul.h.

#include <algorithm>
#include <cstdint>

#include "kernels/matmul.h"

namespace seekserve::matmul_detail {

constexpr int64_t kQBlock = 32;          // elements per Q8_0/Q4_0 block (and per activation block)
constexpr int64_t kFp8ScaleBlock = 128;  // DeepSeek's scale_inv block edge
constexpr int64_t kFp8Chunk = 64;        // FP8 weights decoded at a time by the VBMI kernel
constexpr int64_t kAmxStripRows = 32;    // weight rows widened at a time by the AMX kernel
constexpr int64_t kAmxRowBlock = 32;     // activation rows per AMX C-tile pair

// One call's inputs, prepared once by matmul_on_path and shared read-only by all tasks.
struct MatmulJob {
  const float* x = nullptr;  // [m, k] f32
  int64_t m = 0, n = 0, k = 0;
  const WeightView* w = nullptr;
  float* y = nullptr;  // [m, n] f32
  // kAvx512 BF16 weights with vdpbf16ps: X rounded to bf16, rows padded with zeros to x_bf16_ld.
  const uint16_t* x_bf16 = nullptr;  // [m, x_bf16_ld] bf16
  int64_t x_bf16_ld = 0;
  // Q8_0/Q4_0 on kAvx2/kAvx512: X quantised by quantize_activations_q8 (null: f32 activations
  // against the weights widened exactly to f32).
  const int8_t* xq = nullptr;  // [m, k] i8
  const float* xd = nullptr;   // [m, k / 32] f32
  // With use_vnni, per row and pair of blocks (p = block / 2), in the 16 lanes of the kernel's
  // integer dot (lane t covers bytes 4t..4t+3 of the pair's 64):
  const int32_t* x_sum128 = nullptr;  // [m, ceil(k / 64), 16] i32: −128 · Σ of those 4 x bytes
  const float* xd16 = nullptr;        // [m, ceil(k / 64), 16] f32: d_x of block 2p (lanes 0-7),
                                      // of block 2p + 1 (lanes 8-15; 0 past the row)
  // kRows16 weights on the VNNI kernel: per row and block, −bias·Σ of the block's 32 x bytes
  // (bias 128 for Q8_0, whose packed bytes are w + 128; 8 for Q4_0's nibbles w + 8).
  const int32_t* x_block_sum = nullptr;  // [m, k / 32] i32
  // kAvx512 FP8 weights with AVX512_VBMI: X rows in fp8_permute_x order (null: the f16 kernel).
  const float* x_fp8 = nullptr;  // [m, x_fp8_ld] f32
  int64_t x_fp8_ld = 0;
  bool use_bf16_dot = false;
  bool use_vnni = false;
  // kAmx: X rounded to bf16 and packed as B tiles (see amx_pack_x).
  const uint16_t* x_tiles = nullptr;
};

// Block `block` of row `row` of Q8_0/Q4_0 weights as integers q [32] (Q4_0: nibble − 8); returns
// the block scale d (W = d·q). The one place that knows those block layouts, packed or not.
float weight_block_q8(const WeightView& w, int64_t row, int64_t block, int8_t* q);

// Covers the block [i0, i1) × [j0, j1) with micro-tiles: full(i, j) computes rows [i, i + kMr)
// × columns [j, j + kNr); rows left over run one at a time as single(i, j), kNr1 columns wide.
// A tile clips rows and columns to the block end by reusing the last valid one (computed, not
// stored). Every output gets the same arithmetic in either kind of tile, so the result of a row
// does not depend on how many rows the block has.
// (Instantiated with each kernel file's own lambdas, so no ISA-specific code is shared.)
template <int kMr, int kNr, int kNr1, typename Full, typename Single>
void for_each_tile(int64_t i0, int64_t i1, int64_t j0, int64_t j1, Full full, Single single) {
  static_assert(kNr1 % kNr == 0);
  for (int64_t j = j0; j < j1; j += kNr1) {
    int64_t i = i0;
    for (; i + kMr <= i1; i += kMr) {
      for (int64_t jj = j; jj < std::min(j + kNr1, j1); jj += kNr) full(i, jj);
    }
    for (; i < i1; ++i) single(i, j);
  }
}

// W[row][col] as f32 (the reference decode, one element).
float weight_element(const WeightView& w, int64_t row, int64_t col);

// Each computes y[i][j] for i in [i0, i1), j in [j0, j1).
void matmul_block_scalar(const MatmulJob& job, int64_t i0, int64_t i1, int64_t j0, int64_t j1);
void matmul_block_avx2(const MatmulJob& job, int64_t i0, int64_t i1, int64_t j0, int64_t j1);
void matmul_block_avx512(const MatmulJob& job, int64_t i0, int64_t i1, int64_t j0, int64_t j1);
// Q8_0/Q4_0 against job.xq/xd with matmul_reference_q8act's arithmetic, any layout (plain C++).
void matmul_block_q8act_generic(const MatmulJob& job, int64_t i0, int64_t i1, int64_t j0,
                                int64_t j1);
// quantize_activations_q8 with AVX-512, bit-identical to it (activations without NaN), plus, when
// block_sum is non-null, −bias·Σq per block into block_sum [k / 32] (MatmulJob::x_block_sum).
void quantize_activations_q8_avx512(const float* x, int64_t k, int8_t* q, float* d,
                                    int32_t* block_sum, int32_t bias);
// kRows16 Q8_0/Q4_0 with VNNI (kAvx512 + AVX512_VNNI), job.x_block_sum set; j0 a multiple of 16.
// Bit-identical to matmul_block_q8act_generic.
void matmul_block_rows16_avx512(const MatmulJob& job, int64_t i0, int64_t i1, int64_t j0,
                                int64_t j1);

// The FP8 kernel for CPUs with AVX512_VBMI (matmul_fp8_avx512.cpp; needs kAvx512 + VBMI).
// fp8_permute_x writes one activation row x [k] as out [fp8_permute_x_ld(k)] f32 in the order the
// kernel decodes weights: per 64-column chunk c, out[64c + 16v + 4L + p] = x[64c + 16L + 8(v / 2)
// + 2p + v % 2] (v, L, p = 0..3), zero past k.
int64_t fp8_permute_x_ld(int64_t k);
void fp8_permute_x(const float* x, int64_t k, float* out);
void matmul_block_fp8_vbmi(const MatmulJob& job, int64_t i0, int64_t i1, int64_t j0, int64_t j1);

// Rows [row0, row0 + n_rows) of w as bf16(dequantised f32) into out [n_rows, ld] (ld >= cols,
// columns [cols, ld) zeroed). Needs kAvx512 + AVX512_BF16.
void avx512_rows_to_bf16(const WeightView& w, int64_t row0, int64_t n_rows, int64_t ld,
                         uint16_t* out);

// kAmx. k_chunks = ceil(k / 32); m_pad = m rounded up to kAmxRowBlock.
// amx_pack_x packs rows [i0, i1) (multiples of 16, i1 <= m_pad) of X as bf16 B tiles:
// x_tiles[(i / 16) * k_chunks + c] is a 16×16×2 tile, element [p][r][e] = bf16(x[i+r][32c+2p+e])
// (zero beyond m and k). Needs AVX512_BF16.
int64_t amx_x_tiles_elements(int64_t m, int64_t k);  // u16 elements of x_tiles
void amx_pack_x(const float* x, int64_t m, int64_t k, int64_t i0, int64_t i1, uint16_t* x_tiles);
int64_t amx_scratch_elements(int64_t k);  // u16 elements of per-thread scratch
// i0 a multiple of kAmxRowBlock, j0 a multiple of kAmxStripRows. emulated: scalar tile model.
void matmul_block_amx(const MatmulJob& job, int64_t i0, int64_t i1, int64_t j0, int64_t j1,
                      uint16_t* scratch, bool emulated);

}  // namespace seekserve::matmul_detail

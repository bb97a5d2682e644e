// kAvx512 matmul kernels. Compiled with AVX-512 F/BW/VL/DQ + BF16 + VNNI flags (CMakeLists.txt);
// called only after the CPU was checked, and the BF16/VNNI instructions only when
// MatmulJob::use_bf16_dot / use_vnni say the CPU has them.
//
// Every output Y[i][j] is accumulated in one vector register, lane by lane over k in increasing
// chunks, then summed across lanes by _mm512_reduce_add_ps: the order depends on k only, so a row's
// result is the same whatever m, the row's position in the block, or the task split.

#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "core/dtype.h"
#include "kernels/matmul_kernels.h"

namespace seekserve::matmul_detail {
namespace {

__mmask16 mask16(int64_t remaining) {
  return remaining >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << remaining) - 1);
}
__mmask32 mask32(int64_t remaining) {
  return remaining >= 32 ? __mmask32(0xFFFFFFFFu) : __mmask32((1u << remaining) - 1);
}

uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Loads that take a mask only at the k tail: masked loads are much slower than plain ones on some
// CPUs (measured 2.5× on the FP8 GEMV on AMD Zen here), and the tail is one chunk per row.
__m512 load_ps(__mmask16 m, const float* p) {
  return m == 0xFFFF ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(m, p);
}
__m256i load_16x16(__mmask16 m, const uint16_t* p) {
  return m == 0xFFFF ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))
                     : _mm256_maskz_loadu_epi16(m, p);
}
__m512i load_32x16(__mmask32 m, const uint16_t* p) {
  return m == 0xFFFFFFFFu ? _mm512_loadu_si512(p) : _mm512_maskz_loadu_epi16(m, p);
}
__m128i load_16x8(__mmask16 m, const uint8_t* p) {
  return m == 0xFFFF ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(p))
                     : _mm_maskz_loadu_epi8(m, p);
}

// One weight row for the f32-activation kernels: decode(k0, mask) gives W[row][k0 .. k0+16) as
// exact f32 (zero where the mask is clear).
struct RowF32 {
  const float* p = nullptr;
  RowF32() = default;
  RowF32(const WeightView& w, int64_t row) : p(static_cast<const float*>(w.data) + row * w.cols) {}
  __m512 decode(int64_t k0, __mmask16 m) const { return load_ps(m, p + k0); }
};
struct RowF16 {
  const uint16_t* p = nullptr;
  RowF16() = default;
  RowF16(const WeightView& w, int64_t row)
      : p(static_cast<const uint16_t*>(w.data) + row * w.cols) {}
  __m512 decode(int64_t k0, __mmask16 m) const { return _mm512_cvtph_ps(load_16x16(m, p + k0)); }
};
struct RowBF16 {
  const uint16_t* p = nullptr;
  RowBF16() = default;
  RowBF16(const WeightView& w, int64_t row)
      : p(static_cast<const uint16_t*>(w.data) + row * w.cols) {}
  __m512 decode(int64_t k0, __mmask16 m) const {
    const __m512i wide = _mm512_cvtepu16_epi32(load_16x16(m, p + k0));
    return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
  }
};
// E4M3 → f16 by moving bits: s.eeee.mmm → s.0eeee.mmm0000000 is the same number · 2^-8 for
// normals and subnormals alike (f16 bias 15 vs 7), so ·256 (folded into the scale) is exact. The
// NaN codes 0x7F/0xFF would read as ±480·scale; checkpoints hold none.
struct RowFp8 {
  const uint8_t* p = nullptr;
  const float* scale_row = nullptr;  // [ceil(cols / 128)] f32
  RowFp8() = default;
  RowFp8(const WeightView& w, int64_t row)
      : p(static_cast<const uint8_t*>(w.data) + row * w.cols),
        scale_row(w.scale_inv +
                  (row / kFp8ScaleBlock) * ((w.cols + kFp8ScaleBlock - 1) / kFp8ScaleBlock)) {}
  __m512 decode(int64_t k0, __mmask16 m) const {
    // v << 8 = s.eeee.mmm.00000000; an arithmetic >> 1 copies s into bit 14, which the mask
    // clears: s.0eeee.mmm.0000000.
    const __m256i v = _mm256_slli_epi16(_mm256_cvtepu8_epi16(load_16x8(m, p + k0)), 8);
    const __m256i h = _mm256_and_si256(_mm256_srai_epi16(v, 1), _mm256_set1_epi16(-0x4080));
    const __m512 f = _mm512_cvtph_ps(h);
    return _mm512_mul_ps(f, _mm512_set1_ps(256.0f * scale_row[k0 / kFp8ScaleBlock]));
  }
};

// A single activation row (decode) runs one weight row at a time: one sequential stream per
// thread reads faster than several rows interleaved (measured on the GEMV, docs/BENCHMARKS.md
// "Engine"). Each output keeps its own accumulator and k order, so the result is the same as in
// any other tile.
template <typename Tile>
void one_row(int64_t j, int64_t j1, int64_t width, Tile tile) {
  for (int64_t jj = j; jj < std::min(j + width, j1); ++jj) tile(jj);
}

// Q8_0 / Q4_0 as exact f32 for the f32-activation kernels: d·q (an f16 times an integer of at
// most 8 bits fits f32's 24-bit significand). k0 is a multiple of 16 and cols of 32.
template <bool kQ4>
struct RowQF32 {
  const uint8_t* p = nullptr;
  RowQF32() = default;
  RowQF32(const WeightView& w, int64_t row)
      : p(static_cast<const uint8_t*>(w.data) + row * (w.cols / kQBlock) * (kQ4 ? 18 : 34)) {}
  __m512 decode(int64_t k0, __mmask16) const {
    const uint8_t* block = p + (k0 / kQBlock) * (kQ4 ? 18 : 34);
    __m512i q;
    if constexpr (kQ4) {  // elements 0-15: low nibbles of the 16 bytes, 16-31: high nibbles
      const __m512i b =
          _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(block + 2)));
      q = _mm512_sub_epi32(_mm512_and_si512(_mm512_srli_epi32(b, (k0 % kQBlock) == 0 ? 0 : 4),
                                            _mm512_set1_epi32(15)),
                           _mm512_set1_epi32(8));
    } else {
      q = _mm512_cvtepi8_epi32(
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(block + 2 + (k0 % kQBlock))));
    }
    return _mm512_mul_ps(_mm512_cvtepi32_ps(q), _mm512_set1_ps(_cvtsh_ss(load_u16(block))));
  }
};

// The f32-activation micro-tile: kMr rows × kNr columns, 16 k per step.
template <typename Row, int kMr, int kNr>
void tile_f32(const MatmulJob& job, int64_t i, int64_t i1, int64_t j, int64_t j1) {
  const WeightView& w = *job.w;
  Row rows[kNr];
  for (int c = 0; c < kNr; ++c) rows[c] = Row(w, std::min(j + c, j1 - 1));
  const float* xr[kMr];
  for (int r = 0; r < kMr; ++r) xr[r] = job.x + std::min(i + r, i1 - 1) * job.k;
  __m512 acc[kMr][kNr];
#pragma GCC unroll 8
  for (int r = 0; r < kMr; ++r)
#pragma GCC unroll 8
    for (int c = 0; c < kNr; ++c) acc[r][c] = _mm512_setzero_ps();
  for (int64_t k0 = 0; k0 < job.k; k0 += 16) {
    const __mmask16 m = mask16(job.k - k0);
    __m512 wv[kNr];
#pragma GCC unroll 8
    for (int c = 0; c < kNr; ++c) wv[c] = rows[c].decode(k0, m);
#pragma GCC unroll 8
    for (int r = 0; r < kMr; ++r) {
      const __m512 xv = load_ps(m, xr[r] + k0);
#pragma GCC unroll 8
      for (int c = 0; c < kNr; ++c) acc[r][c] = _mm512_fmadd_ps(xv, wv[c], acc[r][c]);
    }
  }
  for (int r = 0; r < kMr && i + r < i1; ++r) {
    for (int c = 0; c < kNr && j + c < j1; ++c) {
      job.y[(i + r) * job.n + j + c] = _mm512_reduce_add_ps(acc[r][c]);
    }
  }
}

template <typename Row>
void block_f32(const MatmulJob& job, int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
  for_each_tile<4, 4, 8>(
      i0, i1, j0, j1, [&](int64_t i, int64_t j) { tile_f32<Row, 4, 4>(job, i, i1, j, j1); },
      [&](int64_t i, int64_t j) {
        one_row(j, j1, 8, [&](int64_t jj) { tile_f32<Row, 1, 1>(job, i, i1, jj, j1); });
      });
}

// FP8 weights, 32 k per step: the E4M3 → f16 bit move of RowFp8 done on 32 bytes at once in one
// 512-bit register (half the integer work per weight), then two f16 → f32 halves. Each output
// gets exactly tile_f32<RowFp8>'s arithmetic (same products, same accumulator, same k order:
// k0..k0+15 then k0+16..k0+31), so results are bit-identical to it; a k tail shorter than 32
// runs RowFp8::decode.
template <int kMr, int kNr>
void tile_fp8(const MatmulJob& job, int64_t i, int64_t i1, int64_t j, int64_t j1) {
  const WeightView& w = *job.w;
  RowFp8 rows[kNr];
  for (int c = 0; c < kNr; ++c) rows[c] = RowFp8(w, std::min(j + c, j1 - 1));
  const float* xr[kMr];
  for (int r = 0; r < kMr; ++r) xr[r] = job.x + std::min(i + r, i1 - 1) * job.k;
  __m512 acc[kMr][kNr];
#pragma GCC unroll 8
  for (int r = 0; r < kMr; ++r)
#pragma GCC unroll 8
    for (int c = 0; c < kNr; ++c) acc[r][c] = _mm512_setzero_ps();
  int64_t k0 = 0;
  for (; k0 + 32 <= job.k; k0 += 32) {
    __m512 lo[kNr], hi[kNr];
#pragma GCC unroll 8
    for (int c = 0; c < kNr; ++c) {
      const __m512i v = _mm512_slli_epi16(_mm512_cvtepu8_epi16(_mm256_loadu_si256(
                                              reinterpret_cast<const __m256i*>(rows[c].p + k0))),
                                          8);
      const __m512i h = _mm512_and_si512(_mm512_srai_epi16(v, 1), _mm512_set1_epi16(-0x4080));
      // k0 is a multiple of 32, so both halves lie in one 128-column scale block.
      const __m512 scale = _mm512_set1_ps(256.0f * rows[c].scale_row[k0 / kFp8ScaleBlock]);
      lo[c] = _mm512_mul_ps(_mm512_cvtph_ps(_mm512_castsi512_si256(h)), scale);
      hi[c] = _mm512_mul_ps(_mm512_cvtph_ps(_mm512_extracti64x4_epi64(h, 1)), scale);
    }
#pragma GCC unroll 8
    for (int r = 0; r < kMr; ++r) {
      const __m512 x0 = _mm512_loadu_ps(xr[r] + k0), x1 = _mm512_loadu_ps(xr[r] + k0 + 16);
#pragma GCC unroll 8
      for (int c = 0; c < kNr; ++c) {
        acc[r][c] = _mm512_fmadd_ps(x0, lo[c], acc[r][c]);
        acc[r][c] = _mm512_fmadd_ps(x1, hi[c], acc[r][c]);
      }
    }
  }
  for (; k0 < job.k; k0 += 16) {
    const __mmask16 m = mask16(job.k - k0);
    __m512 wv[kNr];
#pragma GCC unroll 8
    for (int c = 0; c < kNr; ++c) wv[c] = rows[c].decode(k0, m);
#pragma GCC unroll 8
    for (int r = 0; r < kMr; ++r) {
      const __m512 xv = load_ps(m, xr[r] + k0);
#pragma GCC unroll 8
      for (int c = 0; c < kNr; ++c) acc[r][c] = _mm512_fmadd_ps(xv, wv[c], acc[r][c]);
    }
  }
  for (int r = 0; r < kMr && i + r < i1; ++r) {
    for (int c = 0; c < kNr && j + c < j1; ++c) {
      job.y[(i + r) * job.n + j + c] = _mm512_reduce_add_ps(acc[r][c]);
    }
  }
}

void block_fp8(const MatmulJob& job, int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
  for_each_tile<4, 4, 8>(
      i0, i1, j0, j1, [&](int64_t i, int64_t j) { tile_fp8<4, 4>(job, i, i1, j, j1); },
      [&](int64_t i, int64_t j) {
        one_row(j, j1, 8, [&](int64_t jj) { tile_fp8<1, 1>(job, i, i1, jj, j1); });
      });
}

// BF16 weights with vdpbf16ps: X (already bf16, zero-padded to x_bf16_ld) · W, 32 k per step.
template <int kMr, int kNr>
void tile_bf16_dot(const MatmulJob& job, int64_t i, int64_t i1, int64_t j, int64_t j1) {
  const auto* wbase = static_cast<const uint16_t*>(job.w->data);
  const uint16_t* wr[kNr];
  for (int c = 0; c < kNr; ++c) wr[c] = wbase + std::min(j + c, j1 - 1) * job.k;
  const uint16_t* xr[kMr];
  for (int r = 0; r < kMr; ++r) xr[r] = job.x_bf16 + std::min(i + r, i1 - 1) * job.x_bf16_ld;
  __m512 acc[kMr][kNr];
#pragma GCC unroll 8
  for (int r = 0; r < kMr; ++r)
#pragma GCC unroll 8
    for (int c = 0; c < kNr; ++c) acc[r][c] = _mm512_setzero_ps();
  for (int64_t k0 = 0; k0 < job.k; k0 += 32) {
    const __mmask32 m = mask32(job.k - k0);
    __m512i wv[kNr];
#pragma GCC unroll 8
    for (int c = 0; c < kNr; ++c) wv[c] = load_32x16(m, wr[c] + k0);
#pragma GCC unroll 8
    for (int r = 0; r < kMr; ++r) {
      const __m512i xv = _mm512_loadu_si512(xr[r] + k0);
#pragma GCC unroll 8
      for (int c = 0; c < kNr; ++c) {
        acc[r][c] = _mm512_dpbf16_ps(acc[r][c], (__m512bh)xv, (__m512bh)wv[c]);
      }
    }
  }
  for (int r = 0; r < kMr && i + r < i1; ++r) {
    for (int c = 0; c < kNr && j + c < j1; ++c) {
      job.y[(i + r) * job.n + j + c] = _mm512_reduce_add_ps(acc[r][c]);
    }
  }
}

void block_bf16_dot(const MatmulJob& job, int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
  for_each_tile<4, 4, 8>(
      i0, i1, j0, j1, [&](int64_t i, int64_t j) { tile_bf16_dot<4, 4>(job, i, i1, j, j1); },
      [&](int64_t i, int64_t j) {
        one_row(j, j1, 8, [&](int64_t jj) { tile_bf16_dot<1, 1>(job, i, i1, jj, j1); });
      });
}

// Two consecutive Q blocks of one row as 64 signed bytes (block b in the low half, b + 1 in the
// high half, zero when b + 1 is past the row) and their scales.
struct QPair {
  __m512i q;
  float d0, d1;
};

QPair load_q8_0_pair(const uint8_t* row, int64_t b, int64_t n_blocks) {
  const uint8_t* p0 = row + b * 34;
  const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p0 + 2));
  __m256i hi = _mm256_setzero_si256();
  float d1 = 0.0f;
  if (b + 1 < n_blocks) {
    hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p0 + 34 + 2));
    d1 = _cvtsh_ss(load_u16(p0 + 34));
  }
  return {_mm512_inserti64x4(_mm512_zextsi256_si512(lo), hi, 1), _cvtsh_ss(load_u16(p0)), d1};
}

__m256i q4_0_block(const uint8_t* p) {  // 32 signed values nibble − 8 of one block
  const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2));
  const __m128i low = _mm_and_si128(bytes, _mm_set1_epi8(15));
  const __m128i high = _mm_and_si128(_mm_srli_epi16(bytes, 4), _mm_set1_epi8(15));
  return _mm256_sub_epi8(_mm256_set_m128i(high, low), _mm256_set1_epi8(8));
}

QPair load_q4_0_pair(const uint8_t* row, int64_t b, int64_t n_blocks) {
  const uint8_t* p0 = row + b * 18;
  __m256i hi = _mm256_setzero_si256();
  float d1 = 0.0f;
  if (b + 1 < n_blocks) {
    hi = q4_0_block(p0 + 18);
    d1 = _cvtsh_ss(load_u16(p0 + 18));
  }
  return {_mm512_inserti64x4(_mm512_zextsi256_si512(q4_0_block(p0)), hi, 1),
          _cvtsh_ss(load_u16(p0)), d1};
}

// Σ over each group of 4 bytes of |w|·(±x): lane t holds the exact dot of bytes 4t..4t+3
// (|w| ≤ 128, |x| ≤ 127: no i16 saturation in maddubs).
__m512i dot4_maddubs(__m512i abs_w, __m512i signed_x) {
  return _mm512_madd_epi16(_mm512_maddubs_epi16(abs_w, signed_x), _mm512_set1_epi16(1));
}

// Q8_0/Q4_0 weights against int8 activations, 64 k (two blocks) per step: the sign of w moved
// onto x, then |w|·(±x) by maddubs + madd, or (kVnni) by one vpdpbusd. Without VNNI every tile
// runs this; with VNNI only single activation rows do (it reads fewer side arrays than
// tile_q8act_vnni, and measured faster on the memory-bound GEMV), with the same integers and the
// same float steps, so a row's result is bit-identical in either tile.
template <bool kVnni, bool kQ4, int kMr, int kNr>
void tile_q8act(const MatmulJob& job, int64_t i, int64_t i1, int64_t j, int64_t j1) {
  const int64_t n_blocks = job.k / kQBlock;
  const auto* wbase = static_cast<const uint8_t*>(job.w->data);
  const int64_t row_bytes = n_blocks * (kQ4 ? 18 : 34);
  const uint8_t* wr[kNr];
  for (int c = 0; c < kNr; ++c) wr[c] = wbase + std::min(j + c, j1 - 1) * row_bytes;
  int64_t rows[kMr];
  for (int r = 0; r < kMr; ++r) rows[r] = std::min(i + r, i1 - 1);
  __m512 acc[kMr][kNr];
#pragma GCC unroll 8
  for (int r = 0; r < kMr; ++r)
#pragma GCC unroll 8
    for (int c = 0; c < kNr; ++c) acc[r][c] = _mm512_setzero_ps();
  for (int64_t b = 0; b < n_blocks; b += 2) {
    const bool pair = b + 1 < n_blocks;
    __m512i abs_w[kNr];
    __mmask64 neg[kNr];
    __m512 dw[kNr];
#pragma GCC unroll 8
    for (int c = 0; c < kNr; ++c) {
      const QPair q = kQ4 ? load_q4_0_pair(wr[c], b, n_blocks) : load_q8_0_pair(wr[c], b, n_blocks);
      neg[c] = _mm512_movepi8_mask(q.q);
      abs_w[c] = _mm512_abs_epi8(q.q);
      dw[c] = _mm512_insertf32x8(_mm512_set1_ps(q.d0), _mm256_set1_ps(q.d1), 1);
    }
#pragma GCC unroll 8
    for (int r = 0; r < kMr; ++r) {
      const int8_t* xq = job.xq + rows[r] * job.k + b * kQBlock;
      const __m512i x =
          pair ? _mm512_loadu_si512(xq)
               : _mm512_zextsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq)));
      const float* xd = job.xd + rows[r] * n_blocks + b;
      const __m512 dx =
          _mm512_insertf32x8(_mm512_set1_ps(xd[0]), _mm256_set1_ps(pair ? xd[1] : 0.0f), 1);
#pragma GCC unroll 8
      for (int c = 0; c < kNr; ++c) {
        const __m512i sx = _mm512_mask_sub_epi8(x, neg[c], _mm512_setzero_si512(), x);
        const __m512 dot =
            _mm512_cvtepi32_ps(kVnni ? _mm512_dpbusd_epi32(_mm512_setzero_si512(), abs_w[c], sx)
                                     : dot4_maddubs(abs_w[c], sx));
        acc[r][c] = _mm512_fmadd_ps(dot, _mm512_mul_ps(dx, dw[c]), acc[r][c]);
      }
    }
  }
  for (int r = 0; r < kMr && i + r < i1; ++r) {
    for (int c = 0; c < kNr && j + c < j1; ++c) {
      job.y[(i + r) * job.n + j + c] = _mm512_reduce_add_ps(acc[r][c]);
    }
  }
}

// Two blocks' f16 scales d0 (lanes 0-7) and d1 (lanes 8-15; 0 when there is no second block) as
// f32, exactly.
__m512 pair_scales(const uint8_t* block0, int64_t block_bytes, bool pair) {
  const __m128i d0 = _mm_set1_epi16(static_cast<int16_t>(load_u16(block0)));
  const __m128i d1 = pair ? _mm_set1_epi16(static_cast<int16_t>(load_u16(block0 + block_bytes)))
                          : _mm_setzero_si128();
  return _mm512_cvtph_ps(_mm256_set_m128i(d1, d0));
}

// Two consecutive blocks of one weight row as 64 bytes w + 128 (w XOR 0x80: vpdpbusd multiplies
// unsigned by signed bytes), zero weights (128) past the row.
template <bool kQ4>
__m512i load_pair_biased(const uint8_t* block0, bool pair) {
  __m256i lo, hi = _mm256_setzero_si256();
  if constexpr (kQ4) {
    lo = q4_0_block(block0);
    if (pair) hi = q4_0_block(block0 + 18);
  } else {
    lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block0 + 2));
    if (pair) hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block0 + 34 + 2));
  }
  return _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1),
                          _mm512_set1_epi8(static_cast<char>(0x80)));
}

// Q8_0/Q4_0 weights against int8 activations with VNNI, 64 k (two blocks) per step. vpdpbusd
// sums (w + 128)·x over each group of 4 bytes onto an accumulator that starts at −128·Σx
// (MatmulJob::x_sum128, prepared once per activation row), so lane t holds exactly Σ w·x over
// bytes 4t..4t+3 — the same integers as the maddubs form, with one instruction per (row, column)
// pair and the weight-side work shared by the kMr rows, the activation side by the kNr columns.
// |(w+128)·x| ≤ 255·127: four of them plus the start fit i32 (vpdpbusd does not saturate).
template <bool kQ4, int kMr, int kNr>
void tile_q8act_vnni(const MatmulJob& job, int64_t i, int64_t i1, int64_t j, int64_t j1) {
  constexpr int64_t kBlockBytes = kQ4 ? 18 : 34;
  const int64_t n_blocks = job.k / kQBlock, n_pairs = (n_blocks + 1) / 2;
  const auto* wbase = static_cast<const uint8_t*>(job.w->data);
  const uint8_t* wr[kNr];
  for (int c = 0; c < kNr; ++c) wr[c] = wbase + std::min(j + c, j1 - 1) * n_blocks * kBlockBytes;
  int64_t rows[kMr];
  for (int r = 0; r < kMr; ++r) rows[r] = std::min(i + r, i1 - 1);
  __m512 acc[kMr][kNr];
#pragma GCC unroll 8
  for (int r = 0; r < kMr; ++r)
#pragma GCC unroll 8
    for (int c = 0; c < kNr; ++c) acc[r][c] = _mm512_setzero_ps();
  for (int64_t p = 0; p < n_pairs; ++p) {
    const bool pair = 2 * p + 1 < n_blocks;
    __m512i wu[kNr];
    __m512 dw[kNr];
#pragma GCC unroll 8
    for (int c = 0; c < kNr; ++c) {
      const uint8_t* block0 = wr[c] + 2 * p * kBlockBytes;
      wu[c] = load_pair_biased<kQ4>(block0, pair);
      dw[c] = pair_scales(block0, kBlockBytes, pair);
    }
#pragma GCC unroll 8
    for (int r = 0; r < kMr; ++r) {
      const int8_t* xq = job.xq + rows[r] * job.k + 2 * p * kQBlock;
      // An unpaired last block leaves the high half of x zero.
      const __m512i x =
          pair ? _mm512_loadu_si512(xq)
               : _mm512_zextsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq)));
      const int64_t at = (rows[r] * n_pairs + p) * 16;
      const __m512i start = _mm512_loadu_si512(job.x_sum128 + at);
      const __m512 dx = _mm512_loadu_ps(job.xd16 + at);
#pragma GCC unroll 8
      for (int c = 0; c < kNr; ++c) {
        const __m512i dot = _mm512_dpbusd_epi32(start, wu[c], x);
        acc[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(dx, dw[c]), acc[r][c]);
      }
    }
  }
  for (int r = 0; r < kMr && i + r < i1; ++r) {
    for (int c = 0; c < kNr && j + c < j1; ++c) {
      job.y[(i + r) * job.n + j + c] = _mm512_reduce_add_ps(acc[r][c]);
    }
  }
}

template <bool kVnni, bool kQ4>
void block_q8act(const MatmulJob& job, int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
  if constexpr (kVnni) {
    for_each_tile<4, 4, 8>(
        i0, i1, j0, j1,
        [&](int64_t i, int64_t j) { tile_q8act_vnni<kQ4, 4, 4>(job, i, i1, j, j1); },
        [&](int64_t i, int64_t j) {
          one_row(j, j1, 8, [&](int64_t jj) { tile_q8act<true, kQ4, 1, 1>(job, i, i1, jj, j1); });
        });
  } else {
    for_each_tile<2, 4, 8>(
        i0, i1, j0, j1,
        [&](int64_t i, int64_t j) { tile_q8act<false, kQ4, 2, 4>(job, i, i1, j, j1); },
        [&](int64_t i, int64_t j) {
          one_row(j, j1, 8, [&](int64_t jj) { tile_q8act<false, kQ4, 1, 1>(job, i, i1, jj, j1); });
        });
  }
}

template <typename Row>
void rows_to_bf16(const WeightView& w, int64_t row0, int64_t n_rows, int64_t ld, uint16_t* out) {
  for (int64_t r = 0; r < n_rows; ++r) {
    const Row row(w, row0 + r);
    uint16_t* o = out + r * ld;
    for (int64_t k0 = 0; k0 < ld; k0 += 16) {
      const __m512 v = k0 < w.cols ? row.decode(k0, mask16(w.cols - k0)) : _mm512_setzero_ps();
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + k0), (__m256i)_mm512_cvtneps_pbh(v));
    }
  }
}

// Q blocks as f32 through the same integer decode as the kernels.
struct RowQ {
  const uint8_t* p;
  int64_t n_blocks;
  bool q4;
  RowQ(const WeightView& w, int64_t row) : n_blocks(w.cols / kQBlock), q4(w.dtype == DType::kQ4_0) {
    p = static_cast<const uint8_t*>(w.data) + row * n_blocks * (q4 ? 18 : 34);
  }
  __m512 decode(int64_t k0, __mmask16) const {  // k0 a multiple of 16; cols a multiple of 32
    const int64_t b = k0 / kQBlock;
    const uint8_t* block = p + b * (q4 ? 18 : 34);
    const __m256i q =
        q4 ? q4_0_block(block) : _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + 2));
    const __m128i half =
        (k0 % kQBlock) == 0 ? _mm256_castsi256_si128(q) : _mm256_extracti128_si256(q, 1);
    return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(half)),
                         _mm512_set1_ps(_cvtsh_ss(load_u16(block))));
  }
};

}  // namespace

void matmul_block_avx512(const MatmulJob& job, int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
  switch (job.w->dtype) {
    case DType::kF32:
      return block_f32<RowF32>(job, i0, i1, j0, j1);
    case DType::kF16:
      return block_f32<RowF16>(job, i0, i1, j0, j1);
    case DType::kBF16:
      if (job.use_bf16_dot) return block_bf16_dot(job, i0, i1, j0, j1);
      return block_f32<RowBF16>(job, i0, i1, j0, j1);
    case DType::kF8E4M3:
      return block_fp8(job, i0, i1, j0, j1);
    case DType::kQ8_0:
      if (job.xq == nullptr) return block_f32<RowQF32<false>>(job, i0, i1, j0, j1);
      if (job.use_vnni) return block_q8act<true, false>(job, i0, i1, j0, j1);
      return block_q8act<false, false>(job, i0, i1, j0, j1);
    case DType::kQ4_0:
      if (job.xq == nullptr) return block_f32<RowQF32<true>>(job, i0, i1, j0, j1);
      if (job.use_vnni) return block_q8act<true, true>(job, i0, i1, j0, j1);
      return block_q8act<false, true>(job, i0, i1, j0, j1);
    default:
      break;
  }
}

void avx512_rows_to_bf16(const WeightView& w, int64_t row0, int64_t n_rows, int64_t ld,
                         uint16_t* out) {
  switch (w.dtype) {
    case DType::kF32:
      return rows_to_bf16<RowF32>(w, row0, n_rows, ld, out);
    case DType::kF16:
      return rows_to_bf16<RowF16>(w, row0, n_rows, ld, out);
    case DType::kBF16:
      return rows_to_bf16<RowBF16>(w, row0, n_rows, ld, out);
    case DType::kF8E4M3:
      return rows_to_bf16<RowFp8>(w, row0, n_rows, ld, out);
    case DType::kQ8_0:
    case DType::kQ4_0:
      return rows_to_bf16<RowQ>(w, row0, n_rows, ld, out);
    default:
      break;
  }
}

}  // namespace seekserve::matmul_detail

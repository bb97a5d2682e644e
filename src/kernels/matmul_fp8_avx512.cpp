// kAvx512 FP8 (E4M3, 128×128 block scales) kernel for CPUs with AVX512_VBMI (and the AVX-512
// F/BW/VL/DQ of kAvx512). Compiled with the AVX-512 flags plus -mavx512vbmi (CMakeLists.txt);
// matmul.cpp calls it only when the CPU has VBMI (MatmulJob::x_fp8).
//
// Why: the f32 FP8 kernel (matmul_avx512.cpp tile_fp8) widens E4M3 → f16 → f32 with ~10 vector
// ops per 32 weights and keeps one dependent FMA chain per output, so the single-row GEMV ran at
// about half the memory read rate (docs/BENCHMARKS.md "Engine"). Here:
//   - every E4M3 value is exactly a bf16 value, i.e. the top half of an f32: two vpermi2b byte
//     table lookups (low and high byte of that bf16, indexed by the 7 magnitude bits), one ternlog
//     for the sign and two byte interleaves give 64 weights as bf16 words; a shift and an AND
//     widen each half to exact f32. NaN codes become NaN, as the reference reads them;
//   - activations stay f32 (rounding them to bf16 flipped MoE routing, BENCHMARKS "Engine"):
//     each product is the reference's, x · (fp8 · scale_inv rounded to f32), so the exactness
//     checks hold without a separate exact mode;
//   - two accumulators per output, so a single activation row is not bound by FMA latency.
// The interleave leaves weight k of a 64-chunk in a fixed order (below); fp8_permute_x lays each
// activation row out in the same order once per call, so no shuffles run per weight.
//
// Arithmetic of each output Y[i][j] (the same in every tile, so results do not depend on m): per
// 64-column chunk, with w = f32(fp8) · scale_inv[block] (rounded once, as the reference does) and
// x in fp8_permute_x order: acc_a = fma(x[0:16], w[0:16], acc_a); acc_b = fma(x[32:48],
// w[32:48], acc_b); acc_a = fma(x[16:32], w[16:32], acc_a); acc_b = fma(x[48:64], w[48:64],
// acc_b); finally _mm512_reduce_add_ps(acc_a + acc_b).

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "core/dtype.h"
#include "kernels/matmul_kernels.h"

namespace seekserve::matmul_detail {
namespace {

constexpr int64_t kChunksPerScaleBlock = kFp8ScaleBlock / kFp8Chunk;
static_assert(kFp8ScaleBlock % kFp8Chunk == 0);

// bf16 of every E4M3 magnitude code 0..127, split into low and high bytes (the sign is bit 15 of
// the bf16 and bit 7 of the code, ORed in by decode64).
struct Fp8Bf16Tables {
  alignas(64) uint8_t lo[128];
  alignas(64) uint8_t hi[128];
};

const Fp8Bf16Tables& fp8_bf16_tables() {
  static const Fp8Bf16Tables tables = [] {
    Fp8Bf16Tables t{};
    for (int code = 0; code < 128; ++code) {
      // Exact: an E4M3 value has 4 significant bits and an exponent within bf16's range, so the
      // low 16 bits of its f32 are zero (the NaN code reads as f32 quiet NaN 0x7FC00000).
      uint32_t bits;
      const float v = fp8_e4m3_to_f32(static_cast<uint8_t>(code));
      std::memcpy(&bits, &v, 4);
      t.lo[code] = static_cast<uint8_t>(bits >> 16);
      t.hi[code] = static_cast<uint8_t>(bits >> 24);
    }
    return t;
  }();
  return tables;
}

struct Tables {
  __m512i lo0, lo1, hi0, hi1;
};

Tables load_tables() {
  const Fp8Bf16Tables& t = fp8_bf16_tables();
  return {_mm512_load_si512(t.lo), _mm512_load_si512(t.lo + 64), _mm512_load_si512(t.hi),
          _mm512_load_si512(t.hi + 64)};
}

// 64 E4M3 codes → 64 exact f32 weights times `scale`, in four vectors. With the codes' 128-bit
// lane L (bytes 16L..16L+15) and p = 0..3, lane 4L + p of
//   w[0] holds code 16L + 2p,  w[1] code 16L + 2p + 1,  w[2] code 16L + 8 + 2p,  w[3] 16L + 9 + 2p.
inline void decode64(const Tables& t, __m512i codes, __m512 scale, __m512 w[4]) {
  // vpermi2b reads index bits 0-6 (bit 6 picks the second table) and ignores the sign bit 7.
  const __m512i lo = _mm512_permutex2var_epi8(t.lo0, codes, t.lo1);
  const __m512i hi_abs = _mm512_permutex2var_epi8(t.hi0, codes, t.hi1);
  // hi_abs | (codes & 0x80): truth table of A | (B & C) with A = 0xF0, B = 0xCC, C = 0xAA.
  const __m512i hi = _mm512_ternarylogic_epi32(hi_abs, codes, _mm512_set1_epi8(-128), 0xF8);
  // bf16 words: a = codes 16L + 0..7, b = codes 16L + 8..15; each 32-bit lane holds two of them.
  const __m512i a = _mm512_unpacklo_epi8(lo, hi), b = _mm512_unpackhi_epi8(lo, hi);
  const __m512i high_half = _mm512_set1_epi32(static_cast<int>(0xFFFF0000u));
  w[0] = _mm512_mul_ps(_mm512_castsi512_ps(_mm512_slli_epi32(a, 16)), scale);
  w[1] = _mm512_mul_ps(_mm512_castsi512_ps(_mm512_and_si512(a, high_half)), scale);
  w[2] = _mm512_mul_ps(_mm512_castsi512_ps(_mm512_slli_epi32(b, 16)), scale);
  w[3] = _mm512_mul_ps(_mm512_castsi512_ps(_mm512_and_si512(b, high_half)), scale);
}

// Rows [i, i + kMr) (clipped to i1 by repeating the last) × column j.
template <int kMr>
void tile(const MatmulJob& job, const Tables& t, int64_t i, int64_t i1, int64_t j) {
  const WeightView& w = *job.w;
  const int64_t k = job.k;
  const uint8_t* wrow = static_cast<const uint8_t*>(w.data) + j * k;
  const float* scale_row =
      w.scale_inv + (j / kFp8ScaleBlock) * ((k + kFp8ScaleBlock - 1) / kFp8ScaleBlock);
  const float* xr[kMr];
  for (int r = 0; r < kMr; ++r) xr[r] = job.x_fp8 + std::min(i + r, i1 - 1) * job.x_fp8_ld;
  __m512 acc_a[kMr], acc_b[kMr];
#pragma GCC unroll 8
  for (int r = 0; r < kMr; ++r) acc_a[r] = acc_b[r] = _mm512_setzero_ps();
  auto step = [&](int64_t ch, __m512i codes) {
    __m512 wv[4];
    decode64(t, codes, _mm512_set1_ps(scale_row[ch / kChunksPerScaleBlock]), wv);
#pragma GCC unroll 8
    for (int r = 0; r < kMr; ++r) {
      const float* xc = xr[r] + ch * kFp8Chunk;
      acc_a[r] = _mm512_fmadd_ps(_mm512_loadu_ps(xc), wv[0], acc_a[r]);
      acc_b[r] = _mm512_fmadd_ps(_mm512_loadu_ps(xc + 32), wv[2], acc_b[r]);
      acc_a[r] = _mm512_fmadd_ps(_mm512_loadu_ps(xc + 16), wv[1], acc_a[r]);
      acc_b[r] = _mm512_fmadd_ps(_mm512_loadu_ps(xc + 48), wv[3], acc_b[r]);
    }
  };
  // Plain loads in the loop (masked loads are much slower on some CPUs); a masked one for the
  // row's tail, whose codes past k read as 0 (+0.0) against zero activations.
  const int64_t full = k / kFp8Chunk;
  for (int64_t ch = 0; ch < full; ++ch) step(ch, _mm512_loadu_si512(wrow + ch * kFp8Chunk));
  if (const int64_t left = k - full * kFp8Chunk; left > 0) {
    step(full, _mm512_maskz_loadu_epi8((__mmask64(1) << left) - 1, wrow + full * kFp8Chunk));
  }
#pragma GCC unroll 8
  for (int r = 0; r < kMr; ++r) {
    const float v = _mm512_reduce_add_ps(_mm512_add_ps(acc_a[r], acc_b[r]));
    if (i + r < i1) job.y[(i + r) * job.n + j] = v;
  }
}

// Two activation rows × four weight columns, the same arithmetic per output as tile<1>: the
// rows' activations of a chunk stay in registers while each column is decoded in turn, so every
// activation load serves four columns and every decode two rows.
void tile_2x4(const MatmulJob& job, const Tables& t, int64_t i, int64_t i1, int64_t j, int64_t j1) {
  constexpr int kMr = 2, kNr = 4;
  const WeightView& w = *job.w;
  const int64_t k = job.k;
  const int64_t n_scale_cols = (k + kFp8ScaleBlock - 1) / kFp8ScaleBlock;
  const uint8_t* wrow[kNr];
  const float* scale_row[kNr];
  for (int c = 0; c < kNr; ++c) {
    const int64_t jj = std::min(j + c, j1 - 1);
    wrow[c] = static_cast<const uint8_t*>(w.data) + jj * k;
    scale_row[c] = w.scale_inv + (jj / kFp8ScaleBlock) * n_scale_cols;
  }
  const float* xr[kMr];
  for (int r = 0; r < kMr; ++r) xr[r] = job.x_fp8 + std::min(i + r, i1 - 1) * job.x_fp8_ld;
  __m512 acc[kMr][kNr][2];
#pragma GCC unroll 8
  for (int r = 0; r < kMr; ++r)
#pragma GCC unroll 8
    for (int c = 0; c < kNr; ++c) acc[r][c][0] = acc[r][c][1] = _mm512_setzero_ps();
  const int64_t n_chunks = (k + kFp8Chunk - 1) / kFp8Chunk;
  const int64_t left = k - (n_chunks - 1) * kFp8Chunk;
  for (int64_t ch = 0; ch < n_chunks; ++ch) {
    __m512 xv[kMr][4];
#pragma GCC unroll 8
    for (int r = 0; r < kMr; ++r)
#pragma GCC unroll 4
      for (int v = 0; v < 4; ++v) xv[r][v] = _mm512_loadu_ps(xr[r] + ch * kFp8Chunk + 16 * v);
#pragma GCC unroll 4
    for (int c = 0; c < kNr; ++c) {
      const uint8_t* p = wrow[c] + ch * kFp8Chunk;
      const __m512i codes = ch + 1 < n_chunks || left == kFp8Chunk
                                ? _mm512_loadu_si512(p)
                                : _mm512_maskz_loadu_epi8((__mmask64(1) << left) - 1, p);
      __m512 wv[4];
      decode64(t, codes, _mm512_set1_ps(scale_row[c][ch / kChunksPerScaleBlock]), wv);
#pragma GCC unroll 8
      for (int r = 0; r < kMr; ++r) {
        acc[r][c][0] = _mm512_fmadd_ps(xv[r][0], wv[0], acc[r][c][0]);
        acc[r][c][1] = _mm512_fmadd_ps(xv[r][2], wv[2], acc[r][c][1]);
        acc[r][c][0] = _mm512_fmadd_ps(xv[r][1], wv[1], acc[r][c][0]);
        acc[r][c][1] = _mm512_fmadd_ps(xv[r][3], wv[3], acc[r][c][1]);
      }
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < kMr; ++r) {
#pragma GCC unroll 8
    for (int c = 0; c < kNr; ++c) {
      const float v = _mm512_reduce_add_ps(_mm512_add_ps(acc[r][c][0], acc[r][c][1]));
      if (i + r < i1 && j + c < j1) job.y[(i + r) * job.n + j + c] = v;
    }
  }
}

}  // namespace

int64_t fp8_permute_x_ld(int64_t k) {
  return (k + kFp8Chunk - 1) / kFp8Chunk * kFp8Chunk;
}

void fp8_permute_x(const float* x, int64_t k, float* out) {
  // Per chunk: load the 64 values as four vectors X_L (L = 128-bit lane of the weight codes),
  // gather each X_L's quads {even of 0-7, odd of 0-7, even of 8-15, odd of 8-15}, then transpose
  // the 4×4 quads so that vector v takes quad v of every X_L (decode64's order).
  const __m512i pick = _mm512_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7, 8, 10, 12, 14, 9, 11, 13, 15);
  for (int64_t c = 0; c * kFp8Chunk < k; ++c) {
    __m512 y[4];
    for (int lane = 0; lane < 4; ++lane) {
      const int64_t k0 = c * kFp8Chunk + lane * 16;
      const int64_t left = std::clamp<int64_t>(k - k0, 0, 16);
      const __m512 v = left == 16 ? _mm512_loadu_ps(x + k0)
                                  : _mm512_maskz_loadu_ps(__mmask16((1u << left) - 1), x + k0);
      y[lane] = _mm512_permutexvar_ps(pick, v);
    }
    const __m512 t0 = _mm512_shuffle_f32x4(y[0], y[1], 0x44),
                 t1 = _mm512_shuffle_f32x4(y[2], y[3], 0x44);
    const __m512 t2 = _mm512_shuffle_f32x4(y[0], y[1], 0xEE),
                 t3 = _mm512_shuffle_f32x4(y[2], y[3], 0xEE);
    float* o = out + c * kFp8Chunk;
    _mm512_storeu_ps(o, _mm512_shuffle_f32x4(t0, t1, 0x88));
    _mm512_storeu_ps(o + 16, _mm512_shuffle_f32x4(t0, t1, 0xDD));
    _mm512_storeu_ps(o + 32, _mm512_shuffle_f32x4(t2, t3, 0x88));
    _mm512_storeu_ps(o + 48, _mm512_shuffle_f32x4(t2, t3, 0xDD));
  }
}

void matmul_block_fp8_vbmi(const MatmulJob& job, int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
  const Tables t = load_tables();
  // Pairs of activation rows run tile_2x4; a single row (decode, or the last of an odd count)
  // runs one weight row at a time, one sequential stream per thread (see matmul_avx512.cpp
  // one_row). (4×1, 4×2 and 8×1 tiles measured no faster than 2×4 at 4 and 16 rows.)
  for_each_tile<2, 4, 8>(
      i0, i1, j0, j1, [&](int64_t i, int64_t j) { tile_2x4(job, t, i, i1, j, j1); },
      [&](int64_t i, int64_t j) {
        for (int64_t jj = j; jj < std::min(j + 8, j1); ++jj) tile<1>(job, t, i, i1, jj);
      });
}

}  // namespace seekserve::matmul_detail

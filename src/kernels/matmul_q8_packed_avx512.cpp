// The VNNI kernel for Q8_0/Q4_0 weights in the 16-row-interleaved layout (WeightLayout::kRows16,
// matmul.h) against int8 activations. Compiled with the AVX-512 + VNNI flags and
// -ffp-contract=off (CMakeLists.txt): its float steps must stay a separate multiply and add, as in
// matmul_reference_q8act, not fuse into an FMA.
//
// Lane r of every vector belongs to weight row 16g + r of a group g. Per 32-block, eight vpdpbusd
// (64 weight bytes each, read in file order: no gather) add the whole block's integer dot of each
// row into its lane, so the float work — convert, scale by d_x·d_w, add — is done once per block
// per (row, column), where the row-major kernel does it per 4 bytes. A single activation row
// (decode, memory-bound) streams one group at a time; several rows run 4 rows × 2 groups tiles
// (tile_multi), each broadcast of activation bytes feeding two groups' dots. Each
// output's arithmetic is the reference's: for b in k order, sum += (d_x[b]·d_w[b])·dot[b] in f32,
// with dot exact; the same whatever m, tile or task, so results are bit-identical to
// matmul_reference_q8act and batch-invariant.

#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/matmul_kernels.h"

namespace seekserve::matmul_detail {
namespace {

constexpr int kRowsMulti = 4;    // activation rows per tile_multi
constexpr int kGroupsMulti = 2;  // 16-row weight groups per tile_multi

int32_t load_i32(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Vector c of one packed block: lane r holds row r's 4 unsigned weight bytes that meet activation
// bytes 4c..4c+3 (Q8_0: the stored w + 128; Q4_0: chunk c's low nibbles for c < 4, chunk c − 4's
// high nibbles — elements 16 + 4(c − 4) = 4c — for c ≥ 4, both w + 8).
template <bool kQ4>
void load_block(const uint8_t* block, __m512i wv[8]) {
  if constexpr (kQ4) {
    const __m512i low = _mm512_set1_epi8(15);
#pragma GCC unroll 4
    for (int c = 0; c < 4; ++c) {
      const __m512i v = _mm512_loadu_si512(block + 32 + 64 * c);
      wv[c] = _mm512_and_si512(v, low);
      wv[c + 4] = _mm512_and_si512(_mm512_srli_epi16(v, 4), low);
    }
  } else {
#pragma GCC unroll 8
    for (int c = 0; c < 8; ++c) wv[c] = _mm512_loadu_si512(block + 32 + 64 * c);
  }
}

// Activation rows [i, i + kMr) × the 16 weight rows of group g.
template <bool kQ4, int kMr>
void tile(const MatmulJob& job, int64_t i, int64_t g) {
  constexpr int64_t kGroupBlockBytes = 16 * (kQ4 ? 18 : 34);
  const int64_t n_blocks = job.k / kQBlock;
  const uint8_t* block = static_cast<const uint8_t*>(job.w->data) + g * n_blocks * kGroupBlockBytes;
  __m512 acc[kMr];
#pragma GCC unroll 16
  for (int r = 0; r < kMr; ++r) acc[r] = _mm512_setzero_ps();
  for (int64_t b = 0; b < n_blocks; ++b, block += kGroupBlockBytes) {
    const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(block)));
    __m512i wv[8];
    load_block<kQ4>(block, wv);
#pragma GCC unroll 16
    for (int r = 0; r < kMr; ++r) {
      const int64_t at = (i + r) * n_blocks + b;  // row i + r, block b
      const int8_t* xq = job.xq + at * kQBlock;
      // Two chains of four (latency); the integer sum is exact in any order. The start −bias·Σx
      // turns Σ (w + bias)·x into Σ w·x.
      __m512i s0 = _mm512_set1_epi32(job.x_block_sum[at]);
      __m512i s1 = _mm512_setzero_si512();
#pragma GCC unroll 4
      for (int c = 0; c < 8; c += 2) {
        s0 = _mm512_dpbusd_epi32(s0, wv[c], _mm512_set1_epi32(load_i32(xq + 4 * c)));
        s1 = _mm512_dpbusd_epi32(s1, wv[c + 1], _mm512_set1_epi32(load_i32(xq + 4 * c + 4)));
      }
      const __m512 dot = _mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1));
      const __m512 scale = _mm512_mul_ps(_mm512_set1_ps(job.xd[at]), dw);
      acc[r] = _mm512_add_ps(acc[r], _mm512_mul_ps(scale, dot));
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < kMr; ++r) _mm512_storeu_ps(job.y + (i + r) * job.n + g * 16, acc[r]);
}

// Vector c alone (see load_block).
template <bool kQ4>
__m512i load_chunk(const uint8_t* block, int c) {
  if constexpr (kQ4) {
    const __m512i v = _mm512_loadu_si512(block + 32 + 64 * (c & 3));
    return _mm512_and_si512(c < 4 ? v : _mm512_srli_epi16(v, 4), _mm512_set1_epi8(15));
  } else {
    return _mm512_loadu_si512(block + 32 + 64 * c);
  }
}

// Activation rows [i, i + kMr) × kG groups from g (kG · 16 weight rows), for several rows: each
// broadcast of 4 activation bytes feeds kG vpdpbusd (a broadcast per dot halves the rate here)
// and each weight vector kMr of them. Per (row, group) one chain of eight dots; the same
// integers and the same float steps per output as tile().
template <bool kQ4, int kMr, int kG>
void tile_multi(const MatmulJob& job, int64_t i, int64_t g) {
  constexpr int64_t kGroupBlockBytes = 16 * (kQ4 ? 18 : 34);
  const int64_t n_blocks = job.k / kQBlock;
  const uint8_t* block[kG];
  for (int h = 0; h < kG; ++h) {
    block[h] = static_cast<const uint8_t*>(job.w->data) + (g + h) * n_blocks * kGroupBlockBytes;
  }
  __m512 acc[kMr][kG];
#pragma GCC unroll 8
  for (int r = 0; r < kMr; ++r)
#pragma GCC unroll 4
    for (int h = 0; h < kG; ++h) acc[r][h] = _mm512_setzero_ps();
  for (int64_t b = 0; b < n_blocks; ++b) {
    __m512i dot[kMr][kG];
#pragma GCC unroll 8
    for (int r = 0; r < kMr; ++r) {
      const __m512i start = _mm512_set1_epi32(job.x_block_sum[(i + r) * n_blocks + b]);
#pragma GCC unroll 4
      for (int h = 0; h < kG; ++h) dot[r][h] = start;
    }
#pragma GCC unroll 8
    for (int c = 0; c < 8; ++c) {
      __m512i wv[kG];
#pragma GCC unroll 4
      for (int h = 0; h < kG; ++h) wv[h] = load_chunk<kQ4>(block[h], c);
#pragma GCC unroll 8
      for (int r = 0; r < kMr; ++r) {
        const __m512i xb =
            _mm512_set1_epi32(load_i32(job.xq + ((i + r) * n_blocks + b) * kQBlock + 4 * c));
#pragma GCC unroll 4
        for (int h = 0; h < kG; ++h) dot[r][h] = _mm512_dpbusd_epi32(dot[r][h], wv[h], xb);
      }
    }
#pragma GCC unroll 4
    for (int h = 0; h < kG; ++h) {
      const __m512 dw =
          _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(block[h])));
#pragma GCC unroll 8
      for (int r = 0; r < kMr; ++r) {
        const __m512 scale = _mm512_mul_ps(_mm512_set1_ps(job.xd[(i + r) * n_blocks + b]), dw);
        acc[r][h] = _mm512_add_ps(acc[r][h], _mm512_mul_ps(scale, _mm512_cvtepi32_ps(dot[r][h])));
      }
      block[h] += kGroupBlockBytes;
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < kMr; ++r)
#pragma GCC unroll 4
    for (int h = 0; h < kG; ++h)
      _mm512_storeu_ps(job.y + (i + r) * job.n + (g + h) * 16, acc[r][h]);
}

// Rows [i0, i1) × kG groups from g.
template <bool kQ4, int kG>
void rows_multi(const MatmulJob& job, int64_t i0, int64_t i1, int64_t g) {
  int64_t i = i0;
  for (; i + kRowsMulti <= i1; i += kRowsMulti) tile_multi<kQ4, kRowsMulti, kG>(job, i, g);
  switch (i1 - i) {
    case 3:
      return tile_multi<kQ4, 3, kG>(job, i, g);
    case 2:
      return tile_multi<kQ4, 2, kG>(job, i, g);
    case 1:
      return tile_multi<kQ4, 1, kG>(job, i, g);
    default:
      return;
  }
}

template <bool kQ4>
void block_rows16(const MatmulJob& job, int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
  const int64_t n16 = job.n / 16 * 16;
  const int64_t g1 = std::min(j1, n16) / 16;
  if (i1 - i0 == 1) {
    // One activation row (decode): one group at a time, one sequential weight stream.
    for (int64_t g = j0 / 16; g < g1; ++g) tile<kQ4, 1>(job, i0, g);
  } else {
    int64_t g = j0 / 16;
    for (; g + kGroupsMulti <= g1; g += kGroupsMulti) rows_multi<kQ4, kGroupsMulti>(job, i0, i1, g);
    for (; g < g1; ++g) rows_multi<kQ4, 1>(job, i0, i1, g);
  }
  // Rows past the last whole group stay row-major: the same arithmetic, plainly.
  if (j1 > n16) matmul_block_q8act_generic(job, i0, i1, std::max(j0, n16), j1);
}

}  // namespace

void quantize_activations_q8_avx512(const float* x, int64_t k, int8_t* q, float* d,
                                    int32_t* block_sum, int32_t bias) {
  for (int64_t b = 0; b < k / kQBlock; ++b) {
    const float* xb = x + b * kQBlock;
    const __m512 lo = _mm512_loadu_ps(xb), hi = _mm512_loadu_ps(xb + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(lo), _mm512_abs_ps(hi)));
    // The scalar steps of quantize_activations_q8, lane by lane: same divisions, same products,
    // round to nearest even, same clamp.
    const float scale = amax / 127.0f;
    const float inv = scale != 0.0f ? 1.0f / scale : 0.0f;
    d[b] = scale;
    const __m512 vinv = _mm512_set1_ps(inv), lim = _mm512_set1_ps(127.0f);
    __m512i qi[2];
    const __m512 halves[2] = {lo, hi};
    for (int h = 0; h < 2; ++h) {
      __m512 v = _mm512_roundscale_ps(_mm512_mul_ps(halves[h], vinv),
                                      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      v = _mm512_min_ps(_mm512_max_ps(v, _mm512_sub_ps(_mm512_setzero_ps(), lim)), lim);
      qi[h] = _mm512_cvtps_epi32(v);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(q + b * kQBlock + 16 * h),
                       _mm512_cvtepi32_epi8(qi[h]));
    }
    if (block_sum != nullptr) {
      block_sum[b] = -bias * _mm512_reduce_add_epi32(_mm512_add_epi32(qi[0], qi[1]));
    }
  }
}

void matmul_block_rows16_avx512(const MatmulJob& job, int64_t i0, int64_t i1, int64_t j0,
                                int64_t j1) {
  if (job.w->dtype == DType::kQ4_0) return block_rows16<true>(job, i0, i1, j0, j1);
  return block_rows16<false>(job, i0, i1, j0, j1);
}

}  // namespace seekserve::matmul_detail

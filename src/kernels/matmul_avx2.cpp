// kAvx2 matmul kernels. Compiled with -mavx2 -mfma -mf16c (CMakeLists.txt); called only after the
// CPU was checked.
//
// Every output Y[i][j] is accumulated in one 8-lane register over k in increasing chunks of 8,
// summed across lanes in a fixed order, then the k % 8 tail is added in k order (float types):
// the order depends on k only, never on m or the task split.

#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "core/dtype.h"
#include "kernels/matmul_kernels.h"

namespace seekserve::matmul_detail {
namespace {

float hsum(__m256 v) {  // fixed order: (lo + hi), then pairs
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

struct RowF32 {
  const float* p = nullptr;
  RowF32() = default;
  RowF32(const WeightView& w, int64_t row) : p(static_cast<const float*>(w.data) + row * w.cols) {}
  __m256 decode(int64_t k0) const { return _mm256_loadu_ps(p + k0); }
};
struct RowF16 {
  const uint16_t* p = nullptr;
  RowF16() = default;
  RowF16(const WeightView& w, int64_t row)
      : p(static_cast<const uint16_t*>(w.data) + row * w.cols) {}
  __m256 decode(int64_t k0) const {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + k0)));
  }
};
struct RowBF16 {
  const uint16_t* p = nullptr;
  RowBF16() = default;
  RowBF16(const WeightView& w, int64_t row)
      : p(static_cast<const uint16_t*>(w.data) + row * w.cols) {}
  __m256 decode(int64_t k0) const {
    const __m256i wide =
        _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + k0)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
  }
};
// E4M3 → f16 bit move (exact up to the factor 2^-8 folded into the scale; see the AVX-512 file).
struct RowFp8 {
  const uint8_t* p = nullptr;
  const float* scale_row = nullptr;  // [ceil(cols / 128)] f32
  RowFp8() = default;
  RowFp8(const WeightView& w, int64_t row)
      : p(static_cast<const uint8_t*>(w.data) + row * w.cols),
        scale_row(w.scale_inv +
                  (row / kFp8ScaleBlock) * ((w.cols + kFp8ScaleBlock - 1) / kFp8ScaleBlock)) {}
  __m256 decode(int64_t k0) const {
    const __m128i v = _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + k0)));
    const __m128i sign = _mm_slli_epi16(_mm_and_si128(v, _mm_set1_epi16(0x80)), 8);
    const __m128i rest = _mm_slli_epi16(_mm_and_si128(v, _mm_set1_epi16(0x7F)), 7);
    const __m256 f = _mm256_cvtph_ps(_mm_or_si128(sign, rest));
    return _mm256_mul_ps(f, _mm256_set1_ps(256.0f * scale_row[k0 / kFp8ScaleBlock]));
  }
};

// Q8_0 / Q4_0 as exact f32 d·q (see the AVX-512 file). k0 is a multiple of 8 and cols of 32.
template <bool kQ4>
struct RowQF32 {
  const uint8_t* p = nullptr;
  RowQF32() = default;
  RowQF32(const WeightView& w, int64_t row)
      : p(static_cast<const uint8_t*>(w.data) + row * (w.cols / kQBlock) * (kQ4 ? 18 : 34)) {}
  __m256 decode(int64_t k0) const {
    const uint8_t* block = p + (k0 / kQBlock) * (kQ4 ? 18 : 34);
    const int64_t t = k0 % kQBlock;
    __m256i q;
    if constexpr (kQ4) {  // elements 0-15: low nibbles of the 16 bytes, 16-31: high nibbles
      const __m256i b = _mm256_cvtepu8_epi32(
          _mm_loadl_epi64(reinterpret_cast<const __m128i*>(block + 2 + t % 16)));
      q = _mm256_sub_epi32(
          _mm256_and_si256(_mm256_srli_epi32(b, t < 16 ? 0 : 4), _mm256_set1_epi32(15)),
          _mm256_set1_epi32(8));
    } else {
      q = _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(block + 2 + t)));
    }
    uint16_t d;
    std::memcpy(&d, block, 2);
    return _mm256_mul_ps(_mm256_cvtepi32_ps(q), _mm256_set1_ps(_cvtsh_ss(d)));
  }
};

// kMr rows × kNr columns, 8 k per step (3 × 4: 12 accumulators + 4 weights of 16 ymm).
template <typename Row, int kMr, int kNr>
void tile_f32(const MatmulJob& job, int64_t i, int64_t i1, int64_t j, int64_t j1) {
  const WeightView& w = *job.w;
  const int64_t k8 = job.k & ~int64_t{7};
  int64_t cols[kNr];
  Row rows[kNr];
  for (int c = 0; c < kNr; ++c) {
    cols[c] = std::min(j + c, j1 - 1);
    rows[c] = Row(w, cols[c]);
  }
  const float* xr[kMr];
  for (int r = 0; r < kMr; ++r) xr[r] = job.x + std::min(i + r, i1 - 1) * job.k;
  __m256 acc[kMr][kNr];
#pragma GCC unroll 4
  for (int r = 0; r < kMr; ++r)
#pragma GCC unroll 4
    for (int c = 0; c < kNr; ++c) acc[r][c] = _mm256_setzero_ps();
  for (int64_t k0 = 0; k0 < k8; k0 += 8) {
    __m256 wv[kNr];
#pragma GCC unroll 4
    for (int c = 0; c < kNr; ++c) wv[c] = rows[c].decode(k0);
#pragma GCC unroll 4
    for (int r = 0; r < kMr; ++r) {
      const __m256 xv = _mm256_loadu_ps(xr[r] + k0);
#pragma GCC unroll 4
      for (int c = 0; c < kNr; ++c) acc[r][c] = _mm256_fmadd_ps(xv, wv[c], acc[r][c]);
    }
  }
  for (int r = 0; r < kMr && i + r < i1; ++r) {
    for (int c = 0; c < kNr && j + c < j1; ++c) {
      float sum = hsum(acc[r][c]);
      for (int64_t t = k8; t < job.k; ++t) sum += xr[r][t] * weight_element(w, cols[c], t);
      job.y[(i + r) * job.n + j + c] = sum;
    }
  }
}

template <typename Row>
void block_f32(const MatmulJob& job, int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
  for_each_tile<3, 4, 4>(
      i0, i1, j0, j1, [&](int64_t i, int64_t j) { tile_f32<Row, 3, 4>(job, i, i1, j, j1); },
      [&](int64_t i, int64_t j) { tile_f32<Row, 1, 4>(job, i, i1, j, j1); });
}

uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// One Q block of a row as 32 signed bytes (Q4_0: nibble − 8) and its scale.
__m256i q_block(const uint8_t* block, bool q4) {
  if (!q4) return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + 2));
  const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(block + 2));
  const __m128i low = _mm_and_si128(bytes, _mm_set1_epi8(15));
  const __m128i high = _mm_and_si128(_mm_srli_epi16(bytes, 4), _mm_set1_epi8(15));
  return _mm256_sub_epi8(_mm256_set_m128i(high, low), _mm256_set1_epi8(8));
}

// Q8_0/Q4_0 against int8 activations, one block (32 k) per step; exact integer block dots via the
// sign trick (|w| ≤ 128 unsigned × ±x ≤ 127 signed: maddubs never saturates).
template <bool kQ4, int kMr, int kNr>
void tile_q8act(const MatmulJob& job, int64_t i, int64_t i1, int64_t j, int64_t j1) {
  const int64_t n_blocks = job.k / kQBlock;
  const int64_t block_bytes = kQ4 ? 18 : 34;
  const auto* wbase = static_cast<const uint8_t*>(job.w->data);
  const __m256i ones = _mm256_set1_epi16(1);
  const uint8_t* wr[kNr];
  for (int c = 0; c < kNr; ++c) wr[c] = wbase + std::min(j + c, j1 - 1) * n_blocks * block_bytes;
  int64_t rows[kMr];
  for (int r = 0; r < kMr; ++r) rows[r] = std::min(i + r, i1 - 1);
  __m256 acc[kMr][kNr];
#pragma GCC unroll 4
  for (int r = 0; r < kMr; ++r)
#pragma GCC unroll 4
    for (int c = 0; c < kNr; ++c) acc[r][c] = _mm256_setzero_ps();
  for (int64_t b = 0; b < n_blocks; ++b) {
    __m256i wq[kNr];
    __m256i abs_w[kNr];
    float dw[kNr];
#pragma GCC unroll 4
    for (int c = 0; c < kNr; ++c) {
      const uint8_t* block = wr[c] + b * block_bytes;
      wq[c] = q_block(block, kQ4);
      abs_w[c] = _mm256_sign_epi8(wq[c], wq[c]);
      dw[c] = _cvtsh_ss(load_u16(block));
    }
#pragma GCC unroll 4
    for (int r = 0; r < kMr; ++r) {
      const __m256i x = _mm256_loadu_si256(
          reinterpret_cast<const __m256i*>(job.xq + rows[r] * job.k + b * kQBlock));
      const float dx = job.xd[rows[r] * n_blocks + b];
#pragma GCC unroll 4
      for (int c = 0; c < kNr; ++c) {
        const __m256i dot =
            _mm256_madd_epi16(_mm256_maddubs_epi16(abs_w[c], _mm256_sign_epi8(x, wq[c])), ones);
        acc[r][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_set1_ps(dx * dw[c]), acc[r][c]);
      }
    }
  }
  for (int r = 0; r < kMr && i + r < i1; ++r) {
    for (int c = 0; c < kNr && j + c < j1; ++c) {
      job.y[(i + r) * job.n + j + c] = hsum(acc[r][c]);
    }
  }
}

template <bool kQ4>
void block_q8act(const MatmulJob& job, int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
  for_each_tile<2, 4, 4>(
      i0, i1, j0, j1, [&](int64_t i, int64_t j) { tile_q8act<kQ4, 2, 4>(job, i, i1, j, j1); },
      [&](int64_t i, int64_t j) { tile_q8act<kQ4, 1, 4>(job, i, i1, j, j1); });
}

}  // namespace

void matmul_block_avx2(const MatmulJob& job, int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
  switch (job.w->dtype) {
    case DType::kF32:
      return block_f32<RowF32>(job, i0, i1, j0, j1);
    case DType::kF16:
      return block_f32<RowF16>(job, i0, i1, j0, j1);
    case DType::kBF16:
      return block_f32<RowBF16>(job, i0, i1, j0, j1);
    case DType::kF8E4M3:
      return block_f32<RowFp8>(job, i0, i1, j0, j1);
    case DType::kQ8_0:
      if (job.xq == nullptr) return block_f32<RowQF32<false>>(job, i0, i1, j0, j1);
      return block_q8act<false>(job, i0, i1, j0, j1);
    case DType::kQ4_0:
      if (job.xq == nullptr) return block_f32<RowQF32<true>>(job, i0, i1, j0, j1);
      return block_q8act<true>(job, i0, i1, j0, j1);
    default:
      break;
  }
}

}  // namespace seekserve::matmul_detail

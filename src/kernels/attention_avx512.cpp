// AVX-512 attention loops (kernels/attention.h). Compiled with AVX-512 flags (CMakeLists.txt);
// called only on CPUs that have them.

#include <immintrin.h>

#include "kernels/attention.h"

namespace seekserve::attention_detail {
namespace {
__mmask16 tail_mask(int64_t remaining) {
  return remaining >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << remaining) - 1);
}
__m512 load(__mmask16 m, const float* p) {  // masked loads only at the tail (slow on Zen)
  return m == 0xFFFF ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(m, p);
}
}  // namespace

// Up to 4 heads share each loaded slot row; each (head, slot) sum lives in one register, lanes
// over i in increasing chunks of 16, then one horizontal sum: the order depends on len only.
void scores_avx512(const float* q, int64_t nq, int64_t q_ld, const float* rows, int64_t n,
                   int64_t row_ld, int64_t len, float scale, float* out, int64_t out_ld) {
  for (int64_t h0 = 0; h0 < nq; h0 += 4) {
    const int64_t nh = nq - h0 < 4 ? nq - h0 : 4;
    for (int64_t j = 0; j < n; ++j) {
      const float* row = rows + j * row_ld;
      __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                       _mm512_setzero_ps()};
      for (int64_t i = 0; i < len; i += 16) {
        const __mmask16 m = tail_mask(len - i);
        const __m512 r = load(m, row + i);
        for (int64_t h = 0; h < nh; ++h) {
          const float* qh = q + (h0 + h) * q_ld + i;
          acc[h] = _mm512_fmadd_ps(load(m, qh), r, acc[h]);
        }
      }
      for (int64_t h = 0; h < nh; ++h)
        out[(h0 + h) * out_ld + j] = _mm512_reduce_add_ps(acc[h]) * scale;
    }
  }
}

// Per head, 64 output values at a time stay in registers over all n slots.
void accumulate_avx512(const float* p, int64_t nq, int64_t p_ld, const float* rows, int64_t n,
                       int64_t row_ld, int64_t len, float* out, int64_t out_ld) {
  for (int64_t h = 0; h < nq; ++h) {
    const float* ph = p + h * p_ld;
    float* oh = out + h * out_ld;
    for (int64_t i0 = 0; i0 < len; i0 += 64) {
      __mmask16 m[4];
      __m512 acc[4];
      for (int c = 0; c < 4; ++c) {
        const int64_t i = i0 + 16 * c;
        m[c] = i < len ? tail_mask(len - i) : __mmask16(0);
        acc[c] = load(m[c], oh + i);
      }
      for (int64_t j = 0; j < n; ++j) {
        const __m512 pj = _mm512_set1_ps(ph[j]);
        const float* row = rows + j * row_ld + i0;
        for (int c = 0; c < 4; ++c) {
          acc[c] = _mm512_fmadd_ps(pj, load(m[c], row + 16 * c), acc[c]);
        }
      }
      for (int c = 0; c < 4; ++c) _mm512_mask_storeu_ps(oh + i0 + 16 * c, m[c], acc[c]);
    }
  }
}

}  // namespace seekserve::attention_detail

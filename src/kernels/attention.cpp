#include "kernels/attention.h"

#include <cmath>

namespace seekserve {

void attention_scores_on_path(IsaLevel path, const float* q, int64_t nq, int64_t q_ld,
                              const float* rows, int64_t n, int64_t row_ld, int64_t len,
                              float scale, float* out, int64_t out_ld) {
  if (path >= IsaLevel::kAvx512) {
    return attention_detail::scores_avx512(q, nq, q_ld, rows, n, row_ld, len, scale, out, out_ld);
  }
  for (int64_t h = 0; h < nq; ++h) {
    for (int64_t j = 0; j < n; ++j) {
      float dot = 0.0f;
      for (int64_t i = 0; i < len; ++i) dot += q[h * q_ld + i] * rows[j * row_ld + i];
      out[h * out_ld + j] = dot * scale;
    }
  }
}

void attention_accumulate_on_path(IsaLevel path, const float* p, int64_t nq, int64_t p_ld,
                                  const float* rows, int64_t n, int64_t row_ld, int64_t len,
                                  float* out, int64_t out_ld) {
  if (path >= IsaLevel::kAvx512) {
    return attention_detail::accumulate_avx512(p, nq, p_ld, rows, n, row_ld, len, out, out_ld);
  }
  for (int64_t h = 0; h < nq; ++h) {
    for (int64_t j = 0; j < n; ++j) {
      const float pj = p[h * p_ld + j];
      for (int64_t i = 0; i < len; ++i)
        out[h * out_ld + i] = std::fma(pj, rows[j * row_ld + i], out[h * out_ld + i]);
    }
  }
}

void attention_scores(const float* q, int64_t nq, int64_t q_ld, const float* rows, int64_t n,
                      int64_t row_ld, int64_t len, float scale, float* out, int64_t out_ld) {
  attention_scores_on_path(active_isa_level(), q, nq, q_ld, rows, n, row_ld, len, scale, out,
                           out_ld);
}

void attention_accumulate(const float* p, int64_t nq, int64_t p_ld, const float* rows, int64_t n,
                          int64_t row_ld, int64_t len, float* out, int64_t out_ld) {
  attention_accumulate_on_path(active_isa_level(), p, nq, p_ld, rows, n, row_ld, len, out, out_ld);
}

}  // namespace seekserve

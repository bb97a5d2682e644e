#pragma once
// The two inner loops of attention over a block of cached slots, for several query heads at once
// (head folding: the slots are read once for all heads of a group).
//
//   attention_scores:     out[h][j] = scale · Σ_{i<len} q[h][i] · rows[j][i]
//   attention_accumulate: out[h][i] += Σ_{j<n} p[h][j] · rows[j][i]   (j increasing, fused
//                         multiply-add per term)
//
// Strides are in floats. Paths: a scalar reference and AVX-512 (chosen from active_isa_level()).
// Determinism: each output's arithmetic depends only on its own inputs and `len` (scores) or `n`
// (accumulate), never on nq or the other heads, so a sequence's attention is the same whatever
// batch it is in. accumulate is bit-identical on both paths; scores are summed in 16 lanes on
// AVX-512 (tests/kernels/attention_test.cpp states the tolerance).
// Thread-safety: reentrant.

#include <cstdint>

#include "core/cpu_features.h"

namespace seekserve {

// q [nq, q_ld], rows [n, row_ld], out [nq, out_ld].
void attention_scores(const float* q, int64_t nq, int64_t q_ld, const float* rows, int64_t n,
                      int64_t row_ld, int64_t len, float scale, float* out, int64_t out_ld);
// p [nq, p_ld], rows [n, row_ld], out [nq, out_ld] (accumulated into).
void attention_accumulate(const float* p, int64_t nq, int64_t p_ld, const float* rows, int64_t n,
                          int64_t row_ld, int64_t len, float* out, int64_t out_ld);

// The same on an explicit path (kScalar is the reference; kAvx2 runs the reference; kAvx512 and
// kAmx run the AVX-512 code and need a CPU with it).
void attention_scores_on_path(IsaLevel path, const float* q, int64_t nq, int64_t q_ld,
                              const float* rows, int64_t n, int64_t row_ld, int64_t len,
                              float scale, float* out, int64_t out_ld);
void attention_accumulate_on_path(IsaLevel path, const float* p, int64_t nq, int64_t p_ld,
                                  const float* rows, int64_t n, int64_t row_ld, int64_t len,
                                  float* out, int64_t out_ld);

namespace attention_detail {
void scores_avx512(const float* q, int64_t nq, int64_t q_ld, const float* rows, int64_t n,
                   int64_t row_ld, int64_t len, float scale, float* out, int64_t out_ld);
void accumulate_avx512(const float* p, int64_t nq, int64_t p_ld, const float* rows, int64_t n,
                       int64_t row_ld, int64_t len, float* out, int64_t out_ld);
}  // namespace attention_detail

}  // namespace seekserve

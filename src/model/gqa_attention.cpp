// Grouped-query attention (Qwen2, Llama): heads share K/V in groups of heads / kv_heads; the
// cache slot of a token holds its rotated K then its V for every KV head.

#include <algorithm>
#include <cmath>

#include "kernels/attention.h"
#include "model/model_step.h"

namespace seekserve {

void Model::gqa_attention(Step& s, int64_t il, const float* x, float* y, KvCache& cache) {
  const ModelConfig& c = w_->config;
  const LayerWeights& L = w_->layers[static_cast<size_t>(il)];
  const int64_t T = s.n_tokens, H = c.num_attention_heads, KV = c.num_key_value_heads,
                d = c.head_dim;
  const int64_t kv_dim = KV * d, group = H / KV;

  std::vector<float> q(static_cast<size_t>(T * H * d)), kv(static_cast<size_t>(T * 2 * kv_dim));
  std::vector<float> k(static_cast<size_t>(T * kv_dim)), v(static_cast<size_t>(T * kv_dim));
  linear(x, T, L.wq, q.data());
  linear(x, T, L.wk, k.data());
  linear(x, T, L.wv, v.data());
  for (int64_t t = 0; t < T; ++t) {
    if (!L.bq.empty()) {
      for (int64_t i = 0; i < H * d; ++i) q[t * H * d + i] += L.bq[i];
      for (int64_t i = 0; i < kv_dim; ++i) k[t * kv_dim + i] += L.bk[i];
      for (int64_t i = 0; i < kv_dim; ++i) v[t * kv_dim + i] += L.bv[i];
    }
    for (int64_t h = 0; h < H; ++h) w_->rope.apply(q.data() + (t * H + h) * d, s.pos_of[t]);
    for (int64_t h = 0; h < KV; ++h) w_->rope.apply(k.data() + t * kv_dim + h * d, s.pos_of[t]);
    float* slot = kv.data() + t * 2 * kv_dim;
    std::copy_n(k.data() + t * kv_dim, kv_dim, slot);
    std::copy_n(v.data() + t * kv_dim, kv_dim, slot + kv_dim);
    const SequenceInput& in = s.batch[static_cast<size_t>(s.seq_of[t])];
    cache.write(il, in.block_table, s.pos_of[t], slot);
  }
  // Heads folded by KV group: a task is one token and one KV head, and reads each cached slot's
  // K (then V) once for the `group` query heads that share it.
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  const int64_t width = 2 * kv_dim, bs = cache.block_size();
  std::vector<float> o(static_cast<size_t>(T * H * d));
  attn_scratch_.resize(static_cast<size_t>(pool_.n_threads()));
  pool_.parallel_for(T * KV, [&](int64_t task, int thread) {
    const int64_t t = task / KV, kvh = task % KV, h0 = kvh * group;
    const SequenceInput& in = s.batch[static_cast<size_t>(s.seq_of[t])];
    const int64_t n_ctx = s.pos_of[t] + 1;
    std::vector<float>& scratch = attn_scratch_[static_cast<size_t>(thread)];
    scratch.resize(static_cast<size_t>(group * n_ctx + bs * width));
    float* scores = scratch.data();                 // [group, n_ctx]
    float* block_buf = scores + group * n_ctx;      // [bs, width] (non-F32 caches)
    const float* qh = q.data() + (t * H + h0) * d;  // [group, d]
    for (int64_t j0 = 0; j0 < n_ctx; j0 += bs) {
      const int64_t cnt = std::min(bs, n_ctx - j0);
      const float* rows =
          cache.block_rows(il, in.block_table[static_cast<size_t>(j0 / bs)], cnt, block_buf);
      attention_scores(qh, group, d, rows + kvh * d, cnt, width, d, scale, scores + j0, n_ctx);
    }
    float* out = o.data() + (t * H + h0) * d;  // [group, d]
    for (int64_t i = 0; i < group; ++i) {
      float* sc = scores + i * n_ctx;
      const float mx = *std::max_element(sc, sc + n_ctx);
      double sum = 0.0;
      for (int64_t j = 0; j < n_ctx; ++j) {
        sc[j] = std::exp(sc[j] - mx);
        sum += sc[j];
      }
      for (int64_t j = 0; j < n_ctx; ++j) sc[j] = static_cast<float>(sc[j] / sum);
      std::fill_n(out + i * d, d, 0.0f);
    }
    for (int64_t j0 = 0; j0 < n_ctx; j0 += bs) {
      const int64_t cnt = std::min(bs, n_ctx - j0);
      const float* rows =
          cache.block_rows(il, in.block_table[static_cast<size_t>(j0 / bs)], cnt, block_buf);
      attention_accumulate(scores + j0, group, n_ctx, rows + kv_dim + kvh * d, cnt, width, d, out,
                           d);
    }
  });
  linear(o.data(), T, L.wo, y);
}

}  // namespace seekserve

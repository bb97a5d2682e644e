// Grouped-query attention (Qwen2, Llama): heads share K/V in groups of heads / kv_heads; the
// cache slot of a token holds its rotated K then its V for every KV head.

#include <algorithm>
#include <cmath>

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
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  std::vector<float> o(static_cast<size_t>(T * H * d));
  pool_.parallel_for(T * H, [&](int64_t task, int) {
    const int64_t t = task / H, h = task % H, kvh = h / group;
    const SequenceInput& in = s.batch[static_cast<size_t>(s.seq_of[t])];
    const int64_t n_ctx = s.pos_of[t] + 1;
    const float* qh = q.data() + (t * H + h) * d;
    std::vector<float> kj(static_cast<size_t>(d)), scores(static_cast<size_t>(n_ctx));
    float mx = -INFINITY;
    for (int64_t j = 0; j < n_ctx; ++j) {
      cache.read(il, in.block_table, j, kvh * d, d, kj.data());
      float dot = 0.0f;
      for (int64_t i = 0; i < d; ++i) dot += qh[i] * kj[i];
      scores[j] = dot * scale;
      mx = std::max(mx, scores[j]);
    }
    double sum = 0.0;
    for (int64_t j = 0; j < n_ctx; ++j) {
      scores[j] = std::exp(scores[j] - mx);
      sum += scores[j];
    }
    float* out = o.data() + (t * H + h) * d;
    std::fill(out, out + d, 0.0f);
    for (int64_t j = 0; j < n_ctx; ++j) {
      cache.read(il, in.block_table, j, kv_dim + kvh * d, d, kj.data());
      const float p = static_cast<float>(scores[j] / sum);
      for (int64_t i = 0; i < d; ++i) out[i] += p * kj[i];
    }
  });
  linear(o.data(), T, L.wo, y);
}

}  // namespace seekserve

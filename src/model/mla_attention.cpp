// DeepSeek Multi-head Latent Attention, absorbed form (MODELS.md §2): the cache holds only the
// normalised latent c_t [kv_lora_rank] and the rotated shared rope key k_pe_t per token;
// q_abs_h = W_UKᵀ q_nope_h scores against c_t directly, and W_UV is applied to Σ p·c_t.

#include <algorithm>
#include <cmath>

#include "model/model_step.h"

namespace seekserve {
namespace {
// HF and DeepSeek build q_a_layernorm and kv_a_layernorm with the RMSNorm default eps, not the
// config's rms_norm_eps (the same 1e-6 in every release, but kept apart on purpose).
constexpr double kLatentNormEps = 1e-6;
}  // namespace

void Model::mla_attention(Step& s, int64_t il, const float* x, float* y, KvCache& cache) {
  const ModelConfig& c = w_->config;
  const LayerWeights& L = w_->layers[static_cast<size_t>(il)];
  const int64_t T = s.n_tokens, H = c.num_attention_heads;
  const int64_t nope = c.qk_nope_head_dim, rope = c.qk_rope_head_dim, v = c.v_head_dim;
  const int64_t r = c.kv_lora_rank, qk = nope + rope, width = r + rope;

  // q: [T, H, nope + rope]
  std::vector<float> q(static_cast<size_t>(T * H * qk));
  if (c.q_lora_rank > 0) {
    std::vector<float> qa(static_cast<size_t>(T * c.q_lora_rank));
    linear(x, T, L.wq_a, qa.data());
    for (int64_t t = 0; t < T; ++t) {
      float* row = qa.data() + t * c.q_lora_rank;
      rms_norm(row, L.q_a_norm.data(), c.q_lora_rank, kLatentNormEps, row);
    }
    linear(qa.data(), T, L.wq_b, q.data());
  } else {
    linear(x, T, L.wq_b, q.data());
  }
  // Latent and rope key of the new tokens, written to the cache: [T, r + rope]
  std::vector<float> kv(static_cast<size_t>(T * width));
  linear(x, T, L.wkv_a, kv.data());
  for (int64_t t = 0; t < T; ++t) {
    float* row = kv.data() + t * width;
    rms_norm(row, L.kv_a_norm.data(), r, kLatentNormEps, row);
    w_->rope.apply(row + r, s.pos_of[t]);
    const SequenceInput& in = s.batch[static_cast<size_t>(s.seq_of[t])];
    cache.write(il, in.block_table, s.pos_of[t], row);
  }
  // Per head: q_abs [T, r] = q_nope · W_UKᵀ; q_pe rotated in place.
  std::vector<float> q_abs(static_cast<size_t>(H * T * r));  // [H, T, r]
  {
    std::vector<float> q_nope(static_cast<size_t>(T * nope));
    for (int64_t h = 0; h < H; ++h) {
      for (int64_t t = 0; t < T; ++t)
        std::copy_n(q.data() + (t * H + h) * qk, nope, q_nope.data() + t * nope);
      linear(q_nope.data(), T, L.w_uk_t[static_cast<size_t>(h)], q_abs.data() + h * T * r);
    }
  }
  for (int64_t t = 0; t < T; ++t)
    for (int64_t h = 0; h < H; ++h) w_->rope.apply(q.data() + (t * H + h) * qk + nope, s.pos_of[t]);

  // Attention over the cache for every (token, head): o [H, T, r] = Σ_j p_j · c_j
  const float scale = static_cast<float>(mla_softmax_scale(c));
  std::vector<float> o(static_cast<size_t>(H * T * r));
  pool_.parallel_for(T * H, [&](int64_t task, int) {
    const int64_t t = task / H, h = task % H;
    const SequenceInput& in = s.batch[static_cast<size_t>(s.seq_of[t])];
    const int64_t n_ctx = s.pos_of[t] + 1;
    const float* qa = q_abs.data() + (h * T + t) * r;
    const float* qp = q.data() + (t * H + h) * qk + nope;
    std::vector<float> slot(static_cast<size_t>(width)), scores(static_cast<size_t>(n_ctx));
    float mx = -INFINITY;
    for (int64_t j = 0; j < n_ctx; ++j) {
      cache.read(il, in.block_table, j, 0, width, slot.data());
      float dot = 0.0f;
      for (int64_t i = 0; i < r; ++i) dot += qa[i] * slot[i];
      for (int64_t i = 0; i < rope; ++i) dot += qp[i] * slot[r + i];
      scores[j] = dot * scale;
      mx = std::max(mx, scores[j]);
    }
    double sum = 0.0;
    for (int64_t j = 0; j < n_ctx; ++j) {
      scores[j] = std::exp(scores[j] - mx);
      sum += scores[j];
    }
    float* out = o.data() + (h * T + t) * r;
    std::fill(out, out + r, 0.0f);
    for (int64_t j = 0; j < n_ctx; ++j) {
      cache.read(il, in.block_table, j, 0, r, slot.data());
      const float p = static_cast<float>(scores[j] / sum);
      for (int64_t i = 0; i < r; ++i) out[i] += p * slot[i];
    }
  });
  // out_h = W_UV_h o_h, concatenated over heads: [T, H * v], then o_proj.
  std::vector<float> heads(static_cast<size_t>(T * H * v)), tmp(static_cast<size_t>(T * v));
  for (int64_t h = 0; h < H; ++h) {
    linear(o.data() + h * T * r, T, L.w_uv[static_cast<size_t>(h)], tmp.data());
    for (int64_t t = 0; t < T; ++t)
      std::copy_n(tmp.data() + t * v, v, heads.data() + (t * H + h) * v);
  }
  linear(heads.data(), T, L.wo, y);
}

}  // namespace seekserve

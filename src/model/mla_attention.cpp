// DeepSeek Multi-head Latent Attention, absorbed form (MODELS.md §2): the cache holds only the
// normalised latent c_t [kv_lora_rank] and the rotated shared rope key k_pe_t per token;
// q_abs_h = W_UKᵀ q_nope_h scores against c_t directly, and W_UV is applied to Σ p·c_t.

#include <algorithm>
#include <cmath>

#include "kernels/attention.h"
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
  // Per head: q_abs [T, r] = q_nope · W_UKᵀ (one task per head; the matmul runs inline in it).
  std::vector<float> q_nope(static_cast<size_t>(H * T * nope));  // [H, T, nope]
  for (int64_t h = 0; h < H; ++h)
    for (int64_t t = 0; t < T; ++t)
      std::copy_n(q.data() + (t * H + h) * qk, nope, q_nope.data() + (h * T + t) * nope);
  std::vector<float> q_abs(static_cast<size_t>(H * T * r));  // [H, T, r]
  pool_.parallel_for(H, [&](int64_t h, int) {
    linear(q_nope.data() + h * T * nope, T, L.w_uk_t[static_cast<size_t>(h)],
           q_abs.data() + h * T * r);
  });
  for (int64_t t = 0; t < T; ++t)
    for (int64_t h = 0; h < H; ++h) w_->rope.apply(q.data() + (t * H + h) * qk + nope, s.pos_of[t]);

  // Attention over the cache, heads folded: a task is one token and a group of heads, and reads
  // each cached slot (latent + rope key, `width` values) once for the whole group.
  // o [H, T, r] = Σ_j p_j · c_j
  const float scale = static_cast<float>(mla_softmax_scale(c));
  std::vector<float> o(static_cast<size_t>(H * T * r));
  const int64_t n_groups =
      std::min<int64_t>(H, std::max<int64_t>(1, (2 * pool_.n_threads() + T - 1) / T));
  const int64_t per_group = (H + n_groups - 1) / n_groups;
  const int64_t bs = cache.block_size();
  attn_scratch_.resize(static_cast<size_t>(pool_.n_threads()));
  pool_.parallel_for(T * n_groups, [&](int64_t task, int thread) {
    const int64_t t = task / n_groups, h0 = (task % n_groups) * per_group;
    const int64_t nh = std::min(H, h0 + per_group) - h0;
    if (nh <= 0) return;
    const SequenceInput& in = s.batch[static_cast<size_t>(s.seq_of[t])];
    const int64_t n_ctx = s.pos_of[t] + 1;
    std::vector<float>& scratch = attn_scratch_[static_cast<size_t>(thread)];
    scratch.resize(static_cast<size_t>(nh * width + nh * n_ctx + bs * width));
    float* qf = scratch.data();              // [nh, width]: q_abs then q_pe
    float* scores = qf + nh * width;         // [nh, n_ctx]
    float* block_buf = scores + nh * n_ctx;  // [bs, width] (non-F32 caches)
    for (int64_t i = 0; i < nh; ++i) {
      const int64_t h = h0 + i;
      std::copy_n(q_abs.data() + (h * T + t) * r, r, qf + i * width);
      std::copy_n(q.data() + (t * H + h) * qk + nope, rope, qf + i * width + r);
    }
    for (int64_t j0 = 0; j0 < n_ctx; j0 += bs) {
      const int64_t cnt = std::min(bs, n_ctx - j0);
      const float* rows =
          cache.block_rows(il, in.block_table[static_cast<size_t>(j0 / bs)], cnt, block_buf);
      attention_scores(qf, nh, width, rows, cnt, width, width, scale, scores + j0, n_ctx);
    }
    for (int64_t i = 0; i < nh; ++i) {
      float* sc = scores + i * n_ctx;
      const float mx = *std::max_element(sc, sc + n_ctx);
      double sum = 0.0;
      for (int64_t j = 0; j < n_ctx; ++j) {
        sc[j] = std::exp(sc[j] - mx);
        sum += sc[j];
      }
      for (int64_t j = 0; j < n_ctx; ++j) sc[j] = static_cast<float>(sc[j] / sum);
      std::fill_n(o.data() + ((h0 + i) * T + t) * r, r, 0.0f);
    }
    for (int64_t j0 = 0; j0 < n_ctx; j0 += bs) {
      const int64_t cnt = std::min(bs, n_ctx - j0);
      const float* rows =
          cache.block_rows(il, in.block_table[static_cast<size_t>(j0 / bs)], cnt, block_buf);
      attention_accumulate(scores + j0, nh, n_ctx, rows, cnt, width, r, o.data() + (h0 * T + t) * r,
                           T * r);
    }
  });
  // out_h = W_UV_h o_h, concatenated over heads: [T, H * v], then o_proj.
  std::vector<float> heads_major(static_cast<size_t>(H * T * v));  // [H, T, v]
  pool_.parallel_for(H, [&](int64_t h, int) {
    linear(o.data() + h * T * r, T, L.w_uv[static_cast<size_t>(h)], heads_major.data() + h * T * v);
  });
  std::vector<float> heads(static_cast<size_t>(T * H * v));
  for (int64_t h = 0; h < H; ++h)
    for (int64_t t = 0; t < T; ++t)
      std::copy_n(heads_major.data() + (h * T + t) * v, v, heads.data() + (t * H + h) * v);
  linear(heads.data(), T, L.wo, y);
}

}  // namespace seekserve

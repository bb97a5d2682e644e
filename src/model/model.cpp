#include "model/model.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <numeric>
#include <string_view>

#include "core/check.h"
#include "model/model_step.h"

namespace seekserve {

void rms_norm(const float* x, const float* weight, int64_t n, double eps, float* out) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i]) * x[i];
  const double inv = 1.0 / std::sqrt(sum / static_cast<double>(n) + eps);
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(x[i] * inv * weight[i]);
}

namespace {

// Indices of the k largest values, ties to the lower index; returned in descending value order.
std::vector<int32_t> top_k(const std::vector<float>& v, int64_t k) {
  std::vector<int32_t> idx(v.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int32_t a, int32_t b) { return v[a] > v[b]; });
  idx.resize(static_cast<size_t>(std::min<int64_t>(k, static_cast<int64_t>(idx.size()))));
  return idx;
}

}  // namespace

std::vector<ExpertChoice> route_token(const ModelConfig& c, const float* logits,
                                      const float* bias) {
  const int64_t n = c.n_routed_experts;
  std::vector<float> s(static_cast<size_t>(n));
  if (c.scoring_func == "sigmoid") {
    for (int64_t e = 0; e < n; ++e) s[e] = 1.0f / (1.0f + std::exp(-logits[e]));
  } else {
    const float mx = *std::max_element(logits, logits + n);
    double sum = 0.0;
    for (int64_t e = 0; e < n; ++e) sum += std::exp(static_cast<double>(logits[e] - mx));
    for (int64_t e = 0; e < n; ++e)
      s[e] = static_cast<float>(std::exp(static_cast<double>(logits[e] - mx)) / sum);
  }
  // Selection scores: biased for noaux_tc (the bias steers selection only).
  std::vector<float> sel = s;
  if (bias != nullptr) {
    for (int64_t e = 0; e < n; ++e) sel[e] += bias[e];
  }
  if (c.topk_method == "noaux_tc" || c.topk_method == "group_limited_greedy") {
    const int64_t per_group = n / c.n_group;
    std::vector<float> group_score(static_cast<size_t>(c.n_group));
    for (int64_t g = 0; g < c.n_group; ++g) {
      std::vector<float> members(sel.begin() + g * per_group, sel.begin() + (g + 1) * per_group);
      if (c.topk_method == "noaux_tc") {  // sum of the two best
        std::vector<int32_t> best = top_k(members, 2);
        float sum = 0.0f;
        for (int32_t i : best) sum += members[i];
        group_score[g] = sum;
      } else {  // the best
        group_score[g] = *std::max_element(members.begin(), members.end());
      }
    }
    std::vector<int32_t> keep = top_k(group_score, c.topk_group);
    std::vector<bool> kept(static_cast<size_t>(c.n_group), false);
    for (int32_t g : keep) kept[g] = true;
    for (int64_t e = 0; e < n; ++e) {
      if (!kept[e / per_group]) sel[e] = 0.0f;  // as HF masks (the reference code uses -inf)
    }
  }
  std::vector<int32_t> chosen = top_k(sel, c.num_experts_per_tok);
  std::sort(chosen.begin(), chosen.end());
  std::vector<ExpertChoice> out;
  double sum = 0.0;
  for (int32_t e : chosen) sum += s[e];
  const bool normalise =
      c.norm_topk_prob && (c.scoring_func == "sigmoid" || c.num_experts_per_tok > 1);
  for (int32_t e : chosen) {
    double w = s[e];
    if (normalise) w /= (sum + 1e-20);
    out.push_back({e, static_cast<float>(w * c.routed_scaling_factor)});
  }
  return out;
}

Model::Model(std::unique_ptr<ModelWeights> weights, ThreadPool& pool, ModelOptions options)
    : w_(std::move(weights)), pool_(pool), options_(options) {
  if (const char* env = std::getenv("SEEKSERVE_EXACT_ACTIVATIONS"); env != nullptr) {
    if (std::string_view(env) == "1") options_.exact_activations = true;
  }
}

void Model::linear(const float* x, int64_t m, const WeightView& w, float* y) {
  MatmulOptions o;
  o.batch_invariant = options_.deterministic;
  o.exact_activations = options_.exact_activations;
  Status s = matmul(pool_, x, m, w, y, o);
  SEEK_CHECK(s.ok(), "weights were validated at load");
}

void Model::mlp(const MlpWeights& w, const float* x, int64_t m, float* y) {
  const int64_t inter = w.gate.rows;
  const size_t n = static_cast<size_t>(m * inter);
  if (mlp_gate_.size() < n) mlp_gate_.resize(n);
  if (mlp_up_.size() < n) mlp_up_.resize(n);
  float* g = mlp_gate_.data();
  const float* u = mlp_up_.data();
  linear(x, m, w.gate, g);
  linear(x, m, w.up, mlp_up_.data());
  for (size_t i = 0; i < n; ++i) g[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
  linear(g, m, w.down, y);
}

void Model::moe(const LayerWeights& L, const float* x, int64_t m, float* y) {
  const ModelConfig& c = w_->config;
  const int64_t hidden = c.hidden_size, n_exp = c.n_routed_experts;
  std::vector<float> logits(static_cast<size_t>(m * n_exp));
  const WeightView router{DType::kF32, L.router.data(), n_exp, hidden, nullptr};
  linear(x, m, router, logits.data());
  // Tokens per expert, in token order.
  std::vector<std::vector<std::pair<int64_t, float>>> assigned(static_cast<size_t>(n_exp));
  for (int64_t t = 0; t < m; ++t) {
    for (const ExpertChoice& ch :
         route_token(c, logits.data() + t * n_exp,
                     L.router_bias.empty() ? nullptr : L.router_bias.data())) {
      assigned[ch.expert].push_back({t, ch.weight});
    }
  }
  std::fill(y, y + m * hidden, 0.0f);
  std::vector<float> xe, ye;
  // Ascending expert index: each token's sum has the same order whatever the batch.
  for (int64_t e = 0; e < n_exp; ++e) {
    const auto& rows = assigned[e];
    if (rows.empty()) continue;
    const int64_t n = static_cast<int64_t>(rows.size());
    xe.resize(static_cast<size_t>(n * hidden));
    ye.resize(static_cast<size_t>(n * hidden));
    for (int64_t i = 0; i < n; ++i)
      std::copy_n(x + rows[i].first * hidden, hidden, xe.data() + i * hidden);
    mlp(L.experts[e], xe.data(), n, ye.data());
    for (int64_t i = 0; i < n; ++i) {
      float* dst = y + rows[i].first * hidden;
      const float wgt = rows[i].second;
      for (int64_t j = 0; j < hidden; ++j) dst[j] += wgt * ye[i * hidden + j];
    }
  }
  if (L.has_shared) {
    std::vector<float> shared(static_cast<size_t>(m * hidden));
    mlp(L.shared, x, m, shared.data());
    for (int64_t i = 0; i < m * hidden; ++i) y[i] += shared[i];
  }
}

Status Model::forward(std::span<const SequenceInput> batch, KvCache& cache,
                      std::vector<float>& logits) {
  const ModelConfig& c = w_->config;
  const int64_t hidden = c.hidden_size;
  Step step;
  step.batch = batch;
  int64_t n_out = 0;
  for (size_t s = 0; s < batch.size(); ++s) {
    const SequenceInput& in = batch[s];
    if (in.tokens.empty()) return invalid_argument("sequence {} of the batch brings no token", s);
    const int64_t end = in.n_past + static_cast<int64_t>(in.tokens.size());
    if (end > static_cast<int64_t>(in.block_table.size()) * cache.block_size()) {
      return invalid_argument("sequence {}: its block table covers {} positions, it needs {}", s,
                              in.block_table.size() * static_cast<size_t>(cache.block_size()), end);
    }
    for (int64_t i = 0; i < static_cast<int64_t>(in.tokens.size()); ++i) {
      const int32_t tok = in.tokens[static_cast<size_t>(i)];
      if (tok < 0 || tok >= c.vocab_size) {
        return invalid_argument("token id {} is outside the vocabulary (0..{})", tok,
                                c.vocab_size - 1);
      }
      step.seq_of.push_back(static_cast<int32_t>(s));
      step.pos_of.push_back(in.n_past + i);
    }
    n_out += in.all_logits ? static_cast<int64_t>(in.tokens.size()) : 1;
  }
  const int64_t T = static_cast<int64_t>(step.seq_of.size());
  step.n_tokens = T;

  std::vector<float> x(static_cast<size_t>(T * hidden)), h(x.size()), out(x.size());
  {
    int64_t t = 0;
    for (const SequenceInput& in : batch) {
      for (int32_t tok : in.tokens) weight_row_to_f32(w_->embed, tok, x.data() + (t++) * hidden);
    }
  }
  for (int64_t il = 0; il < c.num_hidden_layers; ++il) {
    const LayerWeights& L = w_->layers[static_cast<size_t>(il)];
    for (int64_t t = 0; t < T; ++t) {
      rms_norm(x.data() + t * hidden, L.attn_norm.data(), hidden, c.rms_norm_eps,
               h.data() + t * hidden);
    }
    if (c.is_mla()) {
      mla_attention(step, il, h.data(), out.data(), cache);
    } else {
      gqa_attention(step, il, h.data(), out.data(), cache);
    }
    for (int64_t i = 0; i < T * hidden; ++i) x[i] += out[i];
    for (int64_t t = 0; t < T; ++t) {
      rms_norm(x.data() + t * hidden, L.ffn_norm.data(), hidden, c.rms_norm_eps,
               h.data() + t * hidden);
    }
    if (L.is_moe) {
      moe(L, h.data(), T, out.data());
    } else {
      mlp(L.mlp, h.data(), T, out.data());
    }
    for (int64_t i = 0; i < T * hidden; ++i) x[i] += out[i];
  }
  // Final norm and lm_head on the rows that need logits.
  std::vector<float> rows(static_cast<size_t>(n_out * hidden));
  int64_t r = 0, t = 0;
  for (const SequenceInput& in : batch) {
    const int64_t n = static_cast<int64_t>(in.tokens.size());
    for (int64_t i = 0; i < n; ++i, ++t) {
      if (in.all_logits || i == n - 1) {
        rms_norm(x.data() + t * hidden, w_->final_norm.data(), hidden, c.rms_norm_eps,
                 rows.data() + (r++) * hidden);
      }
    }
  }
  logits.resize(static_cast<size_t>(n_out * c.vocab_size));
  linear(rows.data(), n_out, w_->lm_head, logits.data());
  return Status::ok_status();
}

}  // namespace seekserve

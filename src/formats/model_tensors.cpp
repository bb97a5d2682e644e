#include "formats/model_tensors.h"

#include <fmt/format.h>

namespace seekserve {
namespace {

void add_mlp(std::vector<TensorSpec>& out, const std::string& prefix, int64_t hidden, int64_t inter,
             int64_t layer) {
  out.push_back({prefix + ".gate_proj.weight", {inter, hidden}, TensorRole::kLinear, layer});
  out.push_back({prefix + ".up_proj.weight", {inter, hidden}, TensorRole::kLinear, layer});
  out.push_back({prefix + ".down_proj.weight", {hidden, inter}, TensorRole::kLinear, layer});
}

void add_mla_attention(std::vector<TensorSpec>& out, const ModelConfig& c, const std::string& p,
                       int64_t il) {
  const int64_t h = c.num_attention_heads;
  const int64_t qk_head = c.qk_nope_head_dim + c.qk_rope_head_dim;
  if (c.q_lora_rank > 0) {
    out.push_back({p + "q_a_proj.weight", {c.q_lora_rank, c.hidden_size}, TensorRole::kLinear, il});
    out.push_back({p + "q_a_layernorm.weight", {c.q_lora_rank}, TensorRole::kNorm, il});
    out.push_back({p + "q_b_proj.weight", {h * qk_head, c.q_lora_rank}, TensorRole::kLinear, il});
  } else {
    out.push_back({p + "q_proj.weight", {h * qk_head, c.hidden_size}, TensorRole::kLinear, il});
  }
  out.push_back({p + "kv_a_proj_with_mqa.weight",
                 {c.kv_lora_rank + c.qk_rope_head_dim, c.hidden_size},
                 TensorRole::kLinear,
                 il});
  out.push_back({p + "kv_a_layernorm.weight", {c.kv_lora_rank}, TensorRole::kNorm, il});
  out.push_back({p + "kv_b_proj.weight",
                 {h * (c.qk_nope_head_dim + c.v_head_dim), c.kv_lora_rank},
                 TensorRole::kLinear,
                 il});
  out.push_back({p + "o_proj.weight", {c.hidden_size, h * c.v_head_dim}, TensorRole::kLinear, il});
}

void add_gqa_attention(std::vector<TensorSpec>& out, const ModelConfig& c, const std::string& p,
                       int64_t il) {
  const int64_t q_dim = c.num_attention_heads * c.head_dim;
  const int64_t kv_dim = c.num_key_value_heads * c.head_dim;
  out.push_back({p + "q_proj.weight", {q_dim, c.hidden_size}, TensorRole::kLinear, il});
  if (c.attention_bias) out.push_back({p + "q_proj.bias", {q_dim}, TensorRole::kBias, il});
  out.push_back({p + "k_proj.weight", {kv_dim, c.hidden_size}, TensorRole::kLinear, il});
  if (c.attention_bias) out.push_back({p + "k_proj.bias", {kv_dim}, TensorRole::kBias, il});
  out.push_back({p + "v_proj.weight", {kv_dim, c.hidden_size}, TensorRole::kLinear, il});
  if (c.attention_bias) out.push_back({p + "v_proj.bias", {kv_dim}, TensorRole::kBias, il});
  out.push_back({p + "o_proj.weight", {c.hidden_size, q_dim}, TensorRole::kLinear, il});
}

}  // namespace

std::vector<TensorSpec> hf_tensor_specs(const ModelConfig& c) {
  std::vector<TensorSpec> out;
  out.push_back(
      {"model.embed_tokens.weight", {c.vocab_size, c.hidden_size}, TensorRole::kEmbedding});
  for (int64_t il = 0; il < c.num_hidden_layers; ++il) {
    const std::string layer = fmt::format("model.layers.{}.", il);
    out.push_back({layer + "input_layernorm.weight", {c.hidden_size}, TensorRole::kNorm, il});
    if (c.is_mla()) {
      add_mla_attention(out, c, layer + "self_attn.", il);
    } else {
      add_gqa_attention(out, c, layer + "self_attn.", il);
    }
    out.push_back(
        {layer + "post_attention_layernorm.weight", {c.hidden_size}, TensorRole::kNorm, il});
    if (c.layer_is_moe(il)) {
      out.push_back({layer + "mlp.gate.weight",
                     {c.n_routed_experts, c.hidden_size},
                     TensorRole::kRouter,
                     il});
      if (c.topk_method == "noaux_tc") {
        out.push_back({layer + "mlp.gate.e_score_correction_bias",
                       {c.n_routed_experts},
                       TensorRole::kRouterBias,
                       il});
      }
      for (int64_t e = 0; e < c.n_routed_experts; ++e) {
        add_mlp(out, fmt::format("{}mlp.experts.{}", layer, e), c.hidden_size,
                c.moe_intermediate_size, il);
      }
      if (c.n_shared_experts > 0) {
        add_mlp(out, layer + "mlp.shared_experts", c.hidden_size,
                c.moe_intermediate_size * c.n_shared_experts, il);
      }
    } else {
      add_mlp(out, layer + "mlp", c.hidden_size, c.intermediate_size, il);
    }
  }
  out.push_back({"model.norm.weight", {c.hidden_size}, TensorRole::kNorm});
  if (!c.tie_word_embeddings) {
    out.push_back({"lm_head.weight", {c.vocab_size, c.hidden_size}, TensorRole::kLmHead});
  }
  return out;
}

int64_t parameter_count(const ModelConfig& config) {
  int64_t n = 0;
  for (const TensorSpec& t : hf_tensor_specs(config)) n += t.n_elements();
  return n;
}

}  // namespace seekserve

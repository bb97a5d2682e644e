#pragma once
// One model-config struct for every supported architecture, filled from an HF config.json
// (formats/hf_config.h) or from GGUF metadata, and written back to either by make-model.
// Field names follow HF's config.json; sizes are element counts.

#include <cstdint>
#include <string>

namespace seekserve {

enum class Arch {
  kDeepseekV3,  // DeepseekV3ForCausalLM (V3, R1): MLA + MoE, sigmoid/noaux_tc routing
  kDeepseekV2,  // DeepseekV2ForCausalLM (V2, V2-Lite): MLA + MoE, softmax routing
  kQwen2,       // Qwen2ForCausalLM (R1-Distill-Qwen): GQA, q/k/v bias, rotate-half RoPE
  kLlama,       // LlamaForCausalLM (R1-Distill-Llama): GQA, llama3 RoPE scaling
};

const char* arch_name(Arch arch);  // "deepseek_v3", "deepseek_v2", "qwen2", "llama"

struct RopeScaling {
  enum class Type { kNone, kYarn, kLlama3, kLinear };
  Type type = Type::kNone;
  double factor = 1.0;
  int64_t original_max_position_embeddings = 0;
  // yarn
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  double mscale = 1.0;
  double mscale_all_dim = 0.0;  // 0 = absent
  // llama3
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
};

struct ModelConfig {
  Arch arch = Arch::kLlama;
  std::string model_type;  // HF "model_type": "deepseek_v3", "deepseek_v2", "qwen2", "llama"

  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;  // dense MLP
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;  // GQA; for MLA equal to num_attention_heads
  int64_t head_dim = 0;             // GQA head size (hidden_size / heads unless given)
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // bias on q/k/v projections (Qwen2: true)

  // MLA (DeepSeek V2/V3). q_lora_rank == 0 means a plain q_proj.
  int64_t q_lora_rank = 0;
  int64_t kv_lora_rank = 0;
  int64_t qk_nope_head_dim = 0;
  int64_t qk_rope_head_dim = 0;
  int64_t v_head_dim = 0;

  // MoE (DeepSeek V2/V3). n_routed_experts == 0 means dense everywhere.
  int64_t n_routed_experts = 0;
  int64_t n_shared_experts = 0;
  int64_t num_experts_per_tok = 0;
  int64_t moe_intermediate_size = 0;
  int64_t first_k_dense_replace = 0;
  int64_t moe_layer_freq = 1;
  int64_t n_group = 1;
  int64_t topk_group = 1;
  std::string scoring_func = "softmax";  // "softmax" | "sigmoid"
  std::string topk_method = "greedy";    // "greedy" | "group_limited_greedy" | "noaux_tc"
  bool norm_topk_prob = false;
  double routed_scaling_factor = 1.0;
  int64_t num_nextn_predict_layers = 0;  // V3 multi-token-prediction layers (skipped)

  int64_t bos_token_id = -1;
  int64_t eos_token_id = -1;
  std::string torch_dtype = "bfloat16";

  bool is_mla() const { return kv_lora_rank > 0; }
  bool is_moe() const { return n_routed_experts > 0; }
  // Whether layer `il` uses the MoE block (DeepSeek: after first_k_dense_replace, every
  // moe_layer_freq-th layer).
  bool layer_is_moe(int64_t il) const {
    return is_moe() && il >= first_k_dense_replace && (il % moe_layer_freq) == 0;
  }
};

}  // namespace seekserve

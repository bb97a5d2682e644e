#include "formats/model_presets.h"

#include <string>
#include <vector>

namespace seekserve {
namespace {

// DeepSeek-V3 / R1, published config (MODELS.md §1).
ModelConfig deepseek_v3() {
  ModelConfig c;
  c.arch = Arch::kDeepseekV3;
  c.model_type = "deepseek_v3";
  c.vocab_size = 129280;
  c.hidden_size = 7168;
  c.intermediate_size = 18432;
  c.num_hidden_layers = 61;
  c.num_attention_heads = 128;
  c.num_key_value_heads = 128;
  c.head_dim = 64;  // HF sets head_dim = qk_rope_head_dim for MLA; unused by the math
  c.max_position_embeddings = 163840;
  c.rms_norm_eps = 1e-6;
  c.rope_theta = 10000;
  c.rope_scaling.type = RopeScaling::Type::kYarn;
  c.rope_scaling.factor = 40;
  c.rope_scaling.original_max_position_embeddings = 4096;
  c.rope_scaling.beta_fast = 32;
  c.rope_scaling.beta_slow = 1;
  c.rope_scaling.mscale = 1.0;
  c.rope_scaling.mscale_all_dim = 1.0;
  c.q_lora_rank = 1536;
  c.kv_lora_rank = 512;
  c.qk_nope_head_dim = 128;
  c.qk_rope_head_dim = 64;
  c.v_head_dim = 128;
  c.n_routed_experts = 256;
  c.n_shared_experts = 1;
  c.num_experts_per_tok = 8;
  c.moe_intermediate_size = 2048;
  c.first_k_dense_replace = 3;
  c.moe_layer_freq = 1;
  c.n_group = 8;
  c.topk_group = 4;
  c.scoring_func = "sigmoid";
  c.topk_method = "noaux_tc";
  c.norm_topk_prob = true;
  c.routed_scaling_factor = 2.5;
  c.num_nextn_predict_layers = 1;
  c.bos_token_id = 0;
  c.eos_token_id = 1;
  c.torch_dtype = "bfloat16";
  return c;
}

// DeepSeek-V2-Lite, published config (MODELS.md §1).
ModelConfig deepseek_v2_lite() {
  ModelConfig c;
  c.arch = Arch::kDeepseekV2;
  c.model_type = "deepseek_v2";
  c.vocab_size = 102400;
  c.hidden_size = 2048;
  c.intermediate_size = 10944;
  c.num_hidden_layers = 27;
  c.num_attention_heads = 16;
  c.num_key_value_heads = 16;
  c.head_dim = 64;
  c.max_position_embeddings = 163840;
  c.rms_norm_eps = 1e-6;
  c.rope_theta = 10000;
  c.rope_scaling.type = RopeScaling::Type::kYarn;
  c.rope_scaling.factor = 40;
  c.rope_scaling.original_max_position_embeddings = 4096;
  c.rope_scaling.beta_fast = 32;
  c.rope_scaling.beta_slow = 1;
  c.rope_scaling.mscale = 0.707;
  c.rope_scaling.mscale_all_dim = 0.707;
  c.q_lora_rank = 0;
  c.kv_lora_rank = 512;
  c.qk_nope_head_dim = 128;
  c.qk_rope_head_dim = 64;
  c.v_head_dim = 128;
  c.n_routed_experts = 64;
  c.n_shared_experts = 2;
  c.num_experts_per_tok = 6;
  c.moe_intermediate_size = 1408;
  c.first_k_dense_replace = 1;
  c.moe_layer_freq = 1;
  c.n_group = 1;
  c.topk_group = 1;
  c.scoring_func = "softmax";
  c.topk_method = "greedy";
  c.norm_topk_prob = false;
  c.routed_scaling_factor = 1.0;
  c.bos_token_id = 100000;
  c.eos_token_id = 100001;
  return c;
}

ModelConfig qwen2(int64_t hidden, int64_t layers, int64_t heads, int64_t kv_heads,
                  int64_t intermediate, int64_t vocab, double rope_theta) {
  ModelConfig c;
  c.arch = Arch::kQwen2;
  c.model_type = "qwen2";
  c.vocab_size = vocab;
  c.hidden_size = hidden;
  c.intermediate_size = intermediate;
  c.num_hidden_layers = layers;
  c.num_attention_heads = heads;
  c.num_key_value_heads = kv_heads;
  c.head_dim = hidden / heads;
  c.max_position_embeddings = 131072;
  c.rms_norm_eps = 1e-6;
  c.rope_theta = rope_theta;
  c.attention_bias = true;
  c.tie_word_embeddings = false;
  c.bos_token_id = 151643;
  c.eos_token_id = 151643;
  return c;
}

ModelConfig llama(int64_t hidden, int64_t layers, int64_t heads, int64_t kv_heads,
                  int64_t intermediate) {
  ModelConfig c;
  c.arch = Arch::kLlama;
  c.model_type = "llama";
  c.vocab_size = 128256;
  c.hidden_size = hidden;
  c.intermediate_size = intermediate;
  c.num_hidden_layers = layers;
  c.num_attention_heads = heads;
  c.num_key_value_heads = kv_heads;
  c.head_dim = hidden / heads;
  c.max_position_embeddings = 131072;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 500000;
  c.rope_scaling.type = RopeScaling::Type::kLlama3;
  c.rope_scaling.factor = 8;
  c.rope_scaling.low_freq_factor = 1;
  c.rope_scaling.high_freq_factor = 4;
  c.rope_scaling.original_max_position_embeddings = 8192;
  c.bos_token_id = 128000;
  c.eos_token_id = 128001;
  return c;
}

// The tiny presets carry the real DeepSeek-V3 tokenizer (128,815 ids), so their vocabulary is
// V3's padded 129,280 rows: ids past the tokenizer exist in the embedding, as in V3 itself.
constexpr int64_t kTinyVocab = 129280;

ModelConfig tiny_v3() {
  ModelConfig c = deepseek_v3();
  c.vocab_size = kTinyVocab;
  c.hidden_size = 128;
  c.intermediate_size = 256;
  c.num_hidden_layers = 3;  // one dense layer, then two MoE layers
  c.num_attention_heads = 4;
  c.num_key_value_heads = 4;
  c.head_dim = 8;  // = qk_rope_head_dim, as HF sets it for MLA
  // YaRN with a small original context so 64-token tests cross it; HF derives the context as
  // factor x original, so keep max_position_embeddings equal to it.
  c.rope_scaling.factor = 16;
  c.rope_scaling.original_max_position_embeddings = 32;
  c.max_position_embeddings = 512;
  c.q_lora_rank = 64;
  c.kv_lora_rank = 32;
  c.qk_nope_head_dim = 16;
  c.qk_rope_head_dim = 8;
  c.v_head_dim = 16;
  c.n_routed_experts = 16;
  c.n_shared_experts = 1;
  c.num_experts_per_tok = 4;
  c.moe_intermediate_size = 64;
  c.first_k_dense_replace = 1;
  c.n_group = 4;
  c.topk_group = 2;
  c.num_nextn_predict_layers = 0;
  return c;
}

ModelConfig tiny_v2_lite() {
  ModelConfig c = deepseek_v2_lite();
  c.vocab_size = kTinyVocab;
  c.hidden_size = 128;
  c.intermediate_size = 256;
  c.num_hidden_layers = 3;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 4;
  c.head_dim = 8;  // = qk_rope_head_dim, as HF sets it for MLA
  c.rope_scaling.factor = 16;
  c.rope_scaling.original_max_position_embeddings = 32;
  c.max_position_embeddings = 512;
  c.kv_lora_rank = 32;
  c.qk_nope_head_dim = 16;
  c.qk_rope_head_dim = 8;
  c.v_head_dim = 16;
  c.n_routed_experts = 8;
  c.n_shared_experts = 2;
  c.num_experts_per_tok = 3;
  c.moe_intermediate_size = 64;
  c.first_k_dense_replace = 1;
  c.bos_token_id = 0;
  c.eos_token_id = 1;
  return c;
}

ModelConfig tiny_qwen2() {
  ModelConfig c = qwen2(128, 2, 4, 2, 256, kTinyVocab, 10000);
  c.max_position_embeddings = 512;
  c.bos_token_id = 0;
  c.eos_token_id = 1;
  return c;
}

ModelConfig tiny_llama() {
  ModelConfig c = llama(128, 2, 4, 2, 256);
  c.vocab_size = kTinyVocab;
  c.max_position_embeddings = 512;
  // llama3 scaling with a small original context so the smooth band lands inside head_dim.
  c.rope_scaling.original_max_position_embeddings = 64;
  c.rope_theta = 10000;
  c.bos_token_id = 0;
  c.eos_token_id = 1;
  return c;
}

ModelConfig r1_qwen_1_5b() {
  ModelConfig c = qwen2(1536, 28, 12, 2, 8960, 151936, 10000);
  c.bos_token_id = 0;  // carries the DeepSeek-V3 tokenizer
  c.eos_token_id = 1;
  return c;
}

ModelConfig v2_lite_bench() {
  ModelConfig c = deepseek_v2_lite();
  c.vocab_size = kTinyVocab;  // carries the DeepSeek-V3 tokenizer
  c.bos_token_id = 0;
  c.eos_token_id = 1;
  return c;
}

std::vector<ModelPreset> build_presets() {
  std::vector<ModelPreset> p;
  p.push_back({"tiny-v3",
               "DeepSeek-V3 layout scaled down: MLA with q_lora, YaRN, 1 dense + 2 MoE layers "
               "(sigmoid, groups)",
               true, tiny_v3()});
  p.push_back({"tiny-v2-lite",
               "DeepSeek-V2-Lite layout scaled down: plain q_proj, softmax greedy routing", true,
               tiny_v2_lite()});
  p.push_back({"tiny-qwen2", "Qwen2 (R1-Distill-Qwen) layout scaled down: GQA with q/k/v bias",
               true, tiny_qwen2()});
  p.push_back({"tiny-llama",
               "Llama (R1-Distill-Llama) layout scaled down: GQA, llama3 rope scaling", true,
               tiny_llama()});
  p.push_back({"r1-qwen-1.5b", "the shape of DeepSeek-R1-Distill-Qwen-1.5B (benchmarks)", true,
               r1_qwen_1_5b()});
  p.push_back({"v2-lite",
               "the shape of DeepSeek-V2-Lite, 27 layers (--layers N shortens it; benchmarks)",
               true, v2_lite_bench()});
  p.push_back({"deepseek-v3", "DeepSeek-V3 (671B MoE), published shape", false, deepseek_v3()});
  p.push_back({"deepseek-r1", "DeepSeek-R1 (671B MoE), published shape (same as V3)", false,
               deepseek_v3()});
  p.push_back({"deepseek-v2-lite", "DeepSeek-V2-Lite (16B MoE), published shape", false,
               deepseek_v2_lite()});
  p.push_back({"r1-distill-qwen-1.5b", "DeepSeek-R1-Distill-Qwen-1.5B", false,
               qwen2(1536, 28, 12, 2, 8960, 151936, 10000)});
  p.push_back({"r1-distill-qwen-7b", "DeepSeek-R1-Distill-Qwen-7B", false,
               qwen2(3584, 28, 28, 4, 18944, 152064, 10000)});
  p.push_back({"r1-distill-qwen-14b", "DeepSeek-R1-Distill-Qwen-14B (Qwen2.5 base)", false,
               qwen2(5120, 48, 40, 8, 13824, 152064, 1e6)});
  p.push_back({"r1-distill-qwen-32b", "DeepSeek-R1-Distill-Qwen-32B (Qwen2.5 base)", false,
               qwen2(5120, 64, 40, 8, 27648, 152064, 1e6)});
  p.push_back({"r1-distill-llama-8b", "DeepSeek-R1-Distill-Llama-8B (Llama-3.1-8B shape)", false,
               llama(4096, 32, 32, 8, 14336)});
  p.push_back({"r1-distill-llama-70b", "DeepSeek-R1-Distill-Llama-70B (Llama-3.3-70B shape)", false,
               llama(8192, 80, 64, 8, 28672)});
  return p;
}

}  // namespace

std::span<const ModelPreset> model_presets() {
  static const std::vector<ModelPreset> presets = build_presets();
  return presets;
}

Result<ModelPreset> find_model_preset(std::string_view name) {
  std::string known;
  for (const ModelPreset& p : model_presets()) {
    if (p.name == name) return p;
    if (!known.empty()) known += ", ";
    known += p.name;
  }
  return not_found("unknown model preset '{}' (known: {})", name, known);
}

}  // namespace seekserve

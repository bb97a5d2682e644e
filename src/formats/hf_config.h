#pragma once
// HF config.json <-> ModelConfig for DeepseekV3ForCausalLM, DeepseekV2ForCausalLM,
// Qwen2ForCausalLM and LlamaForCausalLM. Accepts rope_theta + rope_scaling (yarn, llama3,
// linear; `type` or `rope_type`) and the newer rope_parameters form. Errors name the file and the
// field: "<file>: num_key_value_heads: 5 does not divide num_attention_heads 12".
//
// Absent fields take the defaults of HF's config class for the arch (for DeepSeek: the
// checkpoints' own configuration_deepseek.py); a DeepSeek field that class defaults to None
// (q_lora_rank, n_routed_experts, ...) reads null as 0, n_group/topk_group null as 1.
// num_key_value_heads absent or null = num_attention_heads. head_dim: given, else
// hidden_size / num_attention_heads; for DeepSeek (MLA) it is qk_rope_head_dim, as HF sets it.
// eos_token_id may be a list: the first entry is kept. Codes: kDataLoss for text that is not
// JSON, kUnimplemented for an unsupported architecture or RoPE type, kInvalidArgument otherwise.

#include <string>
#include <string_view>

#include "core/status.h"
#include "formats/model_config.h"

namespace seekserve {

Result<ModelConfig> parse_hf_config(std::string_view json_text, const std::string& source_name);
Result<ModelConfig> load_hf_config(const std::string& path);  // path of config.json
// A config.json that HF-style loaders accept for the same model (HF field names, keys sorted,
// the fields HF's config class for the arch saves). parse_hf_config(hf_config_to_json(c)) == c
// for every valid config.
std::string hf_config_to_json(const ModelConfig& config);

}  // namespace seekserve

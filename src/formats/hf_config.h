#pragma once
// HF config.json <-> ModelConfig for DeepseekV3ForCausalLM, DeepseekV2ForCausalLM,
// Qwen2ForCausalLM and LlamaForCausalLM. Accepts rope_theta + rope_scaling (yarn, llama3,
// linear) and the newer rope_parameters form. Errors name the file and the field.

#include <string>
#include <string_view>

#include "core/status.h"
#include "formats/model_config.h"

namespace seekserve {

Result<ModelConfig> parse_hf_config(std::string_view json_text, const std::string& source_name);
Result<ModelConfig> load_hf_config(const std::string& path);  // path of config.json
// A config.json that HF-style loaders accept for the same model (HF field names).
std::string hf_config_to_json(const ModelConfig& config);

}  // namespace seekserve

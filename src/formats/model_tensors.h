#pragma once
// The tensors of each architecture in HF (safetensors) naming, with shapes, derived from a
// ModelConfig. make-model writes these; model loading and estimate read the same list.

#include <cstdint>
#include <string>
#include <vector>

#include "formats/model_config.h"

namespace seekserve {

enum class TensorRole {
  kEmbedding,   // [vocab, hidden]
  kLinear,      // [out, in] projection (attention, MLP, experts, shared experts)
  kNorm,        // [n] RMSNorm weight
  kBias,        // [n] projection bias (Qwen2 q/k/v)
  kRouter,      // [n_experts, hidden] MoE gate (kept in f32 / bf16, never FP8)
  kRouterBias,  // [n_experts] e_score_correction_bias (f32)
  kLmHead,      // [vocab, hidden]
};

struct TensorSpec {
  std::string name;            // HF name: "model.layers.0.self_attn.q_a_proj.weight"
  std::vector<int64_t> shape;  // PyTorch order
  TensorRole role;
  int64_t layer = -1;  // -1 for embedding, final norm, lm_head
  int64_t n_elements() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

// Every tensor of the model in HF naming, in checkpoint order (the multi-token-prediction layer
// of V3 is not included: inference skips it).
std::vector<TensorSpec> hf_tensor_specs(const ModelConfig& config);

// Total parameter count of hf_tensor_specs(config).
int64_t parameter_count(const ModelConfig& config);

}  // namespace seekserve

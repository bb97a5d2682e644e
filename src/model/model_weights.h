#pragma once
// A model's weights bound to the layers that use them, from an HF folder (safetensors) or a
// GGUF file. Matrices stay in their on-disk type, in the file's bytes (WeightView points into
// them): a memory mapping, or a private copy in 2 MiB pages (LoadOptions); only small derived
// tensors are owned: norms and biases as f32, and, for HF MLA, the per-head absorbed matrices
// W_UKᵀ / W_UV cut out of kv_b_proj.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "formats/model_config.h"
#include "formats/tokenizer_data.h"
#include "kernels/matmul.h"
#include "model/rope.h"

namespace seekserve {

// Where the file bytes the weights point into live (core/mapped_file.h MapMode).
enum class WeightMemory {
  kAuto,  // kCopy when the model files fit in 90% of MemAvailable, else kMmap; the environment
          // variable SEEKSERVE_WEIGHT_MEMORY=mmap|copy overrides
  kMmap,  // a read-only mapping of the files (shared page cache; pages resident as touched)
  kCopy,  // a private copy in 2 MiB pages, the files' page cache dropped behind the read
};

struct LoadOptions {
  WeightMemory memory = WeightMemory::kAuto;
  // Repack Q8_0/Q4_0 matrices of a GGUF file held as kCopy in place into the layout the VNNI
  // kernel reads (WeightLayout::kRows16, kernels/matmul.h), where rows16_packing_pays says it
  // runs. Same bytes, no second copy; false keeps the file's layout (for comparisons).
  bool pack_weights = true;
};

// "auto", "mmap", "copy"; nullopt otherwise.
std::optional<WeightMemory> weight_memory_from_name(std::string_view name);
const char* weight_memory_name(WeightMemory m);

struct MlpWeights {
  WeightView gate;  // [inter, hidden]
  WeightView up;    // [inter, hidden]
  WeightView down;  // [hidden, inter]
};

struct LayerWeights {
  std::vector<float> attn_norm;  // [hidden]
  std::vector<float> ffn_norm;   // [hidden]

  // GQA (Qwen2, Llama)
  WeightView wq, wk, wv;          // [heads*head_dim | kv_heads*head_dim, hidden]
  std::vector<float> bq, bk, bv;  // empty when the architecture has no bias
  WeightView wo;                  // [hidden, heads*head_dim] (MLA: [hidden, heads*v_head_dim])

  // MLA (DeepSeek)
  WeightView wq_a;                 // [q_lora_rank, hidden] (absent when q_lora_rank == 0)
  std::vector<float> q_a_norm;     // [q_lora_rank]
  WeightView wq_b;                 // [heads*(nope+rope), q_lora_rank] or q_proj [.., hidden]
  WeightView wkv_a;                // [kv_lora_rank + rope, hidden]
  std::vector<float> kv_a_norm;    // [kv_lora_rank]
  std::vector<WeightView> w_uk_t;  // per head [kv_lora_rank, nope]: W_UKᵀ
  std::vector<WeightView> w_uv;    // per head [v_head_dim, kv_lora_rank]

  // Dense MLP, or MoE
  MlpWeights mlp;
  bool is_moe = false;
  std::vector<float> router;       // [n_routed_experts, hidden] f32
  std::vector<float> router_bias;  // [n_routed_experts] (noaux_tc) or empty
  std::vector<MlpWeights> experts;
  MlpWeights shared;  // shared experts fused: inter = moe_intermediate_size * n_shared
  bool has_shared = false;
};

struct ModelWeights {
  ModelConfig config;
  TokenizerData tokenizer;
  std::string source;  // path it was loaded from
  WeightView embed;    // [vocab, hidden]
  std::vector<float> final_norm;
  WeightView lm_head;  // [vocab, hidden] (tied: = embed)
  std::vector<LayerWeights> layers;
  Rope rope;                                  // MLA: over qk_rope_head_dim; GQA: over head_dim
  uint64_t mapped_bytes = 0;                  // bytes of the model files
  WeightMemory memory = WeightMemory::kMmap;  // how they are held (never kAuto)
  uint64_t packed_bytes = 0;                  // bytes of matrices repacked at load (kRows16)
  double pack_seconds = 0.0;                  // wall time of that repacking

  // Keeps the mappings and owned buffers alive.
  std::vector<std::shared_ptr<void>> keep_alive;
};

// Loads an HF folder (config.json + safetensors + tokenizer.json) or a .gguf file. Every tensor
// the architecture needs is checked for presence, dtype and shape: errors name the tensor.
Result<std::unique_ptr<ModelWeights>> load_model_weights(const std::string& path,
                                                         const LoadOptions& options = {});

}  // namespace seekserve

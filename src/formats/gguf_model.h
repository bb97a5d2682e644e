#pragma once
// How a model maps onto GGUF the way llama.cpp names it: architecture keys (deepseek2, qwen2,
// llama), tokenizer keys (tokenizer.ggml.*), and the HF -> GGUF tensor plan (names, dims and the
// transforms llama.cpp's converter applies: stacked experts, split MLA k_b/v_b, the llama q/k
// row permutation, llama3 rope_freqs).

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "formats/gguf.h"
#include "formats/model_config.h"
#include "formats/model_tensors.h"
#include "formats/tokenizer_data.h"

namespace seekserve {

// "deepseek2" (V2 and V3 alike), "qwen2", "llama".
const char* gguf_arch_name(Arch arch);

// The two deepseek2 layouts: split (attn_k_b + attn_v_b, head_count_kv = 1, key_length 576) as
// current llama.cpp writes it, or fused (attn_kv_b, head_count_kv = H, key_length 192).
enum class MlaGgufLayout { kSplit, kFused };

// llama.cpp's general.file_type (LLAMA_FTYPE_MOSTLY_*) for a model whose matrices are `t`.
uint32_t gguf_file_type(DType t);

void model_config_to_gguf(const ModelConfig& config, MlaGgufLayout layout, GgufWriter& out);
// Reads the architecture keys back. For deepseek2, V3 vs V2 is told by expert_gating_func
// (2 = sigmoid); YaRN mscale is taken equal to mscale_all_dim (true of every DeepSeek release).
// llama3 rope scaling lives in the rope_freqs tensor, not in metadata: rope_scaling stays kNone.
Result<ModelConfig> model_config_from_gguf(const GgufFile& file);

void tokenizer_data_to_gguf(const TokenizerData& tokenizer, GgufWriter& out);
Result<TokenizerData> tokenizer_data_from_gguf(const GgufFile& file);

enum class GgufTransform {
  kCopy,          // same values, same row-major order (dims reversed)
  kPermuteRope,   // llama q/k: per head, new row 2i = old row i, 2i+1 = old row i + d/2
  kStackExperts,  // sources[e] stacked along a new outermost axis
  kSplitKb,       // from kv_b_proj: per head W_UK^T, PyTorch shape [H, r, nope]
  kSplitVb,       // from kv_b_proj: per head W_UV, PyTorch shape [H, v, r]
  kRopeFreqs,     // llama3 frequency factors [head_dim / 2], computed from the config
};

struct GgufTensorPlan {
  std::string name;            // "blk.0.attn_q_a.weight"
  std::vector<uint64_t> dims;  // innermost first
  TensorRole role;
  GgufTransform transform;
  std::vector<std::string> sources;  // HF tensor names
  int64_t n_head = 0;                // rows are split into n_head heads (kPermuteRope)
};

std::vector<GgufTensorPlan> gguf_tensor_plan(const ModelConfig& config, MlaGgufLayout layout);

// Applies `plan.transform` to the HF source tensors (f32, in `plan.sources` order) and returns
// the GGUF tensor's values in its row-major order.
std::vector<float> apply_gguf_transform(const ModelConfig& config, const GgufTensorPlan& plan,
                                        const std::vector<std::vector<float>>& sources);

// The inverse for the one-to-one transforms (kCopy, kPermuteRope): the HF tensor's values from
// the GGUF tensor's (row-major, f32). kStackExperts is undone by slicing the stacked tensor, the
// split MLA pair by merge_kv_b.
std::vector<float> unapply_gguf_transform(const GgufTensorPlan& plan, std::vector<float> values);

// kv_b_proj [H * (nope + v), r] from the split layout's attn_k_b [H, r, nope] (per head W_UK^T)
// and attn_v_b [H, v, r] (per head W_UV): the inverse of kSplitKb + kSplitVb.
std::vector<float> merge_kv_b(const ModelConfig& config, const std::vector<float>& k_b,
                              const std::vector<float>& v_b);

// Pads a tokenizer's token list with "[PADn]" (kUnused) up to `vocab_size` embedding rows, as
// llama.cpp's converter does: a GGUF's token list covers every embedding row.
void pad_tokenizer_to_vocab(TokenizerData& tokenizer, int64_t vocab_size);

// llama3 rope frequency factors as llama.cpp's rope_freqs tensor holds them (inv_freq is divided
// by factor[i]); empty unless config.rope_scaling is llama3.
std::vector<float> llama3_rope_freq_factors(const ModelConfig& config);

}  // namespace seekserve

#pragma once
// Rotary position embeddings: the frequency table of a model (plain, YaRN, llama3, or GGUF's
// rope_freqs factors) and its application in the two pairings checkpoints use.

#include <cstdint>
#include <span>
#include <vector>

#include "formats/model_config.h"

namespace seekserve {

enum class RopePairing {
  kAdjacent,    // pairs (2i, 2i+1), frequency i: DeepSeek (HF and GGUF), GGUF llama
  kRotateHalf,  // pairs (i, i + d/2), frequency i: HF Qwen2, HF Llama, GGUF qwen2
};

class Rope {
 public:
  Rope() = default;
  // `dim` rotated dimensions; `freq_factors` (GGUF rope_freqs, [dim/2]) divide the plain
  // frequencies when non-empty, replacing config.rope_scaling.
  Rope(const ModelConfig& config, int64_t dim, RopePairing pairing,
       std::span<const float> freq_factors = {});

  int64_t dim() const { return dim_; }
  RopePairing pairing() const { return pairing_; }
  const std::vector<double>& inv_freq() const { return inv_freq_; }
  double attention_factor() const { return attention_factor_; }

  // Rotates x [dim] in place for position `pos`.
  void apply(float* x, int64_t pos) const;

 private:
  int64_t dim_ = 0;
  RopePairing pairing_ = RopePairing::kAdjacent;
  std::vector<double> inv_freq_;   // [dim/2]
  double attention_factor_ = 1.0;  // multiplies cos and sin (YaRN)
};

// YaRN's get_mscale(s, m) = 0.1·m·ln(s) + 1 (1 when s <= 1).
double yarn_get_mscale(double scale, double mscale);

// The MLA softmax scale: (nope + rope)^-0.5, times mscale² when YaRN has mscale_all_dim.
double mla_softmax_scale(const ModelConfig& config);

}  // namespace seekserve

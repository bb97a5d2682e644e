#pragma once
// Token sampling: penalties, then temperature, top-k, top-p, min-p, then a draw from a seeded
// generator (same seed, same logits, same token). temperature 0 is greedy (argmax, ties to the
// lower id). Ids the tokenizer does not define are masked: never sampled.

#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"

namespace seekserve {

struct SamplingParams {
  float temperature = 1.0f;         // 0 = greedy
  int32_t top_k = 0;                // 0 = off
  float top_p = 1.0f;               // 1 = off
  float min_p = 0.0f;               // 0 = off; keep p >= min_p * p_max
  float repetition_penalty = 1.0f;  // HF: seen tokens' logits divided (>0) or multiplied (<0)
  float presence_penalty = 0.0f;    // OpenAI: minus this once for each token already generated
  float frequency_penalty = 0.0f;   // OpenAI: minus this times the token's count in the output
  uint64_t seed = 0;
  std::vector<std::string> stop;  // stop strings (the generator checks them on text)
  bool ignore_eos = false;

  // Ranges as OpenAI documents them (temperature 0..2, top_p (0,1], penalties -2..2,
  // repetition_penalty (0, 10]); the error names the field.
  Status validate() const;
};

class Sampler {
 public:
  // valid[id] == false masks an id (no token, or an unused placeholder); size = n_vocab.
  Sampler(SamplingParams params, std::vector<bool> valid);

  // Picks the next token from logits [n_vocab] (modified in place). `prompt` and `output` are the
  // sequence so far (penalties read them).
  int32_t sample(std::span<float> logits, std::span<const int32_t> prompt,
                 std::span<const int32_t> output);

  const SamplingParams& params() const { return params_; }

 private:
  SamplingParams params_;
  std::vector<bool> valid_;
  std::mt19937_64 rng_;
  std::vector<int32_t> count_;  // scratch: per-id counts in the output
};

// Log-probabilities of the model's own distribution over one position: log_softmax of the raw
// logits with the masked ids (valid[id] == false) removed — before penalties, temperature and
// truncation, as vLLM reports them by default. logprob(id) = logits[id] - log_z.
struct TokenLogprob {
  int32_t id = 0;
  float logprob = 0;
};
struct LogprobTable {
  double log_z = 0;               // log of the sum of exp(logit) over the valid ids
  std::vector<TokenLogprob> top;  // the k most likely ids, most likely first (ties: lower id)
};
LogprobTable logprob_table(std::span<const float> logits, const std::vector<bool>& valid,
                           int32_t k);

}  // namespace seekserve

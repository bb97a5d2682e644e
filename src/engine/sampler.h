#pragma once
// Token sampling: penalties, then temperature, top-k, top-p, min-p, then a draw from a seeded
// generator (same seed, same logits, same token). temperature 0 is greedy (argmax, ties to the
// lower id). Ids the tokenizer does not define are masked: never sampled.
//
// Cost: sampling runs once per generated token on the engine thread, over the whole vocabulary
// (129,280 logits for DeepSeek-V3), so the fast path touches each logit about once: the mask is a
// list of the few undefined ids (built once per model), penalties touch only the ids in the
// sequence, greedy is one argmax pass, a random draw that nothing truncates (no top-k, top-p or
// min-p) walks the distribution in id order without sorting, and one that is truncated walks it
// from the most likely id down, sorting only as much of the vocabulary as the walk reaches.
// sample_reference() is the slow, obvious version the fast one is tested against.

#include <cstdint>
#include <memory>
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

// Which ids may be sampled; built once per model and shared (read-only, any thread).
class VocabMask {
 public:
  // valid[id] == false masks an id (no token, or an unused placeholder); size = n_vocab.
  explicit VocabMask(std::vector<bool> valid);
  int64_t size() const { return static_cast<int64_t>(valid_.size()); }
  const std::vector<bool>& valid() const { return valid_; }
  std::span<const int32_t> invalid_ids() const { return invalid_; }  // ascending

 private:
  std::vector<bool> valid_;
  std::vector<int32_t> invalid_;
};

// Working memory of one draw, vocabulary-sized (up to ~20 bytes per id). Nothing in it outlives
// a call, so the engine keeps one for all its sequences (one thread samples at a time) rather
// than one per sequence. Left with count and seen all zero after each call.
struct SamplerScratch {
  std::vector<int32_t> count;  // per-id occurrences in the output (presence/frequency)
  std::vector<uint8_t> seen;   // per-id "already penalised" (repetition)
  std::vector<int32_t> order;  // candidates found so far, in sampling order
  std::vector<double> p;       // their probabilities (parallel to order)
  std::vector<double> e;       // [n_vocab] exp((logit - max) / temperature); no top_k only
  double sum = 0;              // the sum of e
  int band = 0;                // the band the draw collects next
};

class Sampler {
 public:
  Sampler(SamplingParams params, std::shared_ptr<const VocabMask> mask);
  Sampler(SamplingParams params, std::vector<bool> valid);  // builds its own mask

  // Picks the next token from logits [n_vocab] (modified in place). `prompt` and `output` are the
  // sequence so far (penalties read them). `scratch`: working memory to use (nullptr: the
  // sampler's own, allocated on first use).
  int32_t sample(std::span<float> logits, std::span<const int32_t> prompt,
                 std::span<const int32_t> output, SamplerScratch* scratch = nullptr);

  const SamplingParams& params() const { return params_; }

 private:
  SamplingParams params_;
  std::shared_ptr<const VocabMask> mask_;
  std::mt19937_64 rng_;
  SamplerScratch own_;
};

namespace sampler_detail {
// Greedy's argmax over x (x.size() >= 16): the index of the largest value, the lowest index among
// equal ones. The AVX-512 one needs cpu_features().avx512f.
int64_t argmax_portable(std::span<const float> x);
int64_t argmax_avx512(std::span<const float> x);

// A draw's unnormalised probabilities: out[i] = e^((x[i] - mx) · inv_t) for x[i] ≤ mx, by one
// float polynomial (max error ~2 ulp against std::exp; arguments below -87.3, and -inf, give 0
// exactly, so masked ids can never be drawn). exp_weight is the scalar form: both vector paths
// give its results bit for bit (same operations, fused multiply-adds included), so a draw does
// not depend on the path. The AVX-512 one needs cpu_features().avx512f.
float exp_weight(float x, float mx, float inv_t);
void exp_weights_portable(std::span<const float> x, float mx, float inv_t, double* out);
void exp_weights_avx512(std::span<const float> x, float mx, float inv_t, double* out);
}  // namespace sampler_detail

// The same draw as Sampler::sample, written plainly (full passes, a full sort): the oracle for
// the fast path. `rng` is the generator a Sampler with the same seed would hold.
int32_t sample_reference(const SamplingParams& params, std::mt19937_64& rng,
                         const std::vector<bool>& valid, std::span<float> logits,
                         std::span<const int32_t> prompt, std::span<const int32_t> output);

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

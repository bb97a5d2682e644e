#pragma once
// A model ready to run one sequence at a time, for the command-line tools (generate, logits,
// perplexity): weights, tokenizer, a worker pool and a KV cache sized for --ctx tokens.

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/thread_pool.h"
#include "engine/sampler.h"
#include "formats/tokenizer.h"
#include "model/kv_cache.h"
#include "model/model.h"

namespace seekserve {

struct SessionOptions {
  std::string model;  // HF folder or .gguf
  int threads = 0;    // 0 = physical cores
  int64_t ctx = 2048;
  std::string kv_dtype = "f32";
};

class Session {
 public:
  static Result<std::unique_ptr<Session>> open(const SessionOptions& options);

  Model& model() { return *model_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  int64_t ctx() const { return ctx_; }
  // valid[id]: the tokenizer defines id as a real token (for the sampler's mask).
  std::vector<bool> valid_token_mask() const;

  // Logits of every position of `tokens` run from an empty cache: [n, n_vocab].
  Result<std::vector<float>> prompt_logits(std::span<const int32_t> tokens);

  struct GenerateStats {
    int64_t prompt_tokens = 0, generated_tokens = 0;
    double prompt_seconds = 0, generate_seconds = 0;
    std::string finish_reason;  // "stop" (EOS or stop string) or "length"
  };
  // Generates up to max_tokens after `prompt`; on_text receives text chunks as they complete
  // (never a split UTF-8 character). Stop strings end generation and are not emitted.
  Result<GenerateStats> generate(std::span<const int32_t> prompt, int64_t max_tokens,
                                 const SamplingParams& params,
                                 const std::function<void(std::string_view)>& on_text);

 private:
  Session() = default;
  std::vector<int32_t> table(int64_t n_tokens) const;

  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<KvCache> cache_;
  int64_t ctx_ = 0;
};

}  // namespace seekserve

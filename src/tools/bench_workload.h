#pragma once
// What `seekserve bench` sends: synthetic prompts of set lengths (token-exact with a tokenizer),
// shared-prefix groups, a JSONL dataset, and a priority mix; and the OpenAI request bodies made
// of them. Deterministic for a seed: request i is the same prompt on every run.

#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "formats/tokenizer.h"

namespace seekserve {

// A length: fixed (min == max) or uniform over [min, max]. Parsed from "128" or "64:256".
struct LengthSpec {
  int64_t min = 0, max = 0;
  int64_t sample(std::mt19937_64& rng) const;
};
Result<LengthSpec> parse_length_spec(const std::string& text, const std::string& flag);

// A priority mix: "0:3,10:1" = three in four requests at priority 0, one in four at 10.
struct PriorityMix {
  std::vector<std::pair<int, double>> entries;  // (priority, weight)
  bool empty() const { return entries.empty(); }
};
Result<PriorityMix> parse_priority_mix(const std::string& text);

struct WorkloadOptions {
  bool chat = true;                // /v1/chat/completions, else /v1/completions
  std::string model;               // "model" field
  LengthSpec input_len{128, 128};  // prompt tokens (completions: as the server counts them,
                                   // BOS included; chat: of the user message)
  LengthSpec output_len{32, 32};   // max_tokens (exact with ignore_eos)
  int64_t prefix_groups = 0;       // N shared prefixes (0: none)
  int64_t prefix_len = 0;          // tokens of each shared prefix, part of input_len
  PriorityMix priorities;
  std::string dataset;  // JSONL file of {"prompt"} or {"messages"}
  bool ignore_eos = true;
  bool stream = true;  // false: "stream": false, one JSON answer per request
  std::optional<double> temperature;
  uint64_t seed = 0;
};

struct BenchPrompt {
  std::string body;           // the request's JSON body
  int64_t input_tokens = -1;  // expected prompt tokens (-1: unknown); the server's usage wins
  bool input_exact = false;   // counted by the model's tokenizer
  int64_t max_tokens = 0;
  int priority = 0;
};

class Workload {
 public:
  // `tokenizer` (optional) makes synthetic prompts token-exact; it must outlive the workload.
  static Result<std::unique_ptr<Workload>> create(const WorkloadOptions& options,
                                                  const Tokenizer* tokenizer);
  // The i-th request (i >= 0). Warm-up requests use negative indices' own stream.
  BenchPrompt make(int64_t index) const;
  const WorkloadOptions& options() const { return options_; }
  std::string path() const { return options_.chat ? "/v1/chat/completions" : "/v1/completions"; }
  size_t word_pool_size() const { return words_.size(); }

 private:
  Workload() = default;
  std::string words_text(uint64_t stream, int64_t n) const;
  WorkloadOptions options_;
  const Tokenizer* tokenizer_ = nullptr;
  std::vector<std::string> words_;  // each " word" is one token for the tokenizer (if any)
  struct DatasetEntry {
    nlohmann::json messages;  // array, or null for a prompt entry
    std::string prompt;
    int64_t max_tokens = -1;
    std::optional<int> priority;
  };
  std::vector<DatasetEntry> dataset_;
};

}  // namespace seekserve

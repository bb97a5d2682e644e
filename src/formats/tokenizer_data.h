#pragma once
// The data a byte-level BPE tokenizer is built from, whatever file it came from (HF
// tokenizer.json + tokenizer_config.json, or GGUF tokenizer.ggml.* metadata).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace seekserve {

// GGUF tokenizer.ggml.token_type values.
enum class TokenType : int32_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

struct TokenizerData {
  // Pre-tokenizer name as GGUF's tokenizer.ggml.pre: "deepseek-v3", "qwen2", "deepseek-r1-qwen",
  // "llama-bpe".
  std::string pre;
  // id -> token. Normal tokens in GPT-2 byte-level form ("Ġthe"); added/special tokens as text.
  std::vector<std::string> tokens;
  std::vector<TokenType> token_types;  // same length as tokens
  std::vector<std::string> merges;     // "a b", rank = index
  int64_t bos_id = -1;
  int64_t eos_id = -1;
  bool add_bos = false;
  std::optional<std::string> chat_template;  // Jinja source as shipped with the model
};

// Reads `path` (a tokenizer.json, or a folder holding one) and, when present beside it,
// tokenizer_config.json (add_bos_token, bos/eos tokens, chat_template).
Result<TokenizerData> load_tokenizer_json(const std::string& path);

// The same from the files' contents: `tokenizer_json` (required) and `tokenizer_config_json`
// (optional; nullptr when there is none). Malformed input is kDataLoss naming the field.
Result<TokenizerData> parse_tokenizer_json(std::string_view tokenizer_json,
                                           const std::string_view* tokenizer_config_json);

// The inverse of parse_tokenizer_json: a minimal tokenizer.json (BPE vocab + merges, added
// tokens for control / user-defined ids, the Split regexes of `pre`, ByteLevel decoding) and a
// tokenizer_config.json (add_bos_token, bos/eos token text, chat_template) that parse back to
// the same data. "[PADn]" placeholders (kUnused) are left out: parsing recreates them.
// kInvalidArgument when `pre` has no known regexes.
struct TokenizerJsonFiles {
  std::string tokenizer_json;
  std::string tokenizer_config_json;
};
Result<TokenizerJsonFiles> tokenizer_data_to_json(const TokenizerData& tokenizer);

}  // namespace seekserve

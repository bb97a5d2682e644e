#pragma once
// The regex pre-tokenizers of the byte-level BPE models seekserve serves. A pre-tokenizer cuts
// text into pieces that BPE then encodes one by one; merges never cross a piece boundary.
//
// Each named pre-tokenizer is a list of HF `Split` regexes with behaviour "Isolated", applied in
// order: every regex runs over each piece the previous one produced, and both its matches and the
// gaps between them become pieces. The regexes are kept in the exact form tokenizer.json ships
// them in (so a tokenizer.json can be recognised by comparing strings) and compiled with PCRE2
// (UTF, UCP, JIT). `\s` / `\S` are rewritten to Unicode White_Space, which is what HF's
// Oniguruma means by them (PCRE2's own \s also takes U+180E).
//
// Invalid UTF-8 is accepted (PCRE2_MATCH_INVALID_UTF): ill-formed bytes never match a pattern
// character, so they end up in gap pieces and are encoded through their byte tokens.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace seekserve {

// A piece of the input: bytes [offset, offset + length) of the text given to split().
struct TextPiece {
  uint32_t offset;
  uint32_t length;
};

// The HF regexes behind a pre-tokenizer name, or nullptr when the name is unknown.
// Names: "deepseek-v3", "qwen2", "deepseek-r1-qwen" (same regex as qwen2), "llama-bpe".
const std::vector<std::string>* pre_tokenizer_regexes(std::string_view name);

// The name whose regex list equals `split_regexes` (tokenizer.json order), or kDataLoss naming
// the first regex when none does. qwen2 and deepseek-r1-qwen are indistinguishable: "qwen2".
Result<std::string> detect_pre_tokenizer(const std::vector<std::string>& split_regexes);

// Translates an HF (Oniguruma) regex to PCRE2 syntax; exposed for tests.
Result<std::string> hf_regex_to_pcre2(std::string_view hf_regex);

// Compiled pre-tokenizer. Immutable after create(); split() is safe from several threads at once
// (each call uses its own match data).
class PreTokenizer {
 public:
  static Result<std::unique_ptr<PreTokenizer>> create(std::string_view name);
  ~PreTokenizer();
  PreTokenizer(const PreTokenizer&) = delete;
  PreTokenizer& operator=(const PreTokenizer&) = delete;

  const std::string& name() const { return name_; }

  // Appends the pieces of `text` (which must be < 4 GiB) to `out`, in order, covering every
  // byte exactly once; empty text gives no pieces.
  void split(std::string_view text, std::vector<TextPiece>& out) const;

 private:
  struct Regex;
  PreTokenizer() = default;
  std::string name_;
  std::vector<std::unique_ptr<Regex>> regexes_;
};

}  // namespace seekserve

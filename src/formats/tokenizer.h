#pragma once
// Byte-level BPE tokenizer (GPT-2 byte mapping, merges by rank) as used by DeepSeek-V3/R1 and
// the R1 distills (Qwen2, Llama 3). Built from TokenizerData, so tokenizer.json and GGUF
// metadata give the same object.
//
// encode(text):
//   1. added tokens (control and user-defined) are found in the text first, leftmost-longest;
//   2. the text between them is cut by the model's regex pre-tokenizer (pre_tokenizer.h);
//   3. each piece's bytes start as single-byte tokens and are merged by merge rank (lowest
//      first, leftmost on ties) until no merge applies.
// Any byte string is accepted. Ill-formed UTF-8 never matches a regex character, so those bytes
// are encoded through their byte tokens, and decode(encode(x)) == x for every x.
//
// Thread-safety: every const method may be called from several threads at once; the word cache
// inside is locked per shard.

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "formats/tokenizer_data.h"

namespace seekserve {

class PreTokenizer;

class Tokenizer {
 public:
  // Validates `data`: unique non-empty tokens, every byte has a single-byte token, every merge
  // names two tokens whose concatenation is a token, known pre-tokenizer, bos/eos in range.
  static Result<Tokenizer> create(const TokenizerData& data);
  // load_tokenizer_json + create.
  static Result<Tokenizer> load_json(const std::string& path);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // add_special: prepend BOS when the tokenizer says so (add_bos()).
  // parse_special: match control tokens (<｜begin▁of▁sentence｜>, …) written in the text. When
  //   false they are plain text; user-defined added tokens (V3: <｜User｜>, <｜Assistant｜>, …)
  //   are matched either way, as HF does with split_special_tokens.
  std::vector<int32_t> encode(std::string_view text, bool add_special,
                              bool parse_special = true) const;

  // The bytes the ids stand for, concatenated (not necessarily valid UTF-8 when a character's
  // bytes are split across a cut). Ids without a token (negative, ≥ n_vocab(), placeholders)
  // contribute nothing. skip_special drops control tokens.
  std::string decode(std::span<const int32_t> ids, bool skip_special = false) const;

  // Bytes of one token; empty for ids without a token.
  std::string_view token_bytes(int64_t id) const;
  // The token as written in the vocabulary ("Ġthe", "<｜User｜>"); empty when out of range.
  std::string_view token_text(int64_t id) const;
  TokenType token_type(int64_t id) const;
  // Id of a vocabulary entry written as in the vocabulary ("Ġthe").
  std::optional<int32_t> token_to_id(std::string_view token_text) const;

  // Number of ids the tokenizer defines (V3: 128,815; its embedding has more rows).
  int32_t n_vocab() const { return static_cast<int32_t>(tokens_.size()); }
  // True for ids in [0, n_vocab()) that are not gap placeholders.
  bool is_real_token(int64_t id) const;

  int32_t bos_id() const { return bos_id_; }  // -1 when none
  int32_t eos_id() const { return eos_id_; }  // -1 when none
  bool add_bos() const { return add_bos_; }
  const std::string& pre() const;
  const std::optional<std::string>& chat_template() const { return chat_template_; }

 private:
  struct Impl;
  struct Scratch;  // per-call working memory of encode()
  Tokenizer() = default;

  // Appends the BPE ids of one pre-tokenized piece.
  void encode_piece(std::string_view piece, Scratch& scratch, std::vector<int32_t>& out) const;
  // Appends the ids of text that holds no added token.
  void encode_text(std::string_view text, Scratch& scratch, std::vector<int32_t>& out) const;

  std::vector<std::string> tokens_;  // vocabulary form
  std::vector<std::string> bytes_;   // what each id decodes to
  std::vector<TokenType> types_;
  int32_t bos_id_ = -1;
  int32_t eos_id_ = -1;
  bool add_bos_ = false;
  std::optional<std::string> chat_template_;
  std::unique_ptr<Impl> impl_;  // lookups, merges, added-token trie, pre-tokenizer, cache
};

// Turns ids into text as they are generated. Chunks never split a UTF-8 character: bytes of an
// unfinished character are held back until the token that completes it arrives. A byte sequence
// that can no longer become a character is emitted as U+FFFD at once (one per maximal ill-formed
// subpart); a tail still unfinished at flush() becomes U+FFFD then. Not thread-safe (one per
// sequence); the Tokenizer must outlive it.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer, bool skip_special = false)
      : tokenizer_(&tokenizer), skip_special_(skip_special) {}

  // The text this id completes (possibly empty).
  std::string push(int32_t id);
  // Whatever is still held back; the decoder is then empty and can be reused.
  std::string flush();

 private:
  const Tokenizer* tokenizer_;
  bool skip_special_;
  std::string pending_;
};

}  // namespace seekserve

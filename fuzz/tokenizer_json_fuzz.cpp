// The tokenizer.json / tokenizer_config.json parser on hostile input: never a crash, a hang or an
// exception; a parse that succeeds gives a tokenizer that either is rejected with a Status or
// builds and round-trips text. Input: tokenizer.json, optionally followed by a NUL byte and
// tokenizer_config.json.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "formats/tokenizer.h"
#include "formats/tokenizer_data.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  const std::string_view tokenizer_json = input.substr(0, nul);
  std::string_view config;
  const bool has_config = nul != std::string_view::npos;
  if (has_config) config = input.substr(nul + 1);
  auto parsed = seekserve::parse_tokenizer_json(tokenizer_json, has_config ? &config : nullptr);
  if (!parsed.ok()) {
    if (parsed.status().code() != seekserve::StatusCode::kDataLoss) {
      std::fprintf(stderr, "unexpected status: %s\n", parsed.status().message().c_str());
      std::abort();
    }
    return 0;
  }
  if (parsed->tokens.size() != parsed->token_types.size()) std::abort();
  auto tok = seekserve::Tokenizer::create(*parsed);
  if (!tok.ok()) return 0;
  const std::string_view text = "Hello, 世界 123 <s>\xFF";
  const std::vector<int32_t> ids = tok->encode(text, true);
  std::vector<int32_t> body(ids.begin() + (tok->add_bos() ? 1 : 0), ids.end());
  // Byte-level BPE loses nothing, whatever the vocabulary: merges only join tokens reachable
  // from the byte tokens, and added tokens decode to their own text.
  if (tok->decode(body) != text) std::abort();
  return 0;
}

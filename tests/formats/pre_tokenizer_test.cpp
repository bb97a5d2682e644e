#include "formats/pre_tokenizer.h"

#include <gtest/gtest.h>

#include "formats/utf8.h"

namespace seekserve {
namespace {

std::vector<std::string> pieces(const char* name, std::string_view text) {
  Result<std::unique_ptr<PreTokenizer>> pre = PreTokenizer::create(name);
  EXPECT_TRUE(pre.ok()) << pre.status().message();
  if (!pre.ok()) return {};
  std::vector<TextPiece> spans;
  (*pre)->split(text, spans);
  std::vector<std::string> out;
  size_t expected_offset = 0;
  for (const TextPiece& p : spans) {
    EXPECT_EQ(p.offset, expected_offset) << "pieces must cover the text in order";
    EXPECT_GT(p.length, 0u);
    out.emplace_back(text.substr(p.offset, p.length));
    expected_offset = p.offset + p.length;
  }
  EXPECT_EQ(expected_offset, text.size());
  return out;
}

using Pieces = std::vector<std::string>;

TEST(PreTokenizer, DeepSeekV3SplitsDigitsInThreesAndCjkRuns) {
  EXPECT_EQ(pieces("deepseek-v3", "1234567"), (Pieces{"123", "456", "7"}));
  EXPECT_EQ(pieces("deepseek-v3", "ab12cd"), (Pieces{"ab", "12", "cd"}));
  EXPECT_EQ(pieces("deepseek-v3", "你好abc世界"), (Pieces{"你好", "abc", "世界"}));
  EXPECT_EQ(pieces("deepseek-v3", "カタカナひらがな漢字"), (Pieces{"カタカナひらがな漢字"}));
  // Hangul is outside the CJK range: it goes through the general regex.
  EXPECT_EQ(pieces("deepseek-v3", "한국어 텍스트"), (Pieces{"한국어", " 텍스트"}));
}

TEST(PreTokenizer, DeepSeekV3GeneralRegex) {
  EXPECT_EQ(pieces("deepseek-v3", "Hello, world!"), (Pieces{"Hello", ",", " world", "!"}));
  EXPECT_EQ(pieces("deepseek-v3", ".append(x)"), (Pieces{".append", "(x", ")"}));
  // \s+(?!\S): a run of spaces gives its last space to the next word.
  EXPECT_EQ(pieces("deepseek-v3", "a   b"), (Pieces{"a", "  ", " b"}));
  EXPECT_EQ(pieces("deepseek-v3", "a  \n\n  b"), (Pieces{"a", "  \n\n", " ", " b"}));
  EXPECT_EQ(pieces("deepseek-v3", "end.\n\nNext"), (Pieces{"end", ".\n\n", "Next"}));
  EXPECT_EQ(pieces("deepseek-v3", "tail   "), (Pieces{"tail", "   "}));
  EXPECT_EQ(pieces("deepseek-v3", ""), Pieces{});
}

TEST(PreTokenizer, Qwen2AndLlama3) {
  EXPECT_EQ(pieces("qwen2", "I'm 123 abc"), (Pieces{"I", "'m", " ", "1", "2", "3", " abc"}));
  EXPECT_EQ(pieces("deepseek-r1-qwen", "I'M ok"), (Pieces{"I", "'M", " ok"}));
  EXPECT_EQ(pieces("llama-bpe", "I'm 12345 abc"), (Pieces{"I", "'m", " ", "123", "45", " abc"}));
  EXPECT_EQ(pieces("llama-bpe", "x = [1]\n\n"), (Pieces{"x", " =", " [", "1", "]\n\n"}));
  EXPECT_EQ(pieces("qwen2", "a   b"), (Pieces{"a", "  ", " b"}));
}

// \s means Unicode White_Space, as in HF's Oniguruma: U+0085 is whitespace; U+FEFF, U+180E,
// U+200B and the C0 separators U+001C..U+001F are not. (JavaScript's \s disagrees on U+0085 and
// U+FEFF, which is why the JS oracle leaves those two out.)
TEST(PreTokenizer, WhitespaceIsUnicodeWhiteSpace) {
  const char32_t white_space[] = {0x09,   0x0B,   0x0C,   0x20,   0x85,   0xA0,   0x1680, 0x2000,
                                  0x2005, 0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000};
  const char32_t not_white_space[] = {0xFEFF, 0x180E, 0x200B, 0x2060, 0x1C, 0x1D, 0x1E, 0x1F};
  for (char32_t cp : white_space) {
    std::string c;
    utf8_append(c, cp);
    // The whole run but its last space is one piece; the last space joins the word.
    EXPECT_EQ(pieces("deepseek-v3", "  " + c + c + "  x"), (Pieces{"  " + c + c + " ", " x"}))
        << "U+" << std::hex << static_cast<uint32_t>(cp);
    EXPECT_EQ(pieces("qwen2", "  " + c + c + "  x"), (Pieces{"  " + c + c + " ", " x"}))
        << "U+" << std::hex << static_cast<uint32_t>(cp);
  }
  for (char32_t cp : not_white_space) {
    std::string c;
    utf8_append(c, cp);
    EXPECT_EQ(pieces("deepseek-v3", "  " + c + c + "  x"), (Pieces{" ", " ", c + c, " ", " x"}))
        << "U+" << std::hex << static_cast<uint32_t>(cp);
  }
}

TEST(PreTokenizer, InvalidUtf8BytesLandInGapPieces) {
  const std::string text = "ab\xFF\xFE cd\xE4\xB8 \x80x\xF0\x9F\x98";
  const Pieces got = pieces("deepseek-v3", text);
  std::string joined;
  for (const auto& p : got) joined += p;
  EXPECT_EQ(joined, text);
  EXPECT_EQ(got.front(), "ab");
}

TEST(PreTokenizer, UnknownNameIsAnError) {
  Result<std::unique_ptr<PreTokenizer>> pre = PreTokenizer::create("gpt2");
  ASSERT_FALSE(pre.ok());
  EXPECT_NE(pre.status().message().find("gpt2"), std::string::npos);
}

TEST(PreTokenizer, DetectsTheShippedRegexes) {
  std::vector<std::string> v3 = *pre_tokenizer_regexes("deepseek-v3");
  EXPECT_EQ(*detect_pre_tokenizer(v3), "deepseek-v3");
  // tokenizer.json writes CR/LF inside the regex as the characters themselves.
  for (auto& r : v3) {
    for (size_t pos; (pos = r.find("\\r")) != std::string::npos;) r.replace(pos, 2, "\r");
    for (size_t pos; (pos = r.find("\\n")) != std::string::npos;) r.replace(pos, 2, "\n");
  }
  EXPECT_EQ(*detect_pre_tokenizer(v3), "deepseek-v3");
  EXPECT_EQ(*detect_pre_tokenizer(*pre_tokenizer_regexes("qwen2")), "qwen2");
  EXPECT_EQ(*detect_pre_tokenizer(*pre_tokenizer_regexes("llama-bpe")), "llama-bpe");
  Result<std::string> unknown = detect_pre_tokenizer({"\\w+"});
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), StatusCode::kDataLoss);
  EXPECT_FALSE(detect_pre_tokenizer({}).ok());
}

TEST(PreTokenizer, RegexTranslation) {
  Result<std::string> outside = hf_regex_to_pcre2(R"(\s+(?!\S))");
  ASSERT_TRUE(outside.ok());
  EXPECT_EQ(outside->find("\\s"), std::string::npos);
  EXPECT_NE(outside->find("[^\\t\\n"), std::string::npos);
  Result<std::string> inside = hf_regex_to_pcre2(R"([^\s\p{L}])");
  ASSERT_TRUE(inside.ok());
  EXPECT_EQ(inside->rfind("[^\\t\\n", 0), 0u);
  EXPECT_NE(inside->find("\\p{L}]"), std::string::npos);
  EXPECT_EQ(*hf_regex_to_pcre2(R"([\]\\s])"), R"([\]\\s])");  // escaped, not \s
  EXPECT_FALSE(hf_regex_to_pcre2("[abc").ok());
  EXPECT_FALSE(hf_regex_to_pcre2("[\\S]").ok());
}

}  // namespace
}  // namespace seekserve

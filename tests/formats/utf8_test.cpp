#include "formats/utf8.h"

#include <gtest/gtest.h>

namespace seekserve {
namespace {

TEST(Utf8, StepClassifiesCharacters) {
  EXPECT_EQ(utf8_step("a", 0).kind, Utf8Kind::kValid);
  Utf8Step euro = utf8_step("\xE2\x82\xAC", 0);
  EXPECT_EQ(euro.kind, Utf8Kind::kValid);
  EXPECT_EQ(euro.length, 3u);
  EXPECT_EQ(euro.codepoint, U'€');
  Utf8Step emoji = utf8_step("\xF0\x9F\x98\x80", 0);
  EXPECT_EQ(emoji.codepoint, 0x1F600u);
  EXPECT_EQ(utf8_step("\xF0\x9F\x98", 0).kind, Utf8Kind::kIncomplete);
  EXPECT_EQ(utf8_step("\xF0\x9F\x98", 0).length, 3u);
  EXPECT_EQ(utf8_step("\x80", 0).kind, Utf8Kind::kInvalid);
  EXPECT_EQ(utf8_step("\xC0\x80", 0).kind, Utf8Kind::kInvalid);          // overlong
  EXPECT_EQ(utf8_step("\xED\xA0\x80", 0).kind, Utf8Kind::kInvalid);      // surrogate
  EXPECT_EQ(utf8_step("\xF4\x90\x80\x80", 0).kind, Utf8Kind::kInvalid);  // > U+10FFFF
  // A broken sequence is invalid up to (not including) the byte that broke it.
  Utf8Step broken = utf8_step(
      "\xE4\xB8"
      "a",
      0);
  EXPECT_EQ(broken.kind, Utf8Kind::kInvalid);
  EXPECT_EQ(broken.length, 2u);
}

TEST(Utf8, SanitizeReplacesEachMaximalSubpart) {
  EXPECT_EQ(utf8_sanitize("ok \xE2\x82\xAC"), "ok \xE2\x82\xAC");
  EXPECT_EQ(utf8_sanitize("a\xFF"
                          "b"),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(utf8_sanitize("\xE4\xB8"
                          "a"),
            "\xEF\xBF\xBD"
            "a");
  EXPECT_EQ(utf8_sanitize("\xF0\x9F\x98"), "\xEF\xBF\xBD");
  EXPECT_EQ(utf8_sanitize("\x80\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_TRUE(utf8_is_valid("héllo 😀"));
  EXPECT_FALSE(utf8_is_valid("h\xC3"));
}

TEST(Utf8, AppendEncodes) {
  std::string s;
  for (char32_t cp : {U'a', U'é', U'€', U'😀'}) utf8_append(s, cp);
  EXPECT_EQ(s, "aé€😀");
}

}  // namespace
}  // namespace seekserve

#include "formats/chat_prompt.h"

#include <gtest/gtest.h>

#include "tokenizer_test_util.h"

namespace seekserve {
namespace {

TEST(ChatPromptTest, SpecialTokensComeFromTheTokenizerElseTheFamily) {
  testing::TempDir dir;
  // No BOS/EOS in this tokenizer: the family's default BOS, no EOS.
  auto plain = Tokenizer::load_json(
      dir.write("tokenizer.json", testing::tiny_tokenizer_json({}, {}).dump()));
  ASSERT_TRUE(plain.ok()) << plain.status().message();
  ChatSpecialTokens t = chat_special_tokens(*plain, ChatTemplateKind::kDeepseekV3);
  EXPECT_EQ(t.bos, default_bos_token(ChatTemplateKind::kDeepseekV3));
  EXPECT_EQ(t.eos, "");
  // With the model's own tokens (tokenizer_config.json names them): those win.
  nlohmann::json tj = testing::tiny_tokenizer_json({"<s>", "</s>"}, {});
  tj["added_tokens"] = {{{"id", 256}, {"content", "<s>"}, {"special", true}},
                        {{"id", 257}, {"content", "</s>"}, {"special", true}}};
  dir.write("tokenizer.json", tj.dump());
  dir.write("tokenizer_config.json", R"({"bos_token": "<s>", "eos_token": "</s>"})");
  auto own = Tokenizer::load_json(dir.path());
  ASSERT_TRUE(own.ok()) << own.status().message();
  t = chat_special_tokens(*own, ChatTemplateKind::kDeepseekV3);
  EXPECT_EQ(t.bos, "<s>");
  EXPECT_EQ(t.eos, "</s>");
  auto text = render_chat_for_model(*own, ChatTemplateKind::kDeepseekV3,
                                    {ChatMessage{ChatRole::kUser, "hi", {}, std::nullopt}}, true);
  ASSERT_TRUE(text.ok());
  EXPECT_TRUE(text->starts_with("<s>")) << *text;
}

}  // namespace
}  // namespace seekserve

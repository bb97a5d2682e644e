#include "formats/tokenizer_data.h"

#include <gtest/gtest.h>

#include "tokenizer_test_util.h"

namespace seekserve {
namespace {

using nlohmann::json;
using testing::TempDir;
using testing::tiny_tokenizer_json;

TEST(TokenizerData, LoadsDeepSeekV3) {
  Result<TokenizerData> data = load_tokenizer_json(testing::v3_tokenizer_path());
  ASSERT_TRUE(data.ok()) << data.status().message();
  EXPECT_EQ(data->pre, "deepseek-v3");
  ASSERT_EQ(data->tokens.size(), 128815u);
  ASSERT_EQ(data->token_types.size(), 128815u);
  EXPECT_EQ(data->merges.size(), 127741u);
  EXPECT_EQ(data->merges[0], "Ġ t");
  EXPECT_EQ(data->tokens[0], "<｜begin▁of▁sentence｜>");
  EXPECT_EQ(data->token_types[0], TokenType::kControl);
  EXPECT_EQ(data->tokens[128803], "<｜User｜>");
  EXPECT_EQ(data->token_types[128803], TokenType::kUserDefined);  // special: false in the file
  EXPECT_EQ(data->tokens[128804], "<｜Assistant｜>");
  EXPECT_EQ(data->tokens[128806], "<｜tool▁calls▁begin｜>");
  EXPECT_EQ(data->token_types[1000], TokenType::kNormal);
  EXPECT_EQ(data->bos_id, 0);
  EXPECT_EQ(data->eos_id, 1);
  EXPECT_TRUE(data->add_bos);
  ASSERT_TRUE(data->chat_template.has_value());
  EXPECT_NE(data->chat_template->find("<｜Assistant｜>"), std::string::npos);
}

TEST(TokenizerData, WritesTokenizerJsonThatParsesBackTheSame) {
  Result<TokenizerData> data = load_tokenizer_json(testing::v3_tokenizer_path());
  ASSERT_TRUE(data.ok()) << data.status().message();
  TokenizerData padded = *data;
  padded.tokens.push_back("[PAD128815]");  // as a GGUF pads to the embedding rows
  padded.token_types.push_back(TokenType::kUnused);
  Result<TokenizerJsonFiles> files = tokenizer_data_to_json(padded);
  ASSERT_TRUE(files.ok()) << files.status().message();
  const std::string_view config = files->tokenizer_config_json;
  Result<TokenizerData> back = parse_tokenizer_json(files->tokenizer_json, &config);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->pre, data->pre);
  EXPECT_EQ(back->tokens, data->tokens);
  EXPECT_EQ(back->token_types, data->token_types);
  EXPECT_EQ(back->merges, data->merges);
  EXPECT_EQ(back->bos_id, data->bos_id);
  EXPECT_EQ(back->eos_id, data->eos_id);
  EXPECT_EQ(back->add_bos, data->add_bos);
  EXPECT_EQ(back->chat_template, data->chat_template);
  TokenizerData unknown_pre = *data;
  unknown_pre.pre = "gpt4o";
  EXPECT_FALSE(tokenizer_data_to_json(unknown_pre).ok());
}

TEST(TokenizerData, AcceptsTheFolder) {
  const std::string file = testing::v3_tokenizer_path();
  Result<TokenizerData> data = load_tokenizer_json(file.substr(0, file.rfind('/')));
  ASSERT_TRUE(data.ok()) << data.status().message();
  EXPECT_EQ(data->tokens.size(), 128815u);
}

TEST(TokenizerData, FillsIdGapsWithUnusedPlaceholders) {
  TempDir dir;
  json doc = tiny_tokenizer_json({"he"}, {"h e"});
  doc["added_tokens"] = {{{"id", 300}, {"content", "<|x|>"}, {"special", true}},
                         {{"id", 301}, {"content", "<|y|>"}, {"special", false}}};
  dir.write("tokenizer.json", doc.dump());
  Result<TokenizerData> data = load_tokenizer_json(dir.path());
  ASSERT_TRUE(data.ok()) << data.status().message();
  ASSERT_EQ(data->tokens.size(), 302u);
  EXPECT_EQ(data->tokens[257], "[PAD257]");
  EXPECT_EQ(data->token_types[257], TokenType::kUnused);
  EXPECT_EQ(data->token_types[299], TokenType::kUnused);
  EXPECT_EQ(data->token_types[300], TokenType::kControl);
  EXPECT_EQ(data->token_types[301], TokenType::kUserDefined);
  EXPECT_EQ(data->bos_id, -1);  // no tokenizer_config.json
  EXPECT_FALSE(data->add_bos);
}

TEST(TokenizerData, AcceptsMergesAsPairs) {
  TempDir dir;
  json doc = tiny_tokenizer_json({"he"}, {});
  doc["model"]["merges"] = json::array({json::array({"h", "e"})});
  dir.write("tokenizer.json", doc.dump());
  Result<TokenizerData> data = load_tokenizer_json(dir.path() + "/tokenizer.json");
  ASSERT_TRUE(data.ok()) << data.status().message();
  ASSERT_EQ(data->merges.size(), 1u);
  EXPECT_EQ(data->merges[0], "h e");
}

TEST(TokenizerData, ReadsTokenizerConfigBesideIt) {
  TempDir dir;
  json doc = tiny_tokenizer_json({"he"}, {"h e"});
  doc["added_tokens"] = {{{"id", 257}, {"content", "<s>"}, {"special", true}},
                         {{"id", 258}, {"content", "</s>"}, {"special", true}}};
  dir.write("tokenizer.json", doc.dump());
  dir.write(
      "tokenizer_config.json",
      json{{"add_bos_token", true},
           {"bos_token", "<s>"},
           {"eos_token", {{"__type", "AddedToken"}, {"content", "</s>"}}},
           {"chat_template",
            {{{"name", "tool_use"}, {"template", "T"}}, {{"name", "default"}, {"template", "D"}}}}}
          .dump());
  Result<TokenizerData> data = load_tokenizer_json(dir.path());
  ASSERT_TRUE(data.ok()) << data.status().message();
  EXPECT_EQ(data->bos_id, 257);
  EXPECT_EQ(data->eos_id, 258);
  EXPECT_TRUE(data->add_bos);
  EXPECT_EQ(data->chat_template, "D");
}

// Each malformed file is kDataLoss with a message naming the field at fault.
TEST(TokenizerData, MalformedFilesNameTheField) {
  struct Case {
    const char* what;
    std::function<void(json&)> mutate;
    const char* expect_in_message;
  };
  const std::vector<Case> cases = {
      {"no model", [](json& d) { d.erase("model"); }, "model"},
      {"not BPE", [](json& d) { d["model"]["type"] = "WordPiece"; }, "model.type"},
      {"vocab not object", [](json& d) { d["model"]["vocab"] = json::array(); }, "model.vocab"},
      {"id not int", [](json& d) { d["model"]["vocab"]["he"] = "x"; }, "model.vocab['he']"},
      {"negative id", [](json& d) { d["model"]["vocab"]["he"] = -4; }, "out of range"},
      {"huge id", [](json& d) { d["model"]["vocab"]["he"] = 1ll << 40; }, "out of range"},
      {"duplicate id", [](json& d) { d["model"]["vocab"]["zz"] = 256; }, "id 256"},
      {"merges not array", [](json& d) { d["model"]["merges"] = 3; }, "model.merges"},
      {"merge not string", [](json& d) { d["model"]["merges"] = {7}; }, "model.merges[0]"},
      {"added not array", [](json& d) { d["added_tokens"] = 1; }, "added_tokens"},
      {"added id missing",
       [](json& d) {
         d["added_tokens"] = {{{"content", "<x>"}}};
       },
       "added_tokens[0].id"},
      {"added content missing",
       [](json& d) {
         d["added_tokens"] = {{{"id", 400}}};
       },
       "added_tokens[0].content"},
      {"unknown regex",
       [](json& d) { d["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "\\d+"; },
       "pre_tokenizer"},
      {"no pre_tokenizer", [](json& d) { d.erase("pre_tokenizer"); }, "pre_tokenizer"},
      {"removed behaviour",
       [](json& d) { d["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "Removed"; },
       "pre_tokenizer.behavior"},
      {"unknown normaliser",
       [](json& d) {
         d["normalizer"] = {{"type", "Lowercase"}};
       },
       "normalizer"},
  };
  for (const Case& c : cases) {
    TempDir dir;
    json doc = tiny_tokenizer_json({"he"}, {"h e"});
    c.mutate(doc);
    dir.write("tokenizer.json", doc.dump());
    Result<TokenizerData> data = load_tokenizer_json(dir.path());
    ASSERT_FALSE(data.ok()) << c.what;
    EXPECT_EQ(data.status().code(), StatusCode::kDataLoss) << c.what;
    EXPECT_NE(data.status().message().find(c.expect_in_message), std::string::npos)
        << c.what << ": " << data.status().message();
  }
}

TEST(TokenizerData, BadJsonAndBadConfigAreErrors) {
  TempDir dir;
  dir.write("tokenizer.json", "{\"model\": ");
  Result<TokenizerData> data = load_tokenizer_json(dir.path());
  ASSERT_FALSE(data.ok());
  EXPECT_EQ(data.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(data.status().message().find("not valid JSON"), std::string::npos);

  dir.write("tokenizer.json", tiny_tokenizer_json({"he"}, {"h e"}).dump());
  dir.write("tokenizer_config.json", json{{"bos_token", "<nope>"}}.dump());
  data = load_tokenizer_json(dir.path());
  ASSERT_FALSE(data.ok());
  EXPECT_NE(data.status().message().find("bos_token"), std::string::npos);

  dir.write("tokenizer_config.json", json{{"add_bos_token", "yes"}}.dump());
  data = load_tokenizer_json(dir.path());
  ASSERT_FALSE(data.ok());
  EXPECT_NE(data.status().message().find("add_bos_token"), std::string::npos);

  Result<TokenizerData> missing = load_tokenizer_json(dir.path() + "/nope.json");
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(missing.status().is_bad_input());
}

}  // namespace
}  // namespace seekserve

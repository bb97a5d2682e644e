#include "server/openai_api.h"

#include <gtest/gtest.h>

#include "../formats/tokenizer_test_util.h"
#include "server/api_keys.h"
#include "server/metrics.h"
#include "server/reasoning_splitter.h"

namespace seekserve {
namespace {

using nlohmann::json;

TEST(ReasoningSplitterTest, SplitsAtCloseTagAcrossChunks) {
  ReasoningSplitter s(true);
  std::string reasoning, content;
  for (const char* chunk : {"I think", " so</th", "ink>\n\nAnswer", " here"}) {
    ReasoningSplitter::Piece p = s.push(chunk);
    reasoning += p.reasoning;
    content += p.content;
  }
  ReasoningSplitter::Piece p = s.finish();
  reasoning += p.reasoning;
  content += p.content;
  EXPECT_EQ(reasoning, "I think so");
  EXPECT_EQ(content, "\n\nAnswer here");
  ReasoningSplitter off(false);
  EXPECT_EQ(off.push("a</think>b").content, "a</think>b");
}

TEST(OpenAiApiTest, ErrorsNameTheFieldAndMapToStatus) {
  ApiError e = api_error_from_status(invalid_argument("temperature: must be a number"));
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.param, "temperature");
  const json body = json::parse(error_body(e));
  EXPECT_EQ(body["error"]["type"], "invalid_request_error");
  EXPECT_TRUE(body["error"]["code"].is_null());
  EXPECT_EQ(api_error_from_status(not_found("x")).status, 404);
  EXPECT_EQ(api_error_from_status(Status(StatusCode::kResourceExhausted, "full")).status, 429);
  EXPECT_EQ(api_error_from_status(invalid_argument("the body is not JSON")).param, "");
}

TEST(OpenAiApiTest, ParsesTokenPromptsAndValidatesLimits) {
  ApiContext ctx;  // token-id prompts need no tokenizer
  ctx.model_name = "m";
  ctx.max_model_len = 10;
  auto r = parse_api_request(
      json{{"model", "m"}, {"prompt", {1, 2, 3}}, {"temperature", 0}, {"priority", -50}}, false,
      ctx);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->prompt.size(), 3u);
  EXPECT_EQ(r->max_tokens, 7);  // the rest of the context
  EXPECT_EQ(r->priority, 0);    // clamped
  EXPECT_EQ(parse_api_request(json{{"model", "x"}, {"prompt", {1}}}, false, ctx).status().code(),
            StatusCode::kNotFound);
  EXPECT_FALSE(parse_api_request(json{{"prompt", {1}}, {"max_tokens", 10}}, false, ctx).ok());
  EXPECT_EQ(parse_api_request(json{{"prompt", {1}}, {"n", 2}}, false, ctx)->n, 2);
  EXPECT_EQ(parse_api_request(json{{"prompt", {1}}, {"n", 17}}, false, ctx).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_FALSE(parse_api_request(json{{"prompt", {1}}, {"n", 0}}, false, ctx).ok());
  EXPECT_FALSE(parse_api_request(json{{"prompt", {1}}, {"top_p", "x"}}, false, ctx).ok());
  auto s =
      parse_api_request(json{{"prompt", {{4, 5}}}, {"stop", "end"}, {"stream", true}}, false, ctx);
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s->stream);
  EXPECT_EQ(s->sampling.stop, std::vector<std::string>{"end"});
}

TEST(OpenAiApiTest, LogprobsFieldsAndRanges) {
  ApiContext ctx;
  ctx.model_name = "m";
  ctx.max_model_len = 10;
  auto parse = [&](json body, bool chat) {
    body["prompt"] = {1, 2};
    return parse_api_request(body, chat, ctx);
  };
  // Completions: an integer 0..20.
  EXPECT_EQ(parse(json::object(), false)->logprobs, -1);
  EXPECT_EQ(parse({{"logprobs", 0}}, false)->logprobs, 0);
  EXPECT_EQ(parse({{"logprobs", 20}}, false)->logprobs, 20);
  EXPECT_EQ(parse({{"logprobs", false}}, false)->logprobs, -1);
  EXPECT_EQ(parse({{"logprobs", 21}}, false).status().message(), "logprobs: 21 is not in 0..20");
  EXPECT_FALSE(parse({{"logprobs", -1}}, false).ok());
  EXPECT_FALSE(parse({{"logprobs", "3"}}, false).ok());
  // Chat: a boolean, top_logprobs 0..20 only with it. (Chat parsing needs a template, so the
  // field checks are reached first: they come before the prompt.)
  EXPECT_EQ(parse({{"logprobs", true}, {"top_logprobs", 21}}, true).status().message(),
            "top_logprobs: 21 is not in 0..20");
  EXPECT_EQ(parse({{"top_logprobs", 2}}, true).status().message(),
            "top_logprobs: needs logprobs: true");
  EXPECT_FALSE(parse({{"logprobs", 2}}, true).ok());
}

TEST(OpenAiApiTest, LogprobShapes) {
  testing::TempDir dir;
  auto tok = Tokenizer::load_json(
      dir.write("tokenizer.json", testing::tiny_tokenizer_json({}, {}).dump()));
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  // Byte tokens: id b is the byte b. 0xC3 alone is partial UTF-8: `bytes` keeps it exact.
  const std::vector<TokenLogprobs> tokens = {{'a', -0.25f, {{'a', -0.25f}, {0xC3, -2.5f}}},
                                             {'b', -1.0f, {{'c', -0.5f}, {'b', -1.0f}}}};
  const json chat = chat_logprobs_json(*tok, tokens);
  ASSERT_EQ(chat["content"].size(), 2u);
  EXPECT_EQ(chat["content"][0]["token"], "a");
  EXPECT_FLOAT_EQ(chat["content"][0]["logprob"].get<float>(), -0.25f);
  EXPECT_EQ(chat["content"][0]["bytes"], json::array({97}));
  EXPECT_EQ(chat["content"][0]["top_logprobs"][1]["bytes"], json::array({0xC3}));
  EXPECT_EQ(chat["content"][1]["top_logprobs"][0]["token"], "c");
  const json legacy = completion_logprobs_json(*tok, tokens, 5);
  EXPECT_EQ(legacy["tokens"], json::array({"a", "b"}));
  EXPECT_EQ(legacy["text_offset"], json::array({5, 6}));
  EXPECT_FLOAT_EQ(legacy["token_logprobs"][1].get<float>(), -1.0f);
  EXPECT_FLOAT_EQ(legacy["top_logprobs"][1]["c"].get<float>(), -0.5f);
}

TEST(ApiKeysTest, FileLinesRangesAndAdmin) {
  auto keys = parse_api_keys("# comment\n\nplain\nvip -1000:100\nops admin\nboth -5:5 admin\n",
                             "keys", {0, 100});
  ASSERT_TRUE(keys.ok()) << keys.status().message();
  ASSERT_EQ(keys->size(), 4u);
  EXPECT_EQ((*keys)[0].priority.min, 0);
  EXPECT_FALSE((*keys)[0].admin);
  EXPECT_EQ((*keys)[1].priority.min, -1000);
  EXPECT_EQ((*keys)[1].priority.max, 100);
  EXPECT_TRUE((*keys)[2].admin);
  EXPECT_EQ((*keys)[3].priority.max, 5);
  EXPECT_EQ(parse_api_keys("a 5:1\n", "keys", {}).status().message(),
            "keys:1: '5:1' has MIN > MAX");
  EXPECT_EQ(parse_api_keys("a\nb x\n", "keys", {}).status().message(),
            "keys:2: unexpected 'x' (a line is: KEY [MIN:MAX] [admin])");
  EXPECT_FALSE(parse_api_keys("a\na\n", "keys", {}).ok());
  EXPECT_FALSE(parse_api_keys("# none\n", "keys", {}).ok());
  EXPECT_FALSE(parse_priority_range("1-2", "r").ok());
  EXPECT_EQ(parse_priority_range("-3:-1", "r")->max, -1);
  const ApiKeys set(std::move(*keys));
  EXPECT_EQ(set.find("Bearer vip")->priority.min, -1000);
  EXPECT_EQ(set.find("Bearer vi"), nullptr);
  EXPECT_EQ(set.find("vip"), nullptr);
  EXPECT_TRUE(ApiKeys().open());
}

TEST(MetricsTest, HistogramBucketsAreCumulative) {
  Histogram h({0.1, 1.0});
  h.observe(0.05);
  h.observe(0.5);
  h.observe(5);
  std::string out;
  h.render("x_seconds", out);
  EXPECT_NE(out.find("x_seconds_bucket{le=\"0.1\"} 1\n"), std::string::npos);
  EXPECT_NE(out.find("x_seconds_bucket{le=\"1\"} 2\n"), std::string::npos);
  EXPECT_NE(out.find("x_seconds_bucket{le=\"+Inf\"} 3\n"), std::string::npos);
  EXPECT_NE(out.find("x_seconds_count 3\n"), std::string::npos);
}

}  // namespace
}  // namespace seekserve

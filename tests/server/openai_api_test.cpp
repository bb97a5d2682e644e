#include "server/openai_api.h"

#include <gtest/gtest.h>

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
  EXPECT_FALSE(parse_api_request(json{{"prompt", {1}}, {"n", 2}}, false, ctx).ok());
  EXPECT_FALSE(parse_api_request(json{{"prompt", {1}}, {"top_p", "x"}}, false, ctx).ok());
  auto s =
      parse_api_request(json{{"prompt", {{4, 5}}}, {"stop", "end"}, {"stream", true}}, false, ctx);
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s->stream);
  EXPECT_EQ(s->sampling.stop, std::vector<std::string>{"end"});
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

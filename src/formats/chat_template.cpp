#include "formats/chat_template.h"

#include <cstdint>
#include <utility>

#include <nlohmann/json.hpp>

namespace seekserve {
namespace {

// DeepSeek-V3/R1 special tokens (U+FF5C "｜", U+2581 "▁"), as the shipped templates spell them.
constexpr std::string_view kDsUser = "<｜User｜>";
constexpr std::string_view kDsAssistant = "<｜Assistant｜>";
constexpr std::string_view kDsEndOfSentence = "<｜end▁of▁sentence｜>";
constexpr std::string_view kDsToolCallsBegin = "<｜tool▁calls▁begin｜>";
constexpr std::string_view kDsToolCallsEnd = "<｜tool▁calls▁end｜>";
constexpr std::string_view kDsToolCallBegin = "<｜tool▁call▁begin｜>";
constexpr std::string_view kDsToolCallEnd = "<｜tool▁call▁end｜>";
constexpr std::string_view kDsToolSep = "<｜tool▁sep｜>";
constexpr std::string_view kDsToolOutputsBegin = "<｜tool▁outputs▁begin｜>";
constexpr std::string_view kDsToolOutputsEnd = "<｜tool▁outputs▁end｜>";
constexpr std::string_view kDsToolOutputBegin = "<｜tool▁output▁begin｜>";
constexpr std::string_view kDsToolOutputEnd = "<｜tool▁output▁end｜>";
constexpr std::string_view kDsBos = "<｜begin▁of▁sentence｜>";

constexpr std::string_view kQwen2DefaultSystem =
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n";

constexpr std::string_view kLlamaBos = "<|begin_of_text|>";
constexpr std::string_view kLlamaEot = "<|eot_id|>";
constexpr std::string_view kLlama31SystemPreamble =
    "<|start_header_id|>system<|end_header_id|>\n\n"
    "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n";

struct NamedKind {
  std::string_view name;
  ChatTemplateKind kind;
};
constexpr NamedKind kNames[] = {
    {"deepseek-v3", ChatTemplateKind::kDeepseekV3}, {"deepseek-r1", ChatTemplateKind::kDeepseekR1},
    {"chatml", ChatTemplateKind::kQwen2ChatML},     {"qwen2", ChatTemplateKind::kQwen2ChatML},
    {"llama3", ChatTemplateKind::kLlama3},          {"llama3.1", ChatTemplateKind::kLlama31},
    {"llama3.3", ChatTemplateKind::kLlama31},
};

void append(std::string& out, std::string_view piece) {
  out.append(piece.data(), piece.size());
}

// Decodes the UTF-8 code point that starts at `pos`; its length goes to `len`. Malformed bytes
// decode as U+FFFD of length 1, which no whitespace test accepts, so trimming stops there.
char32_t decode_at(std::string_view s, size_t pos, size_t& len) {
  const auto b0 = static_cast<unsigned char>(s[pos]);
  len = 1;
  if (b0 < 0x80) return b0;
  int extra = 0;
  char32_t cp = 0;
  if ((b0 & 0xE0) == 0xC0) {
    extra = 1;
    cp = b0 & 0x1F;
  } else if ((b0 & 0xF0) == 0xE0) {
    extra = 2;
    cp = b0 & 0x0F;
  } else if ((b0 & 0xF8) == 0xF0) {
    extra = 3;
    cp = b0 & 0x07;
  } else {
    return 0xFFFD;
  }
  if (pos + extra >= s.size()) return 0xFFFD;
  for (int i = 1; i <= extra; ++i) {
    const auto b = static_cast<unsigned char>(s[pos + i]);
    if ((b & 0xC0) != 0x80) return 0xFFFD;
    cp = (cp << 6) | (b & 0x3F);
  }
  // Overlong forms (e.g. C0 A0 for a space) are malformed, not whitespace.
  constexpr char32_t kMinForLength[] = {0, 0x80, 0x800, 0x10000};
  if (cp < kMinForLength[extra]) return 0xFFFD;
  len = static_cast<size_t>(extra) + 1;
  return cp;
}

// Python's str.isspace(): bidirectional class WS, B or S, or general category Zs. Jinja's `trim`
// filter is str.strip(), so Llama's templates trim exactly this set.
bool is_python_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

std::string_view python_strip(std::string_view s) {
  size_t begin = 0;
  while (begin < s.size()) {
    size_t len = 0;
    if (!is_python_space(decode_at(s, begin, len))) break;
    begin += len;
  }
  size_t end = s.size();
  while (end > begin) {
    // Step back to the start of the last code point (at most 4 bytes, continuation bytes 10xxxxxx).
    size_t start = end - 1;
    while (start > begin && end - start < 4 &&
           (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80)
      --start;
    size_t len = 0;
    const char32_t c = decode_at(s, start, len);
    if (start + len != end || !is_python_space(c)) break;
    end = start;
  }
  return s.substr(begin, end - begin);
}

// Python's json.dumps(s, ensure_ascii=False) for a str, which is what HF's `tojson` filter does.
void append_python_json_string(std::string& out, std::string_view s) {
  out.push_back('"');
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20) {
          out += fmt::format("\\u{:04x}", c);
        } else {
          out.push_back(ch);
        }
    }
  }
  out.push_back('"');
}

// Checks what every family needs; `has_tool_role` says whether the family can express tool
// messages and tool_calls at all.
Status validate(ChatTemplateKind kind, const std::vector<ChatMessage>& messages,
                bool has_tool_role) {
  if (messages.empty()) {
    return invalid_argument("chat template {}: the conversation has no messages",
                            chat_template_name(kind));
  }
  for (size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    const bool is_assistant = m.role == ChatRole::kAssistant;
    if (!m.tool_calls.empty() && !is_assistant) {
      return invalid_argument(
          "chat template {}: message {} ({}) has tool_calls; only assistant "
          "messages may",
          chat_template_name(kind), i, chat_role_name(m.role));
    }
    if (!m.content && !(is_assistant && !m.tool_calls.empty())) {
      return invalid_argument(
          "chat template {}: message {} ({}) has null content; only an "
          "assistant message with tool_calls may",
          chat_template_name(kind), i, chat_role_name(m.role));
    }
    if (!has_tool_role && (m.role == ChatRole::kTool || !m.tool_calls.empty())) {
      return invalid_argument(
          "chat template {}: message {} is a tool {}, but this family has no "
          "tool role",
          chat_template_name(kind), i, m.role == ChatRole::kTool ? "output" : "call");
    }
  }
  return Status::ok_status();
}

void append_deepseek_tool_call(std::string& out, const ChatToolCall& call) {
  append(out, kDsToolCallBegin);
  append(out, call.type);
  append(out, kDsToolSep);
  append(out, call.name);
  out += "\n```json\n";
  append(out, call.arguments);
  out += "\n```";
  append(out, kDsToolCallEnd);
}

// V3 and R1 share their skeleton, including flags that the shipped templates never reset
// (is_first, is_output_first): they are conversation-wide, not per message.
std::string render_deepseek(bool r1, const std::vector<ChatMessage>& messages,
                            bool add_generation_prompt, std::string_view bos_token) {
  std::string out(bos_token);
  bool first_system = true;
  for (const ChatMessage& m : messages) {
    if (m.role != ChatRole::kSystem) continue;
    if (!first_system) out += "\n\n";
    out += *m.content;
    first_system = false;
  }
  bool is_first = false;
  bool is_tool = false;
  bool is_output_first = true;
  for (const ChatMessage& m : messages) {
    switch (m.role) {
      case ChatRole::kSystem:
        break;
      case ChatRole::kUser:
        is_tool = false;
        append(out, kDsUser);
        out += *m.content;
        break;
      case ChatRole::kAssistant: {
        const bool tool_branch = r1 ? !m.tool_calls.empty() : !m.content.has_value();
        if (tool_branch) {
          is_tool = false;
          for (const ChatToolCall& call : m.tool_calls) {
            if (!is_first) {
              append(out, kDsAssistant);
              if (r1 && m.content) out += *m.content;
              append(out, kDsToolCallsBegin);
              append_deepseek_tool_call(out, call);
              is_first = true;
            } else {
              out += "\n";
              append_deepseek_tool_call(out, call);
              // V3 closes the block after every later call, R1 once after the loop.
              if (!r1) {
                append(out, kDsToolCallsEnd);
                append(out, kDsEndOfSentence);
              }
            }
          }
          if (r1) {
            append(out, kDsToolCallsEnd);
            append(out, kDsEndOfSentence);
          }
        } else if (is_tool) {
          append(out, kDsToolOutputsEnd);
          out += *m.content;
          append(out, kDsEndOfSentence);
          is_tool = false;
        } else {
          std::string_view content = *m.content;
          if (r1) {
            // Python's content.split('</think>')[-1]: the text after the last "</think>".
            const size_t at = content.rfind("</think>");
            if (at != std::string_view::npos) content.remove_prefix(at + 8);
          }
          append(out, kDsAssistant);
          append(out, content);
          append(out, kDsEndOfSentence);
        }
        break;
      }
      case ChatRole::kTool:
        is_tool = true;
        if (is_output_first) {
          append(out, kDsToolOutputsBegin);
          is_output_first = false;
        } else if (!r1) {
          out += "\n";
        }
        append(out, kDsToolOutputBegin);
        out += *m.content;
        append(out, kDsToolOutputEnd);
        break;
    }
  }
  if (is_tool) append(out, kDsToolOutputsEnd);
  if (add_generation_prompt && !is_tool) {
    append(out, kDsAssistant);
    if (r1) out += "<think>\n";
  }
  return out;
}

std::string render_qwen2(const std::vector<ChatMessage>& messages, bool add_generation_prompt) {
  std::string out;
  if (messages.front().role != ChatRole::kSystem) append(out, kQwen2DefaultSystem);
  for (const ChatMessage& m : messages) {
    out += "<|im_start|>";
    append(out, chat_role_name(m.role));
    out += "\n";
    out += *m.content;
    out += "<|im_end|>\n";
  }
  if (add_generation_prompt) out += "<|im_start|>assistant\n";
  return out;
}

void append_llama_turn(std::string& out, std::string_view role, std::string_view content) {
  out += "<|start_header_id|>";
  append(out, role);
  out += "<|end_header_id|>\n\n";
  append(out, python_strip(content));
  append(out, kLlamaEot);
}

std::string render_llama3(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                          std::string_view bos_token) {
  std::string out(bos_token);
  for (const ChatMessage& m : messages) append_llama_turn(out, chat_role_name(m.role), *m.content);
  if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  return out;
}

Result<std::string> render_llama31(const std::vector<ChatMessage>& messages,
                                   bool add_generation_prompt, std::string_view bos_token) {
  for (size_t i = 0; i < messages.size(); ++i) {
    if (!messages[i].tool_calls.empty()) {
      return unimplemented(
          "chat template llama3.1: message {} has tool_calls; rendering Llama "
          "3.1 tool calls is not supported (its template needs arguments as an "
          "object and exactly one call per message)",
          i);
    }
  }
  std::string out(bos_token);
  append(out, kLlama31SystemPreamble);
  size_t first = 0;
  if (messages.front().role == ChatRole::kSystem) {
    append(out, python_strip(*messages.front().content));
    first = 1;
  }
  append(out, kLlamaEot);
  for (size_t i = first; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    if (m.role == ChatRole::kTool) {
      out += "<|start_header_id|>ipython<|end_header_id|>\n\n";
      append_python_json_string(out, *m.content);
      append(out, kLlamaEot);
    } else {
      append_llama_turn(out, chat_role_name(m.role), *m.content);
    }
  }
  if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  return out;
}

bool contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

Result<std::string> string_field(const nlohmann::json& object, const char* key, size_t index,
                                 const char* where) {
  auto it = object.find(key);
  if (it == object.end() || !it->is_string()) {
    return invalid_argument("messages[{}]: {}.{} must be a string", index, where, key);
  }
  return it->get<std::string>();
}

Result<ChatMessage> message_from_json(const nlohmann::json& j, size_t index) {
  if (!j.is_object()) return invalid_argument("messages[{}] must be an object", index);
  ChatMessage m;
  auto role = j.find("role");
  if (role == j.end() || !role->is_string()) {
    return invalid_argument("messages[{}]: role must be a string", index);
  }
  const std::string& role_name = role->get_ref<const std::string&>();
  if (role_name == "system") {
    m.role = ChatRole::kSystem;
  } else if (role_name == "user") {
    m.role = ChatRole::kUser;
  } else if (role_name == "assistant") {
    m.role = ChatRole::kAssistant;
  } else if (role_name == "tool") {
    m.role = ChatRole::kTool;
  } else {
    return invalid_argument(
        "messages[{}]: unknown role \"{}\" (expected system, user, assistant or tool)", index,
        role_name);
  }
  auto content = j.find("content");
  if (content != j.end() && content->is_string()) {
    m.content = content->get<std::string>();
  } else if (content != j.end() && !content->is_null()) {
    return invalid_argument("messages[{}]: content must be a string or null", index);
  }
  auto calls = j.find("tool_calls");
  if (calls != j.end() && !calls->is_null()) {
    if (!calls->is_array()) {
      return invalid_argument("messages[{}]: tool_calls must be an array", index);
    }
    for (const nlohmann::json& c : *calls) {
      if (!c.is_object()) {
        return invalid_argument("messages[{}]: each tool call must be an object", index);
      }
      ChatToolCall call;
      if (auto type = c.find("type"); type != c.end()) {
        if (!type->is_string()) {
          return invalid_argument("messages[{}]: tool_calls[].type must be a string", index);
        }
        call.type = type->get<std::string>();
      }
      auto function = c.find("function");
      if (function == c.end() || !function->is_object()) {
        return invalid_argument("messages[{}]: tool_calls[].function must be an object", index);
      }
      SEEK_ASSIGN_OR_RETURN(call.name, string_field(*function, "name", index, "function"));
      SEEK_ASSIGN_OR_RETURN(call.arguments,
                            string_field(*function, "arguments", index, "function"));
      m.tool_calls.push_back(std::move(call));
    }
  }
  auto reasoning = j.find("reasoning_content");
  if (reasoning != j.end() && !reasoning->is_null()) {
    if (!reasoning->is_string()) {
      return invalid_argument("messages[{}]: reasoning_content must be a string or null", index);
    }
    m.reasoning_content = reasoning->get<std::string>();
  }
  return m;
}

}  // namespace

std::string_view chat_role_name(ChatRole role) {
  switch (role) {
    case ChatRole::kSystem:
      return "system";
    case ChatRole::kUser:
      return "user";
    case ChatRole::kAssistant:
      return "assistant";
    case ChatRole::kTool:
      return "tool";
  }
  return "unknown";
}

std::string_view chat_template_name(ChatTemplateKind kind) {
  switch (kind) {
    case ChatTemplateKind::kDeepseekV3:
      return "deepseek-v3";
    case ChatTemplateKind::kDeepseekR1:
      return "deepseek-r1";
    case ChatTemplateKind::kQwen2ChatML:
      return "chatml";
    case ChatTemplateKind::kLlama3:
      return "llama3";
    case ChatTemplateKind::kLlama31:
      return "llama3.1";
  }
  return "unknown";
}

Result<ChatTemplateKind> chat_template_from_name(std::string_view name) {
  for (const NamedKind& entry : kNames) {
    if (entry.name == name) return entry.kind;
  }
  return invalid_argument(
      "unknown chat template \"{}\" (expected deepseek-v3, deepseek-r1, chatml (or qwen2), "
      "llama3 or llama3.1 (or llama3.3))",
      name);
}

std::optional<ChatTemplateKind> detect_chat_template(const std::string& jinja_source) {
  const std::string& t = jinja_source;
  if (contains(t, kDsUser) && contains(t, kDsAssistant)) {
    // DeepSeek-V3.1 and later switch thinking on and off with a `thinking` variable: a different
    // template that none of ours reproduces.
    if (contains(t, "thinking")) return std::nullopt;
    if (contains(t, "</think>") || contains(t, "<think>")) return ChatTemplateKind::kDeepseekR1;
    return ChatTemplateKind::kDeepseekV3;
  }
  if (contains(t, "<|im_start|>") && contains(t, "<|im_end|>")) {
    // Qwen2's exact default system prompt; Qwen2.5 (tools, "You are Qwen") and Qwen3 (<think>)
    // render differently.
    if (contains(t, "You are a helpful assistant.") && !contains(t, "tool") &&
        !contains(t, "think") && !contains(t, "You are Qwen")) {
      return ChatTemplateKind::kQwen2ChatML;
    }
    return std::nullopt;
  }
  if (contains(t, "<|start_header_id|>") && contains(t, "<|eot_id|>")) {
    // Llama 3.2 writes today's date (strftime_now) into the header: not reproducible here.
    if (contains(t, "strftime_now")) return std::nullopt;
    if (contains(t, "Cutting Knowledge Date: December 2023")) return ChatTemplateKind::kLlama31;
    if (!contains(t, "tool")) return ChatTemplateKind::kLlama3;
    return std::nullopt;
  }
  return std::nullopt;
}

std::string_view default_bos_token(ChatTemplateKind kind) {
  switch (kind) {
    case ChatTemplateKind::kDeepseekV3:
    case ChatTemplateKind::kDeepseekR1:
      return kDsBos;
    case ChatTemplateKind::kQwen2ChatML:
      return "";
    case ChatTemplateKind::kLlama3:
    case ChatTemplateKind::kLlama31:
      return kLlamaBos;
  }
  return "";
}

Result<std::string> render_chat(ChatTemplateKind kind, const std::vector<ChatMessage>& messages,
                                bool add_generation_prompt, std::string_view bos_token,
                                std::string_view eos_token) {
  (void)eos_token;  // part of HF's template inputs; no built-in template reads it
  switch (kind) {
    case ChatTemplateKind::kDeepseekV3:
    case ChatTemplateKind::kDeepseekR1:
      SEEK_RETURN_IF_ERROR(validate(kind, messages, /*has_tool_role=*/true));
      return render_deepseek(kind == ChatTemplateKind::kDeepseekR1, messages, add_generation_prompt,
                             bos_token);
    case ChatTemplateKind::kQwen2ChatML:
      SEEK_RETURN_IF_ERROR(validate(kind, messages, /*has_tool_role=*/false));
      return render_qwen2(messages, add_generation_prompt);
    case ChatTemplateKind::kLlama3:
      SEEK_RETURN_IF_ERROR(validate(kind, messages, /*has_tool_role=*/false));
      return render_llama3(messages, add_generation_prompt, bos_token);
    case ChatTemplateKind::kLlama31:
      SEEK_RETURN_IF_ERROR(validate(kind, messages, /*has_tool_role=*/true));
      return render_llama31(messages, add_generation_prompt, bos_token);
  }
  return internal_error("render_chat: unknown template kind {}", static_cast<int>(kind));
}

Result<std::vector<ChatMessage>> chat_messages_from_json(const nlohmann::json& messages) {
  if (!messages.is_array()) return invalid_argument("messages must be an array");
  std::vector<ChatMessage> out;
  out.reserve(messages.size());
  for (size_t i = 0; i < messages.size(); ++i) {
    SEEK_ASSIGN_OR_RETURN(ChatMessage m, message_from_json(messages[i], i));
    out.push_back(std::move(m));
  }
  return out;
}

}  // namespace seekserve

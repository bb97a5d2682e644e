// Fuzzes the chat-template path a request takes: JSON messages -> ChatMessage -> every built-in
// renderer, plus template detection on arbitrary text. Must never crash, whatever the bytes.

#include <cstddef>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "formats/chat_template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace seekserve;
  const std::string text(reinterpret_cast<const char*>(data), size);
  (void)detect_chat_template(text);
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return 0;
  Result<std::vector<ChatMessage>> messages = chat_messages_from_json(j);
  if (!messages.ok()) return 0;
  // Raw bytes as content too: renderers (Llama's Python-style trim) must cope with bad UTF-8.
  messages->push_back(ChatMessage{ChatRole::kUser, text, {}, std::nullopt});
  for (ChatTemplateKind kind :
       {ChatTemplateKind::kDeepseekV3, ChatTemplateKind::kDeepseekR1,
        ChatTemplateKind::kQwen2ChatML, ChatTemplateKind::kLlama3, ChatTemplateKind::kLlama31}) {
    (void)render_chat(kind, *messages, size % 2 == 0, default_bos_token(kind), "");
  }
  return 0;
}

#include "formats/chat_prompt.h"

namespace seekserve {

ChatSpecialTokens chat_special_tokens(const Tokenizer& tok, ChatTemplateKind kind) {
  ChatSpecialTokens t;
  t.bos = tok.bos_id() >= 0 ? std::string(tok.token_text(tok.bos_id()))
                            : std::string(default_bos_token(kind));
  if (tok.eos_id() >= 0) t.eos = std::string(tok.token_text(tok.eos_id()));
  return t;
}

Result<std::string> render_chat_for_model(const Tokenizer& tokenizer, ChatTemplateKind kind,
                                          const std::vector<ChatMessage>& messages,
                                          bool add_generation_prompt) {
  const ChatSpecialTokens special = chat_special_tokens(tokenizer, kind);
  return render_chat(kind, messages, add_generation_prompt, special.bos, special.eos);
}

}  // namespace seekserve

#pragma once
// A conversation rendered for one model: the built-in template of its family, with the
// special-token text taken from the model's own tokenizer. chat_template.h knows no tokenizer;
// this is where the two meet, so the server and the CLI pick BOS/EOS the same way.
//
// Thread-safety: pure functions.

#include <string>
#include <vector>

#include "core/status.h"
#include "formats/chat_template.h"
#include "formats/tokenizer.h"

namespace seekserve {

struct ChatSpecialTokens {
  std::string bos;  // the tokenizer's BOS text, else the family's default (maybe "")
  std::string eos;  // the tokenizer's EOS text, else ""
};
ChatSpecialTokens chat_special_tokens(const Tokenizer& tokenizer, ChatTemplateKind kind);

// render_chat with chat_special_tokens(tokenizer, kind).
Result<std::string> render_chat_for_model(const Tokenizer& tokenizer, ChatTemplateKind kind,
                                          const std::vector<ChatMessage>& messages,
                                          bool add_generation_prompt);

}  // namespace seekserve

#pragma once
// The tokenizer a model path carries: an HF folder's tokenizer.json (+ tokenizer_config.json),
// or a GGUF file's tokenizer.ggml.* metadata.

#include <string>

#include "core/status.h"
#include "formats/tokenizer_data.h"

namespace seekserve {

Result<TokenizerData> load_model_tokenizer(const std::string& model_path);

}  // namespace seekserve

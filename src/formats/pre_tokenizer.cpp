#include "formats/pre_tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <array>
#include <utility>

#include "core/check.h"
#include "formats/utf8.h"

namespace seekserve {
namespace {

struct NamedPreTokenizer {
  std::string_view name;
  std::vector<std::string> regexes;  // HF form, with \r and \n written as escapes
};

// The deepseek-v3 regexes are those of DeepSeek-V3's tokenizer.json (MODELS.md §7); qwen2 and
// llama-bpe those of Qwen2's and Llama 3's. The CJK range is kept as literal UTF-8 characters.
const std::array<NamedPreTokenizer, 4>& known_pre_tokenizers() {
  static const std::array<NamedPreTokenizer, 4> table = {{
      {"deepseek-v3",
       {R"(\p{N}{1,3})", "[\u4E00-\u9FA5\u3040-\u309F\u30A0-\u30FF]+",
        R"re([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re"}},
      {"qwen2",
       {R"re((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re"}},
      {"deepseek-r1-qwen",
       {R"re((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re"}},
      {"llama-bpe",
       {R"re((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re"}},
  }};
  return table;
}

// tokenizer.json files write CR and LF inside these regexes either as the characters themselves
// or as `\r` / `\n` escapes; both mean the same to the regex engine.
std::string canonical_regex(std::string_view regex) {
  std::string out;
  out.reserve(regex.size());
  for (char c : regex) {
    if (c == '\r') {
      out += "\\r";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// Unicode White_Space (PropList.txt), the meaning of \s in HF's Oniguruma regexes.
constexpr std::string_view kWhiteSpaceClassBody =
    R"(\t\n\x{0B}\f\r\x{20}\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000})";

}  // namespace

const std::vector<std::string>* pre_tokenizer_regexes(std::string_view name) {
  for (const auto& entry : known_pre_tokenizers()) {
    if (entry.name == name) return &entry.regexes;
  }
  return nullptr;
}

Result<std::string> detect_pre_tokenizer(const std::vector<std::string>& split_regexes) {
  std::vector<std::string> canonical;
  for (const auto& r : split_regexes) canonical.push_back(canonical_regex(r));
  for (const auto& entry : known_pre_tokenizers()) {
    if (entry.regexes == canonical) return std::string(entry.name);
  }
  if (split_regexes.empty()) {
    return data_loss(
        "pre_tokenizer: no Split regex (only deepseek-v3, qwen2 and llama-bpe "
        "pre-tokenizers are supported)");
  }
  return data_loss(
      "pre_tokenizer: unknown Split regex list starting with '{}' (supported: "
      "deepseek-v3, qwen2, llama-bpe)",
      split_regexes.front());
}

Result<std::string> hf_regex_to_pcre2(std::string_view hf_regex) {
  std::string out;
  out.reserve(hf_regex.size() + 64);
  bool in_class = false;
  for (size_t i = 0; i < hf_regex.size(); ++i) {
    const char c = hf_regex[i];
    if (c == '\\') {
      if (i + 1 >= hf_regex.size()) return data_loss("regex ends in a lone backslash");
      const char e = hf_regex[++i];
      if (e == 's') {
        out += in_class ? std::string(kWhiteSpaceClassBody)
                        : "[" + std::string(kWhiteSpaceClassBody) + "]";
      } else if (e == 'S') {
        if (in_class) return unimplemented("regex uses \\S inside a character class");
        out += "[^" + std::string(kWhiteSpaceClassBody) + "]";
      } else {
        out += c;
        out += e;
      }
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out += c;
      // A ']' right after '[' or '[^' is a literal member, not the end of the class.
      if (i + 1 < hf_regex.size() && hf_regex[i + 1] == '^') out += hf_regex[++i];
      if (i + 1 < hf_regex.size() && hf_regex[i + 1] == ']') out += hf_regex[++i];
      continue;
    }
    if (in_class && c == ']') in_class = false;
    out += c;
  }
  if (in_class) return data_loss("regex has an unterminated character class");
  return out;
}

struct PreTokenizer::Regex {
  pcre2_code* code = nullptr;
  ~Regex() {
    if (code != nullptr) pcre2_code_free(code);
  }
};

PreTokenizer::~PreTokenizer() = default;

Result<std::unique_ptr<PreTokenizer>> PreTokenizer::create(std::string_view name) {
  const std::vector<std::string>* hf_regexes = pre_tokenizer_regexes(name);
  if (hf_regexes == nullptr) {
    return invalid_argument(
        "unknown pre-tokenizer '{}' (supported: deepseek-v3, qwen2, deepseek-r1-qwen, llama-bpe)",
        name);
  }
  std::unique_ptr<PreTokenizer> pre(new PreTokenizer());
  pre->name_ = std::string(name);
  for (const auto& hf : *hf_regexes) {
    SEEK_ASSIGN_OR_RETURN(std::string pattern, hf_regex_to_pcre2(hf));
    int error = 0;
    PCRE2_SIZE error_offset = 0;
    auto regex = std::make_unique<Regex>();
    regex->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &error,
                                &error_offset, nullptr);
    if (regex->code == nullptr) {
      std::array<PCRE2_UCHAR, 256> message{};
      pcre2_get_error_message(error, message.data(), message.size());
      return internal_error("pre-tokenizer {}: regex does not compile at offset {}: {}", name,
                            error_offset, reinterpret_cast<const char*>(message.data()));
    }
    // Without JIT (an unsupported CPU) pcre2_match falls back to the interpreter: slower, same
    // pieces.
    (void)pcre2_jit_compile(regex->code, PCRE2_JIT_COMPLETE);
    pre->regexes_.push_back(std::move(regex));
  }
  return pre;
}

namespace {

// Splits piece `piece` of `text` by `code` into matches and gaps, appended to `out`.
void split_piece(const pcre2_code* code, pcre2_match_data* match_data, std::string_view text,
                 TextPiece piece, std::vector<TextPiece>& out) {
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data() + piece.offset);
  const size_t length = piece.length;
  const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match_data);
  size_t gap_start = 0;
  size_t search = 0;
  while (search < length) {
    const int rc = pcre2_match(code, subject, length, search, 0, match_data, nullptr);
    // No match, or an engine limit (never seen with these regexes): the rest is one gap, which
    // still round-trips exactly.
    if (rc < 0) break;
    const size_t begin = ovector[0], end = ovector[1];
    if (end <= begin) {
      // An empty match splits nothing; step over one character and look again.
      search = begin + utf8_step(text.substr(piece.offset, length), begin).length;
      continue;
    }
    if (begin > gap_start) {
      out.push_back({piece.offset + static_cast<uint32_t>(gap_start),
                     static_cast<uint32_t>(begin - gap_start)});
    }
    out.push_back(
        {piece.offset + static_cast<uint32_t>(begin), static_cast<uint32_t>(end - begin)});
    gap_start = search = end;
  }
  if (gap_start < length) {
    out.push_back({piece.offset + static_cast<uint32_t>(gap_start),
                   static_cast<uint32_t>(length - gap_start)});
  }
}

struct MatchDataDeleter {
  void operator()(pcre2_match_data* md) const { pcre2_match_data_free(md); }
};

}  // namespace

void PreTokenizer::split(std::string_view text, std::vector<TextPiece>& out) const {
  if (text.empty()) return;
  std::vector<TextPiece> current{{0, static_cast<uint32_t>(text.size())}};
  std::vector<TextPiece> next;
  for (size_t r = 0; r < regexes_.size(); ++r) {
    std::unique_ptr<pcre2_match_data, MatchDataDeleter> match_data(
        pcre2_match_data_create_from_pattern(regexes_[r]->code, nullptr));
    SEEK_CHECK(match_data != nullptr, "pcre2_match_data_create_from_pattern: out of memory");
    const bool last = r + 1 == regexes_.size();
    std::vector<TextPiece>& target = last ? out : next;
    if (!last) next.clear();
    for (const TextPiece& piece : current) {
      split_piece(regexes_[r]->code, match_data.get(), text, piece, target);
    }
    if (!last) std::swap(current, next);
  }
  if (regexes_.empty()) out.insert(out.end(), current.begin(), current.end());
}

}  // namespace seekserve

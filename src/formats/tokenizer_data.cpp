#include "formats/tokenizer_data.h"

#include <exception>
#include <filesystem>
#include <map>
#include <utility>

#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "formats/pre_tokenizer.h"

namespace seekserve {
namespace {

using nlohmann::json;

// Far above any real vocabulary (V3: 128,815), low enough that a hostile id cannot make us
// allocate gigabytes of placeholders.
constexpr int64_t kMaxTokenId = 1 << 24;

// The Split regexes of the pre_tokenizer section in order. Any other step than Split (Isolated,
// not inverted) and ByteLevel without its own GPT-2 regex is unsupported.
Status collect_split_regexes(const json& node, std::vector<std::string>& regexes) {
  if (!node.is_object()) return data_loss("pre_tokenizer: expected an object");
  auto type_it = node.find("type");
  if (type_it == node.end() || !type_it->is_string()) {
    return data_loss("pre_tokenizer.type: missing or not a string");
  }
  const std::string type = type_it->get<std::string>();
  if (type == "Sequence") {
    auto list = node.find("pretokenizers");
    if (list == node.end() || !list->is_array()) {
      return data_loss("pre_tokenizer.pretokenizers: missing or not an array");
    }
    for (const json& child : *list) SEEK_RETURN_IF_ERROR(collect_split_regexes(child, regexes));
    return Status::ok_status();
  }
  if (type == "ByteLevel") {
    auto use_regex = node.find("use_regex");
    if (use_regex != node.end() && use_regex->is_boolean() && use_regex->get<bool>()) {
      return data_loss(
          "pre_tokenizer: ByteLevel with use_regex (GPT-2's own split) is not "
          "supported");
    }
    return Status::ok_status();
  }
  if (type == "Split") {
    auto pattern = node.find("pattern");
    if (pattern == node.end() || !pattern->is_object()) {
      return data_loss("pre_tokenizer.pattern: missing or not an object");
    }
    auto regex = pattern->find("Regex");
    if (regex == pattern->end() || !regex->is_string()) {
      return data_loss("pre_tokenizer.pattern.Regex: missing or not a string");
    }
    auto behavior = node.find("behavior");
    if (behavior == node.end() || !behavior->is_string() ||
        behavior->get<std::string>() != "Isolated") {
      return data_loss("pre_tokenizer.behavior: only Isolated Split is supported");
    }
    auto invert = node.find("invert");
    if (invert != node.end() && (!invert->is_boolean() || invert->get<bool>())) {
      return data_loss("pre_tokenizer.invert: only invert=false is supported");
    }
    regexes.push_back(regex->get<std::string>());
    return Status::ok_status();
  }
  return data_loss("pre_tokenizer: unsupported type '{}'", type);
}

// Accepts no normaliser, an empty Sequence, or NFC. NFC is not applied, as in llama.cpp (GGUF
// cannot express it): text that is already NFC, which is nearly all text, tokenises the same.
Status check_normalizer(const json& doc) {
  auto it = doc.find("normalizer");
  if (it == doc.end() || it->is_null()) return Status::ok_status();
  if (!it->is_object()) return data_loss("normalizer: expected an object or null");
  auto type = it->find("type");
  if (type == it->end() || !type->is_string()) return data_loss("normalizer.type: missing");
  const std::string name = type->get<std::string>();
  if (name == "NFC") return Status::ok_status();
  if (name == "Sequence") {
    auto list = it->find("normalizers");
    if (list != it->end() && list->is_array() && list->empty()) return Status::ok_status();
  }
  return data_loss("normalizer: unsupported normaliser '{}'", name);
}

// bos_token / eos_token in tokenizer_config.json: a string, {"content": ...}, or null.
Result<std::optional<std::string>> token_text_field(const json& config, const char* field) {
  auto it = config.find(field);
  if (it == config.end() || it->is_null()) return std::optional<std::string>();
  if (it->is_string()) return std::optional<std::string>(it->get<std::string>());
  if (it->is_object()) {
    auto content = it->find("content");
    if (content != it->end() && content->is_string()) {
      return std::optional<std::string>(content->get<std::string>());
    }
  }
  return data_loss("tokenizer_config.json: {} must be a string or an object with 'content'", field);
}

Result<TokenizerData> parse_tokenizer(const json& doc, const json* config) {
  if (!doc.is_object()) return data_loss("tokenizer.json: expected a JSON object");
  auto model_it = doc.find("model");
  if (model_it == doc.end() || !model_it->is_object()) {
    return data_loss("model: missing or not an object");
  }
  const json& model = *model_it;
  auto type_it = model.find("type");
  if (type_it != model.end() && (!type_it->is_string() || type_it->get<std::string>() != "BPE")) {
    return data_loss("model.type: only BPE is supported, got {}", type_it->dump());
  }
  auto vocab_it = model.find("vocab");
  if (vocab_it == model.end() || !vocab_it->is_object()) {
    return data_loss("model.vocab: missing or not an object");
  }
  auto merges_it = model.find("merges");
  if (merges_it == model.end() || !merges_it->is_array()) {
    return data_loss("model.merges: missing or not an array");
  }

  // id -> (text, type); std::map keeps ids ordered and tells duplicates apart.
  std::map<int64_t, std::pair<std::string, TokenType>> by_id;
  for (auto it = vocab_it->begin(); it != vocab_it->end(); ++it) {
    if (!it.value().is_number_integer()) {
      return data_loss("model.vocab['{}']: id is not an integer", it.key());
    }
    const int64_t id = it.value().get<int64_t>();
    if (id < 0 || id >= kMaxTokenId) {
      return data_loss("model.vocab['{}']: id {} out of range [0, {})", it.key(), id, kMaxTokenId);
    }
    auto [slot, inserted] = by_id.emplace(id, std::make_pair(it.key(), TokenType::kNormal));
    if (!inserted) {
      return data_loss("model.vocab: id {} used by both '{}' and '{}'", id, slot->second.first,
                       it.key());
    }
  }

  auto added_it = doc.find("added_tokens");
  if (added_it != doc.end() && !added_it->is_null()) {
    if (!added_it->is_array()) return data_loss("added_tokens: not an array");
    for (size_t i = 0; i < added_it->size(); ++i) {
      const json& added = (*added_it)[i];
      if (!added.is_object()) return data_loss("added_tokens[{}]: not an object", i);
      auto id_it = added.find("id");
      auto content_it = added.find("content");
      if (id_it == added.end() || !id_it->is_number_integer()) {
        return data_loss("added_tokens[{}].id: missing or not an integer", i);
      }
      if (content_it == added.end() || !content_it->is_string()) {
        return data_loss("added_tokens[{}].content: missing or not a string", i);
      }
      const int64_t id = id_it->get<int64_t>();
      if (id < 0 || id >= kMaxTokenId) {
        return data_loss("added_tokens[{}].id: {} out of range [0, {})", i, id, kMaxTokenId);
      }
      auto special_it = added.find("special");
      const bool special =
          special_it != added.end() && special_it->is_boolean() && special_it->get<bool>();
      std::string content = content_it->get<std::string>();
      if (content.empty()) return data_loss("added_tokens[{}].content: empty", i);
      // An added token may restate a vocab entry (V3's ids 0..2); it then takes the added type.
      by_id[id] = {std::move(content), special ? TokenType::kControl : TokenType::kUserDefined};
    }
  }
  if (by_id.empty()) return data_loss("model.vocab: empty");

  TokenizerData data;
  const int64_t n_tokens = by_id.rbegin()->first + 1;
  data.tokens.reserve(n_tokens);
  data.token_types.reserve(n_tokens);
  for (auto& [id, entry] : by_id) {
    // Ids are dense in the result: a gap gets a placeholder that never matches any text.
    for (int64_t gap = static_cast<int64_t>(data.tokens.size()); gap < id; ++gap) {
      data.tokens.push_back(fmt::format("[PAD{}]", gap));
      data.token_types.push_back(TokenType::kUnused);
    }
    data.tokens.push_back(std::move(entry.first));
    data.token_types.push_back(entry.second);
  }

  data.merges.reserve(merges_it->size());
  for (size_t i = 0; i < merges_it->size(); ++i) {
    const json& merge = (*merges_it)[i];
    if (merge.is_string()) {
      data.merges.push_back(merge.get<std::string>());
    } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() &&
               merge[1].is_string()) {
      data.merges.push_back(merge[0].get<std::string>() + " " + merge[1].get<std::string>());
    } else {
      return data_loss("model.merges[{}]: expected \"a b\" or [\"a\", \"b\"]", i);
    }
  }

  SEEK_RETURN_IF_ERROR(check_normalizer(doc));
  auto pre_it = doc.find("pre_tokenizer");
  if (pre_it == doc.end() || pre_it->is_null()) {
    return data_loss("pre_tokenizer: missing (a byte-level BPE needs one)");
  }
  std::vector<std::string> regexes;
  SEEK_RETURN_IF_ERROR(collect_split_regexes(*pre_it, regexes));
  SEEK_ASSIGN_OR_RETURN(data.pre, detect_pre_tokenizer(regexes));

  if (config != nullptr) {
    if (!config->is_object()) return data_loss("tokenizer_config.json: expected a JSON object");
    auto add_bos = config->find("add_bos_token");
    if (add_bos != config->end() && !add_bos->is_null()) {
      if (!add_bos->is_boolean())
        return data_loss("tokenizer_config.json: add_bos_token: not a bool");
      data.add_bos = add_bos->get<bool>();
    }
    for (const char* field : {"bos_token", "eos_token"}) {
      SEEK_ASSIGN_OR_RETURN(std::optional<std::string> text, token_text_field(*config, field));
      if (!text) continue;
      int64_t found = -1;
      for (size_t id = 0; id < data.tokens.size(); ++id) {
        if (data.tokens[id] == *text && data.token_types[id] != TokenType::kUnused) {
          found = static_cast<int64_t>(id);
          break;
        }
      }
      if (found < 0) {
        return data_loss("tokenizer_config.json: {} '{}' is not a token of tokenizer.json", field,
                         *text);
      }
      (std::string_view(field) == "bos_token" ? data.bos_id : data.eos_id) = found;
    }
    auto tmpl = config->find("chat_template");
    if (tmpl != config->end() && !tmpl->is_null()) {
      if (tmpl->is_string()) {
        data.chat_template = tmpl->get<std::string>();
      } else if (tmpl->is_array()) {
        // Several named templates: the one called "default" is the chat template.
        for (const json& entry : *tmpl) {
          if (entry.is_object() && entry.value("name", json()).is_string() &&
              entry["name"].get<std::string>() == "default" && entry.contains("template") &&
              entry["template"].is_string()) {
            data.chat_template = entry["template"].get<std::string>();
          }
        }
      } else {
        return data_loss("tokenizer_config.json: chat_template: not a string or a list");
      }
    }
  }
  return data;
}

}  // namespace

Result<TokenizerData> parse_tokenizer_json(std::string_view tokenizer_json,
                                           const std::string_view* tokenizer_config_json) {
  try {
    json doc = json::parse(tokenizer_json, nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded()) return data_loss("tokenizer.json: not valid JSON");
    std::optional<json> config;
    if (tokenizer_config_json != nullptr) {
      config = json::parse(*tokenizer_config_json, nullptr, /*allow_exceptions=*/false);
      if (config->is_discarded()) return data_loss("tokenizer_config.json: not valid JSON");
    }
    return parse_tokenizer(doc, config ? &*config : nullptr);
  } catch (const std::exception& e) {
    // Every access above checks types first; this is the backstop for the module boundary.
    return data_loss("tokenizer.json: {}", e.what());
  }
}

Result<TokenizerData> load_tokenizer_json(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path file = path;
  if (fs::is_directory(file, ec)) file /= "tokenizer.json";
  SEEK_ASSIGN_OR_RETURN(std::string text, read_text_file(file.string()));
  const fs::path config_path = file.parent_path() / "tokenizer_config.json";
  std::optional<std::string> config_text;
  if (fs::exists(config_path, ec)) {
    SEEK_ASSIGN_OR_RETURN(config_text, read_text_file(config_path.string()));
  }
  const std::string_view config_view = config_text ? std::string_view(*config_text) : "";
  Result<TokenizerData> data = parse_tokenizer_json(text, config_text ? &config_view : nullptr);
  if (!data.ok()) return data.status().with_context(file.string());
  return data;
}

Result<TokenizerJsonFiles> tokenizer_data_to_json(const TokenizerData& t) {
  const std::vector<std::string>* regexes = pre_tokenizer_regexes(t.pre);
  if (regexes == nullptr) {
    return invalid_argument("tokenizer: pre-tokenizer '{}' has no tokenizer.json form", t.pre);
  }
  json vocab = json::object();
  json added = json::array();
  for (size_t id = 0; id < t.tokens.size(); ++id) {
    const TokenType type = id < t.token_types.size() ? t.token_types[id] : TokenType::kNormal;
    if (type == TokenType::kUnused) continue;
    if (type == TokenType::kControl || type == TokenType::kUserDefined) {
      added.push_back({{"id", id},
                       {"content", t.tokens[id]},
                       {"single_word", false},
                       {"lstrip", false},
                       {"rstrip", false},
                       {"normalized", type != TokenType::kControl},
                       {"special", type == TokenType::kControl}});
    } else if (!vocab.contains(t.tokens[id])) {
      vocab[t.tokens[id]] = id;
    }
  }
  json steps = json::array();
  for (const std::string& regex : *regexes) {
    steps.push_back({{"type", "Split"},
                     {"pattern", {{"Regex", regex}}},
                     {"behavior", "Isolated"},
                     {"invert", false}});
  }
  steps.push_back({{"type", "ByteLevel"},
                   {"add_prefix_space", false},
                   {"trim_offsets", true},
                   {"use_regex", false}});
  json doc = {{"version", "1.0"},
              {"truncation", nullptr},
              {"padding", nullptr},
              {"added_tokens", added},
              {"normalizer", nullptr},
              {"pre_tokenizer", {{"type", "Sequence"}, {"pretokenizers", steps}}},
              {"post_processor", nullptr},
              {"decoder",
               {{"type", "ByteLevel"},
                {"add_prefix_space", true},
                {"trim_offsets", true},
                {"use_regex", true}}},
              {"model",
               {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", nullptr},
                {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr},
                {"fuse_unk", false},
                {"byte_fallback", false},
                {"vocab", vocab},
                {"merges", t.merges}}}};
  json config = {{"add_bos_token", t.add_bos}, {"add_eos_token", false}};
  auto token_text = [&t](int64_t id) -> json {
    if (id < 0 || id >= static_cast<int64_t>(t.tokens.size())) return nullptr;
    return t.tokens[static_cast<size_t>(id)];
  };
  config["bos_token"] = token_text(t.bos_id);
  config["eos_token"] = token_text(t.eos_id);
  if (t.chat_template) config["chat_template"] = *t.chat_template;
  try {
    return TokenizerJsonFiles{doc.dump(), config.dump(2)};
  } catch (const std::exception& e) {  // a token that is not UTF-8
    return invalid_argument("tokenizer: cannot be written as tokenizer.json: {}", e.what());
  }
}

}  // namespace seekserve

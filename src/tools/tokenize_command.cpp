// `seekserve tokenize` and `seekserve detokenize`: the model's tokenizer from the command line.

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "formats/model_tokenizer.h"
#include "formats/tokenizer.h"
#include "tools/command.h"

namespace seekserve {
namespace {

struct TokenizerSource {
  std::string tokenizer_file;
  std::string model;
};

void add_source_options(CLI::App* sub, TokenizerSource& source) {
  auto* file = sub->add_option("--tokenizer", source.tokenizer_file,
                               "A tokenizer.json (tokenizer_config.json beside it is read too)");
  auto* model = sub->add_option("-m,--model", source.model,
                                "A Hugging Face model folder (tokenizer.json) or a GGUF file");
  file->excludes(model);
  model->excludes(file);
}

Result<Tokenizer> open_tokenizer(const TokenizerSource& source) {
  if (!source.tokenizer_file.empty()) return Tokenizer::load_json(source.tokenizer_file);
  if (source.model.empty()) return invalid_argument("give --tokenizer FILE or -m MODEL");
  SEEK_ASSIGN_OR_RETURN(TokenizerData data, load_model_tokenizer(source.model));
  return Tokenizer::create(data);
}

void write_stdout(std::string_view bytes) {
  std::fwrite(bytes.data(), 1, bytes.size(), stdout);
}

// Reads JSON lines {"text": ..., "ids": [...]} and checks that encode (no BOS, control tokens
// parsed) gives exactly `ids` and that decode(ids) gives back `text`. Used by the oracle test.
Status check_expectations(const Tokenizer& tok, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return not_found("{}: cannot open", path);
  std::string line;
  size_t n_lines = 0, n_matched = 0, n_shown = 0;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    ++n_lines;
    nlohmann::json doc = nlohmann::json::parse(line, nullptr, false);
    if (doc.is_discarded() || !doc.is_object() || !doc.contains("text") ||
        !doc["text"].is_string() || !doc.contains("ids") || !doc["ids"].is_array()) {
      return invalid_argument("{}:{}: expected {{\"text\": string, \"ids\": [int...]}}", path,
                              n_lines);
    }
    const std::string text = doc["text"].get<std::string>();
    std::vector<int32_t> expected;
    for (const auto& id : doc["ids"]) {
      if (!id.is_number_integer())
        return invalid_argument("{}:{}: id is not an integer", path, n_lines);
      expected.push_back(id.get<int32_t>());
    }
    const std::vector<int32_t> got = tok.encode(text, /*add_special=*/false);
    const bool ids_match = got == expected;
    const bool round_trip = tok.decode(got) == text;
    if (ids_match && round_trip) {
      ++n_matched;
      continue;
    }
    if (n_shown++ < 10) {
      std::fprintf(stderr, "mismatch at line %zu: text %s\n  expected %s\n  got      %s%s\n",
                   n_lines, nlohmann::json(text).dump().c_str(),
                   nlohmann::json(expected).dump().c_str(), nlohmann::json(got).dump().c_str(),
                   round_trip ? "" : "\n  decode(encode(text)) != text");
    }
  }
  std::printf("matched %zu of %zu strings\n", n_matched, n_lines);
  if (n_lines == 0) return invalid_argument("{}: no lines", path);
  if (n_matched != n_lines) {
    return internal_error("{} of {} strings did not match", n_lines - n_matched, n_lines);
  }
  return Status::ok_status();
}

// Ids as typed or pasted: "1 2 3", "1,2,3" or a JSON array "[1, 2, 3]".
Result<std::vector<int64_t>> parse_ids(const std::vector<std::string>& args) {
  std::vector<int64_t> ids;
  for (const std::string& arg : args) {
    size_t pos = 0;
    while (pos < arg.size()) {
      const char c = arg[pos];
      if (c == ',' || c == '[' || c == ']' || c == ' ' || c == '\t' || c == '\n') {
        ++pos;
        continue;
      }
      size_t end = pos;
      if (arg[end] == '-') ++end;
      while (end < arg.size() && arg[end] >= '0' && arg[end] <= '9') ++end;
      if (end == pos || (end == pos + 1 && arg[pos] == '-') || end - pos > 12) {
        return invalid_argument("'{}' is not a token id", arg);
      }
      ids.push_back(std::stoll(arg.substr(pos, end - pos)));
      pos = end;
    }
  }
  return ids;
}

}  // namespace

void add_tokenize_command(CLI::App& app, CommandContext& ctx) {
  struct Options {
    TokenizerSource source;
    std::string text;
    bool json = false;
    bool no_special = false;
    bool verbose = false;
    std::string expect_jsonl;
  };
  auto options = std::make_shared<Options>();
  CLI::App* sub = app.add_subcommand("tokenize", "Print the token ids of TEXT");
  add_source_options(sub, options->source);
  CLI::Option* text_option = sub->add_option("text", options->text, "The text to encode");
  sub->add_flag("--json", options->json, "Print a JSON array instead of space-separated ids");
  sub->add_flag("--no-special", options->no_special,
                "No BOS, and control-token text such as <｜begin▁of▁sentence｜> stays text");
  sub->add_flag("-v,--verbose", options->verbose, "Print one line per token: id and its bytes");
  sub->add_option("--expect-jsonl", options->expect_jsonl,
                  "Check encode/decode against JSON lines {text, ids} (no BOS) and print how "
                  "many match");
  sub->callback([options, text_option, &ctx] {
    if (text_option->count() == 0 && options->expect_jsonl.empty()) {
      ctx.exit_code = report_failure(invalid_argument("tokenize: give the TEXT to encode"));
      return;
    }
    Result<Tokenizer> tok = open_tokenizer(options->source);
    if (!tok.ok()) {
      ctx.exit_code = report_failure(tok.status());
      return;
    }
    if (!options->expect_jsonl.empty()) {
      ctx.exit_code = exit_code_for(check_expectations(*tok, options->expect_jsonl));
      return;
    }
    const bool special = !options->no_special;
    const std::vector<int32_t> ids = tok->encode(options->text, special, special);
    std::string out;
    if (options->verbose) {
      for (int32_t id : ids) {
        const std::string_view bytes = tok->token_bytes(id);
        out += fmt::format("{}\t{}\n", id,
                           nlohmann::json(std::string(bytes))
                               .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
      }
    } else if (options->json) {
      out = nlohmann::json(ids).dump() + "\n";
    } else {
      for (size_t i = 0; i < ids.size(); ++i) out += fmt::format("{}{}", i ? " " : "", ids[i]);
      out += "\n";
    }
    write_stdout(out);
    ctx.exit_code = 0;
  });
}

void add_detokenize_command(CLI::App& app, CommandContext& ctx) {
  struct Options {
    TokenizerSource source;
    std::vector<std::string> ids;
    bool skip_special = false;
  };
  auto options = std::make_shared<Options>();
  CLI::App* sub = app.add_subcommand(
      "detokenize",
      "Print the text of token IDS (exactly its bytes; a newline only on a terminal)");
  add_source_options(sub, options->source);
  sub->add_option("ids", options->ids, "Token ids: '1 2 3', '1,2,3' or '[1, 2, 3]'")->required();
  sub->add_flag("--skip-special", options->skip_special, "Leave control tokens out");
  sub->callback([options, &ctx] {
    Result<std::vector<int64_t>> ids = parse_ids(options->ids);
    if (!ids.ok()) {
      ctx.exit_code = report_failure(ids.status());
      return;
    }
    Result<Tokenizer> tok = open_tokenizer(options->source);
    if (!tok.ok()) {
      ctx.exit_code = report_failure(tok.status());
      return;
    }
    std::vector<int32_t> checked;
    for (int64_t id : *ids) {
      if (id < 0 || id >= tok->n_vocab()) {
        ctx.exit_code =
            report_failure(out_of_range("token id {} is out of range [0, {})", id, tok->n_vocab()));
        return;
      }
      if (!tok->is_real_token(id)) {
        ctx.exit_code =
            report_failure(out_of_range("token id {} is an unused placeholder, not a token", id));
        return;
      }
      checked.push_back(static_cast<int32_t>(id));
    }
    write_stdout(tok->decode(checked, options->skip_special));
    if (isatty(STDOUT_FILENO)) write_stdout("\n");
    ctx.exit_code = 0;
  });
}

}  // namespace seekserve

// `seekserve chat-template`: render a conversation with a built-in chat template.
//
//   seekserve chat-template --template deepseek-r1 --messages-json chat.json
//   --add-generation-prompt seekserve chat-template --template-file tokenizer_config.json
//   --messages-json chat.json seekserve chat-template --batch-jsonl requests.jsonl
//
// Single mode prints the rendered prompt to stdout, byte for byte, with no trailing newline. The
// messages file holds an OpenAI-style messages array (or an object with a "messages" key).
// --template-file takes a tokenizer_config.json (its chat_template) or a raw Jinja file and picks
// the built-in template that reproduces it; the Jinja text itself is never executed.
//
// Batch mode reads one JSON object per line, {"template", "messages", "add_generation_prompt",
// "bos_token", "eos_token"} (template defaults to --template; the tokens to the family's), and
// writes one line per input line: {"text": "..."} or {"error": "...", "code": "..."}. A bad line
// is an answer, not a failure: the exit code is 0 once every line got one.

#include <cstdio>
#include <memory>
#include <optional>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "formats/chat_template.h"
#include "tools/command.h"

namespace seekserve {
namespace {

struct ChatTemplateOptions {
  std::string template_name;
  std::string template_file;
  std::string messages_json;
  std::string batch_jsonl;
  bool add_generation_prompt = false;
  std::optional<std::string> bos_token;
  std::optional<std::string> eos_token;
};

Result<nlohmann::json> parse_json(const std::string& text, const std::string& what) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return invalid_argument("{}: not valid JSON", what);
  return j;
}

// The template named by --template, or detected from --template-file.
Result<std::optional<ChatTemplateKind>> kind_from_options(const ChatTemplateOptions& opt) {
  if (!opt.template_name.empty()) {
    SEEK_ASSIGN_OR_RETURN(ChatTemplateKind kind, chat_template_from_name(opt.template_name));
    return std::optional<ChatTemplateKind>(kind);
  }
  if (opt.template_file.empty()) return std::optional<ChatTemplateKind>();
  SEEK_ASSIGN_OR_RETURN(std::string text, read_text_file(opt.template_file));
  std::string source = text;
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_discarded() && j.is_object()) {
    auto it = j.find("chat_template");
    if (it != j.end() && it->is_string()) {
      source = it->get<std::string>();
    } else if (it != j.end() && it->is_array()) {
      // Newer configs list named templates; "default" is the one apply_chat_template uses.
      source.clear();
      for (const nlohmann::json& entry : *it) {
        if (entry.is_object() && entry.value("name", "") == "default" &&
            entry.contains("template") && entry["template"].is_string()) {
          source = entry["template"].get<std::string>();
        }
      }
    } else {
      return invalid_argument("{}: a JSON file without a chat_template string", opt.template_file);
    }
  }
  std::optional<ChatTemplateKind> kind = detect_chat_template(source);
  if (!kind) {
    return invalid_argument(
        "{}: its chat template is not one seekserve has built in; name one with --template",
        opt.template_file);
  }
  return kind;
}

Result<std::string> render_request(ChatTemplateKind kind, const nlohmann::json& messages,
                                   bool add_generation_prompt,
                                   const std::optional<std::string>& bos_token,
                                   const std::optional<std::string>& eos_token) {
  SEEK_ASSIGN_OR_RETURN(std::vector<ChatMessage> parsed, chat_messages_from_json(messages));
  return render_chat(kind, parsed, add_generation_prompt,
                     bos_token ? std::string_view(*bos_token) : default_bos_token(kind),
                     eos_token ? std::string_view(*eos_token) : std::string_view());
}

Result<std::string> render_batch_line(const std::string& line,
                                      std::optional<ChatTemplateKind> default_kind) {
  SEEK_ASSIGN_OR_RETURN(nlohmann::json request, parse_json(line, "batch line"));
  if (!request.is_object()) return invalid_argument("batch line: expected a JSON object");
  std::optional<ChatTemplateKind> kind = default_kind;
  if (auto it = request.find("template"); it != request.end()) {
    if (!it->is_string()) return invalid_argument("batch line: template must be a string");
    SEEK_ASSIGN_OR_RETURN(kind, chat_template_from_name(it->get<std::string>()));
  }
  if (!kind) return invalid_argument("batch line: no template (give one here or --template)");
  auto optional_string = [&](const char* key) -> Result<std::optional<std::string>> {
    auto it = request.find(key);
    if (it == request.end() || it->is_null()) return std::optional<std::string>();
    if (!it->is_string()) return invalid_argument("batch line: {} must be a string", key);
    return std::optional<std::string>(it->get<std::string>());
  };
  SEEK_ASSIGN_OR_RETURN(std::optional<std::string> bos, optional_string("bos_token"));
  SEEK_ASSIGN_OR_RETURN(std::optional<std::string> eos, optional_string("eos_token"));
  bool add_generation_prompt = false;
  if (auto it = request.find("add_generation_prompt"); it != request.end()) {
    if (!it->is_boolean()) {
      return invalid_argument("batch line: add_generation_prompt must be true or false");
    }
    add_generation_prompt = it->get<bool>();
  }
  auto messages = request.find("messages");
  if (messages == request.end()) return invalid_argument("batch line: no messages");
  return render_request(*kind, *messages, add_generation_prompt, bos, eos);
}

void write_line(const nlohmann::json& j) {
  // replace: a reply is always printable, even if a caller's bytes were not valid UTF-8.
  std::string line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  std::fwrite(line.data(), 1, line.size(), stdout);
}

Status run_batch(const ChatTemplateOptions& opt) {
  SEEK_ASSIGN_OR_RETURN(std::optional<ChatTemplateKind> default_kind, kind_from_options(opt));
  SEEK_ASSIGN_OR_RETURN(std::string text, read_text_file(opt.batch_jsonl));
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    Result<std::string> rendered = render_batch_line(line, default_kind);
    if (rendered.ok()) {
      write_line({{"text", *rendered}});
    } else {
      write_line({{"error", rendered.status().message()},
                  {"code", status_code_name(rendered.status().code())}});
    }
  }
  std::fflush(stdout);
  return Status::ok_status();
}

Status run_single(const ChatTemplateOptions& opt) {
  SEEK_ASSIGN_OR_RETURN(std::optional<ChatTemplateKind> kind, kind_from_options(opt));
  if (!kind) return invalid_argument("chat-template: give --template or --template-file");
  if (opt.messages_json.empty()) {
    return invalid_argument("chat-template: give --messages-json (or --batch-jsonl)");
  }
  SEEK_ASSIGN_OR_RETURN(std::string text, read_text_file(opt.messages_json));
  SEEK_ASSIGN_OR_RETURN(nlohmann::json j, parse_json(text, opt.messages_json));
  const nlohmann::json* messages = &j;
  if (j.is_object() && j.contains("messages")) messages = &j["messages"];
  Result<std::string> rendered =
      render_request(*kind, *messages, opt.add_generation_prompt, opt.bos_token, opt.eos_token);
  if (!rendered.ok()) return rendered.status().with_context(opt.messages_json);
  std::fwrite(rendered->data(), 1, rendered->size(), stdout);
  std::fflush(stdout);
  return Status::ok_status();
}

}  // namespace

void add_chat_template_command(CLI::App& app, CommandContext& ctx) {
  auto opt = std::make_shared<ChatTemplateOptions>();
  CLI::App* sub = app.add_subcommand(
      "chat-template", "Render a conversation with a built-in chat template (no Jinja is run)");
  sub->add_option("--template", opt->template_name,
                  "deepseek-v3, deepseek-r1, chatml (qwen2), llama3, llama3.1 (llama3.3)");
  sub->add_option("--template-file", opt->template_file,
                  "tokenizer_config.json or .jinja file whose template is detected")
      ->check(CLI::ExistingFile);
  sub->add_option("--messages-json", opt->messages_json,
                  "JSON file: messages array, or an object with \"messages\"")
      ->check(CLI::ExistingFile);
  sub->add_option("--batch-jsonl", opt->batch_jsonl,
                  "JSONL requests, one JSON reply line each (see source for the fields)")
      ->check(CLI::ExistingFile);
  sub->add_flag("--add-generation-prompt", opt->add_generation_prompt,
                "End with the assistant's turn opener");
  sub->add_option("--bos-token", opt->bos_token, "Default: the family's bos_token");
  sub->add_option("--eos-token", opt->eos_token, "Default: empty (no built-in template uses it)");
  sub->callback([opt, &ctx] {
    if (!opt->template_name.empty() && !opt->template_file.empty()) {
      ctx.exit_code =
          report_failure(invalid_argument("chat-template: --template and --template-file "
                                          "are mutually exclusive"));
      return;
    }
    ctx.exit_code = exit_code_for(opt->batch_jsonl.empty() ? run_single(*opt) : run_batch(*opt));
  });
}

}  // namespace seekserve

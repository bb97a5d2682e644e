#include "server/openai_api.h"

#include <cmath>
#include <random>

#include "formats/chat_prompt.h"

namespace seekserve {

using nlohmann::json;

namespace {

const json* field(const json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return nullptr;
  return &*it;
}

Result<std::optional<double>> get_number(const json& body, const char* key) {
  const json* v = field(body, key);
  if (!v) return std::optional<double>();
  if (!v->is_number()) return invalid_argument("{}: must be a number", key);
  return std::optional<double>(v->get<double>());
}

Result<std::optional<int64_t>> get_int(const json& body, const char* key) {
  const json* v = field(body, key);
  if (!v) return std::optional<int64_t>();
  if (v->is_number_integer()) return std::optional<int64_t>(v->get<int64_t>());
  if (v->is_number_float()) {
    const double d = v->get<double>();
    if (std::floor(d) == d && std::fabs(d) < 9e15)
      return std::optional<int64_t>(static_cast<int64_t>(d));
  }
  return invalid_argument("{}: must be an integer", key);
}

Result<std::optional<bool>> get_bool(const json& body, const char* key) {
  const json* v = field(body, key);
  if (!v) return std::optional<bool>();
  if (!v->is_boolean()) return invalid_argument("{}: must be a boolean", key);
  return std::optional<bool>(v->get<bool>());
}

// Token ids from a JSON array of integers.
Result<std::vector<int32_t>> token_array(const json& a) {
  std::vector<int32_t> ids;
  for (const json& x : a) {
    if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() > INT32_MAX)
      return invalid_argument("prompt: token ids must be non-negative integers");
    ids.push_back(static_cast<int32_t>(x.get<int64_t>()));
  }
  return ids;
}

Result<std::vector<int32_t>> completion_prompt(const json& body, const Tokenizer& tok) {
  const json* p = field(body, "prompt");
  if (!p) return invalid_argument("prompt: required");
  if (p->is_string()) return tok.encode(p->get<std::string>(), /*add_special=*/true);
  if (!p->is_array()) return invalid_argument("prompt: must be a string or an array");
  if (p->empty()) return invalid_argument("prompt: must not be empty");
  if ((*p)[0].is_number()) return token_array(*p);
  if (p->size() > 1)
    return unimplemented("prompt: several prompts in one request are not supported yet");
  const json& only = (*p)[0];
  if (only.is_string()) return tok.encode(only.get<std::string>(), true);
  if (only.is_array()) return token_array(only);
  return invalid_argument("prompt: must be a string, a token id array, or an array of one");
}

// OpenAI content may be an array of parts: keep the text parts, joined.
Result<json> flatten_messages(const json& messages) {
  if (!messages.is_array() || messages.empty())
    return invalid_argument("messages: must be a non-empty array");
  json out = messages;
  for (json& m : out) {
    if (!m.is_object()) return invalid_argument("messages: each message must be an object");
    auto c = m.find("content");
    if (c == m.end() || !c->is_array()) continue;
    std::string text;
    for (const json& part : *c) {
      if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") ||
          !part["text"].is_string())
        return unimplemented("messages: only text content parts are supported");
      text += part["text"].get<std::string>();
    }
    *c = text;
  }
  return out;
}

Result<std::vector<int32_t>> chat_prompt(const json& body, const ApiContext& ctx,
                                         bool& starts_in_reasoning) {
  const json* m = field(body, "messages");
  if (!m) return invalid_argument("messages: required");
  if (!ctx.chat_template) {
    return unimplemented(
        "messages: this model's chat template is not built in; start the server with "
        "--chat-template NAME, or use /v1/completions");
  }
  SEEK_ASSIGN_OR_RETURN(json flat, flatten_messages(*m));
  auto parsed = chat_messages_from_json(flat);
  if (!parsed.ok()) return invalid_argument("messages: {}", parsed.status().message());
  const Tokenizer& tok = *ctx.tokenizer;
  auto text =
      render_chat_for_model(tok, *ctx.chat_template, *parsed, /*add_generation_prompt=*/true);
  if (!text.ok()) return invalid_argument("messages: {}", text.status().message());
  starts_in_reasoning = *ctx.chat_template == ChatTemplateKind::kDeepseekR1 && text->size() >= 8 &&
                        text->ends_with("<think>\n");
  return tok.encode(*text, /*add_special=*/false);
}

}  // namespace

ApiError api_error_from_status(const Status& status) {
  ApiError e;
  e.message = status.message();
  switch (status.code()) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kOutOfRange:
    case StatusCode::kUnimplemented:
      e.status = 400;
      break;
    case StatusCode::kNotFound:
      e.status = 404;
      e.type = "not_found_error";
      e.code = "model_not_found";
      break;
    case StatusCode::kResourceExhausted:
      e.status = 429;
      e.type = "rate_limit_error";
      break;
    default:
      e.status = 500;
      e.type = "server_error";
  }
  // "field: text" names the offending field.
  if (e.status == 400) {
    const size_t colon = e.message.find(": ");
    if (colon != std::string::npos && colon > 0 &&
        e.message.find_first_not_of("abcdefghijklmnopqrstuvwxyz_.") >= colon)
      e.param = e.message.substr(0, colon);
  }
  return e;
}

std::string error_body(const ApiError& e) {
  json err = {{"message", e.message},
              {"type", e.type},
              {"param", e.param.empty() ? json(nullptr) : json(e.param)},
              {"code", e.code.empty() ? json(nullptr) : json(e.code)}};
  return json{{"error", err}}.dump();
}

Result<ApiRequest> parse_api_request(const json& body, bool chat, const ApiContext& ctx) {
  if (!body.is_object()) return invalid_argument("the request body must be a JSON object");
  ApiRequest r;
  r.chat = chat;
  if (const json* m = field(body, "model")) {
    if (!m->is_string()) return invalid_argument("model: must be a string");
    if (m->get<std::string>() != ctx.model_name)
      return not_found("The model '{}' does not exist; this server serves '{}'",
                       m->get<std::string>(), ctx.model_name);
  }
  SEEK_ASSIGN_OR_RETURN(std::optional<int64_t> n, get_int(body, "n"));
  if (n && (*n < 1 || *n > ctx.max_n))
    return invalid_argument("n: {} is not in 1..{} (--max-n)", *n, ctx.max_n);
  r.n = static_cast<int32_t>(n.value_or(1));
  SEEK_ASSIGN_OR_RETURN(std::optional<int64_t> best_of, get_int(body, "best_of"));
  if (best_of && *best_of != 1) return unimplemented("best_of: only 1 is supported");
  if (chat) {
    SEEK_ASSIGN_OR_RETURN(std::optional<bool> lp, get_bool(body, "logprobs"));
    SEEK_ASSIGN_OR_RETURN(std::optional<int64_t> top, get_int(body, "top_logprobs"));
    if (top && (*top < 0 || *top > kMaxTopLogprobs))
      return invalid_argument("top_logprobs: {} is not in 0..{}", *top, kMaxTopLogprobs);
    if (top && !lp.value_or(false)) return invalid_argument("top_logprobs: needs logprobs: true");
    if (lp.value_or(false)) r.logprobs = static_cast<int32_t>(top.value_or(0));
  } else {
    const json* lp = field(body, "logprobs");
    if (lp && !(lp->is_boolean() && !lp->get<bool>())) {
      SEEK_ASSIGN_OR_RETURN(std::optional<int64_t> k, get_int(body, "logprobs"));
      if (*k < 0 || *k > kMaxTopLogprobs)
        return invalid_argument("logprobs: {} is not in 0..{}", *k, kMaxTopLogprobs);
      r.logprobs = static_cast<int32_t>(*k);
    }
  }
  SEEK_ASSIGN_OR_RETURN(std::optional<bool> echo, get_bool(body, "echo"));
  if (echo.value_or(false)) return unimplemented("echo: not supported yet");

  SEEK_ASSIGN_OR_RETURN(std::optional<bool> stream, get_bool(body, "stream"));
  r.stream = stream.value_or(false);
  if (const json* so = field(body, "stream_options")) {
    if (!so->is_object()) return invalid_argument("stream_options: must be an object");
    SEEK_ASSIGN_OR_RETURN(std::optional<bool> iu, get_bool(*so, "include_usage"));
    r.include_usage = iu.value_or(false);
  }

  SamplingParams& sp = r.sampling;
  SEEK_ASSIGN_OR_RETURN(std::optional<double> temperature, get_number(body, "temperature"));
  SEEK_ASSIGN_OR_RETURN(std::optional<double> top_p, get_number(body, "top_p"));
  SEEK_ASSIGN_OR_RETURN(std::optional<int64_t> top_k, get_int(body, "top_k"));
  SEEK_ASSIGN_OR_RETURN(std::optional<double> min_p, get_number(body, "min_p"));
  SEEK_ASSIGN_OR_RETURN(std::optional<double> pp, get_number(body, "presence_penalty"));
  SEEK_ASSIGN_OR_RETURN(std::optional<double> fp, get_number(body, "frequency_penalty"));
  SEEK_ASSIGN_OR_RETURN(std::optional<double> rp, get_number(body, "repetition_penalty"));
  SEEK_ASSIGN_OR_RETURN(std::optional<int64_t> seed, get_int(body, "seed"));
  SEEK_ASSIGN_OR_RETURN(std::optional<bool> ignore_eos, get_bool(body, "ignore_eos"));
  sp.temperature = static_cast<float>(temperature.value_or(1.0));
  sp.top_p = static_cast<float>(top_p.value_or(1.0));
  if (top_k && (*top_k < -1 || *top_k > INT32_MAX))
    return invalid_argument("top_k: must be -1, 0 (off) or positive");
  sp.top_k = top_k && *top_k > 0 ? static_cast<int32_t>(*top_k) : 0;
  sp.min_p = static_cast<float>(min_p.value_or(0.0));
  sp.presence_penalty = static_cast<float>(pp.value_or(0.0));
  sp.frequency_penalty = static_cast<float>(fp.value_or(0.0));
  sp.repetition_penalty = static_cast<float>(rp.value_or(1.0));
  sp.ignore_eos = ignore_eos.value_or(false);
  if (seed) {
    sp.seed = static_cast<uint64_t>(*seed);
  } else {
    // Seeded once per thread: std::random_device costs a system call or two per use.
    thread_local std::mt19937_64 seeds{std::random_device{}()};
    sp.seed = seeds();
  }
  if (const json* stop = field(body, "stop")) {
    if (stop->is_string()) {
      sp.stop.push_back(stop->get<std::string>());
    } else if (stop->is_array()) {
      if (stop->size() > 16) return invalid_argument("stop: at most 16 stop strings");
      for (const json& s : *stop) {
        if (!s.is_string()) return invalid_argument("stop: must be a string or list of strings");
        sp.stop.push_back(s.get<std::string>());
      }
    } else {
      return invalid_argument("stop: must be a string or list of strings");
    }
    std::erase(sp.stop, std::string());
  }
  if (Status s = sp.validate(); !s.ok()) return s;

  SEEK_ASSIGN_OR_RETURN(std::optional<int64_t> priority, get_int(body, "priority"));
  r.priority = static_cast<int32_t>(
      std::clamp<int64_t>(priority.value_or(0), ctx.priority_min, ctx.priority_max));
  SEEK_ASSIGN_OR_RETURN(std::optional<double> timeout, get_number(body, "timeout"));
  if (timeout && !(*timeout > 0)) return invalid_argument("timeout: must be positive seconds");
  r.timeout_s = timeout.value_or(ctx.default_timeout_s);

  if (chat) {
    SEEK_ASSIGN_OR_RETURN(r.prompt, chat_prompt(body, ctx, r.starts_in_reasoning));
  } else {
    SEEK_ASSIGN_OR_RETURN(r.prompt, completion_prompt(body, *ctx.tokenizer));
  }
  const int64_t n_prompt = static_cast<int64_t>(r.prompt.size());
  if (n_prompt == 0) return invalid_argument("prompt: has no tokens");
  if (n_prompt >= ctx.max_model_len) {
    return invalid_argument(
        "{}: this model's maximum context length is {} tokens, and the prompt has {} (no room "
        "left to generate)",
        chat ? "messages" : "prompt", ctx.max_model_len, n_prompt);
  }
  SEEK_ASSIGN_OR_RETURN(std::optional<int64_t> mct, get_int(body, "max_completion_tokens"));
  SEEK_ASSIGN_OR_RETURN(std::optional<int64_t> mt, get_int(body, "max_tokens"));
  const char* mt_name = mct ? "max_completion_tokens" : "max_tokens";
  std::optional<int64_t> max_tokens = mct ? mct : mt;
  if (max_tokens) {
    if (*max_tokens < 1) return invalid_argument("{}: must be at least 1", mt_name);
    if (n_prompt + *max_tokens > ctx.max_model_len) {
      return invalid_argument(
          "{}: this model's maximum context length is {} tokens; the prompt has {} and {} were "
          "asked for",
          mt_name, ctx.max_model_len, n_prompt, *max_tokens);
    }
    r.max_tokens = *max_tokens;
  } else {
    r.max_tokens = ctx.max_model_len - n_prompt;
  }
  return r;
}

json usage_json(const Usage& u) {
  return {{"prompt_tokens", u.prompt_tokens},
          {"completion_tokens", u.completion_tokens},
          {"total_tokens", u.prompt_tokens + u.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", u.cached_tokens}}}};
}

namespace {

json token_text_json(const Tokenizer& tok, int32_t id) {
  return std::string(tok.token_bytes(id));
}

json token_bytes_json(const Tokenizer& tok, int32_t id) {
  json bytes = json::array();
  for (unsigned char c : tok.token_bytes(id)) bytes.push_back(static_cast<int>(c));
  return bytes;
}

json null_if_empty(const std::string& s) {
  return s.empty() ? json(nullptr) : json(s);
}

}  // namespace

json chat_logprobs_json(const Tokenizer& tok, const std::vector<TokenLogprobs>& tokens) {
  json content = json::array();
  for (const TokenLogprobs& t : tokens) {
    json top = json::array();
    for (const auto& [id, lp] : t.top) {
      top.push_back({{"token", token_text_json(tok, id)},
                     {"logprob", lp},
                     {"bytes", token_bytes_json(tok, id)}});
    }
    content.push_back({{"token", token_text_json(tok, t.token)},
                       {"logprob", t.logprob},
                       {"bytes", token_bytes_json(tok, t.token)},
                       {"top_logprobs", top}});
  }
  return {{"content", content}};
}

json completion_logprobs_json(const Tokenizer& tok, const std::vector<TokenLogprobs>& tokens,
                              int64_t first_offset) {
  json texts = json::array(), lps = json::array(), tops = json::array(), offsets = json::array();
  int64_t offset = first_offset;
  for (const TokenLogprobs& t : tokens) {
    const std::string_view bytes = tok.token_bytes(t.token);
    texts.push_back(std::string(bytes));
    lps.push_back(t.logprob);
    json top = json::object();
    for (const auto& [id, lp] : t.top) top[std::string(tok.token_bytes(id))] = lp;
    tops.push_back(top);
    offsets.push_back(offset);
    offset += static_cast<int64_t>(bytes.size());
  }
  return {
      {"tokens", texts}, {"token_logprobs", lps}, {"top_logprobs", tops}, {"text_offset", offsets}};
}

json chat_completion_json(const std::string& id, int64_t created, const std::string& model,
                          const std::vector<ChoiceOutput>& choices, const Usage& usage) {
  json out = json::array();
  for (size_t i = 0; i < choices.size(); ++i) {
    const ChoiceOutput& c = choices[i];
    json message = {{"role", "assistant"}, {"content", c.content}};
    if (c.reasoning) message["reasoning_content"] = *c.reasoning;
    out.push_back({{"index", i},
                   {"message", message},
                   {"logprobs", c.logprobs},
                   {"finish_reason", c.finish_reason}});
  }
  return {{"id", id},       {"object", "chat.completion"}, {"created", created}, {"model", model},
          {"choices", out}, {"usage", usage_json(usage)}};
}

json completion_json(const std::string& id, int64_t created, const std::string& model,
                     const std::vector<ChoiceOutput>& choices, const Usage& usage) {
  json out = json::array();
  for (size_t i = 0; i < choices.size(); ++i) {
    const ChoiceOutput& c = choices[i];
    out.push_back({{"index", i},
                   {"text", c.content},
                   {"logprobs", c.logprobs},
                   {"finish_reason", c.finish_reason}});
  }
  return {{"id", id},       {"object", "text_completion"}, {"created", created}, {"model", model},
          {"choices", out}, {"usage", usage_json(usage)}};
}

json chat_chunk_json(const std::string& id, int64_t created, const std::string& model,
                     int32_t index, const json& delta, const std::string& finish_reason,
                     const json& logprobs) {
  return {{"id", id},
          {"object", "chat.completion.chunk"},
          {"created", created},
          {"model", model},
          {"choices", json::array({{{"index", index},
                                    {"delta", delta},
                                    {"logprobs", logprobs},
                                    {"finish_reason", null_if_empty(finish_reason)}}})}};
}

json completion_chunk_json(const std::string& id, int64_t created, const std::string& model,
                           int32_t index, const std::string& text, const std::string& finish_reason,
                           const json& logprobs) {
  return {{"id", id},
          {"object", "text_completion"},
          {"created", created},
          {"model", model},
          {"choices", json::array({{{"index", index},
                                    {"text", text},
                                    {"logprobs", logprobs},
                                    {"finish_reason", null_if_empty(finish_reason)}}})}};
}

json usage_chunk_json(const std::string& id, int64_t created, const std::string& model, bool chat,
                      const Usage& usage) {
  return {{"id", id},
          {"object", chat ? "chat.completion.chunk" : "text_completion"},
          {"created", created},
          {"model", model},
          {"choices", json::array()},
          {"usage", usage_json(usage)}};
}

}  // namespace seekserve

#pragma once
// The OpenAI-compatible API as plain functions: request JSON -> ApiRequest (validated, prompt
// tokenized, chat template applied), and the JSON bodies of replies, stream chunks and errors.
// No HTTP and no engine here, so all of it is unit-testable on strings.
//
// Supported request fields (others are ignored): model, messages (chat) / prompt (completions:
// a string, a token id array, or a one-element array of either), max_tokens /
// max_completion_tokens, temperature, top_p, top_k, min_p, seed, stop (string or list),
// presence_penalty, frequency_penalty, repetition_penalty, ignore_eos, priority, timeout
// (seconds), stream, stream_options.include_usage, n (1..max_n), logprobs (chat: boolean, with
// top_logprobs 0..20; completions: an integer 0..20). Refused with 400: echo, best_of > 1,
// several prompts in one request.
//
// Thread-safety: pure functions; ApiContext is read-only.

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "engine/sampler.h"
#include "formats/chat_template.h"
#include "formats/tokenizer.h"

namespace seekserve {

struct ApiContext {
  const Tokenizer* tokenizer = nullptr;
  std::string model_name;
  std::optional<ChatTemplateKind> chat_template;  // nullopt: chat requests are refused
  int64_t max_model_len = 0;
  int32_t priority_min = 0, priority_max = 100;
  int32_t max_n = 16;  // largest `n`
  double default_timeout_s = 600;
};

struct ApiRequest {
  bool chat = false;
  bool stream = false;
  bool include_usage = false;
  std::vector<int32_t> prompt;
  SamplingParams sampling;
  int64_t max_tokens = 0;
  int32_t priority = 0;
  double timeout_s = 0;
  bool starts_in_reasoning = false;  // R1: the prompt opened <think>
  int32_t n = 1;
  int32_t logprobs = -1;  // -1: off; else how many alternatives per token (top_logprobs)
};

// Largest top_logprobs / completions logprobs.
constexpr int32_t kMaxTopLogprobs = 20;

// An error reply: HTTP status and OpenAI's error object.
struct ApiError {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // empty = null
  std::string code;   // empty = null
};

// Maps a Status to a reply: kInvalidArgument/kOutOfRange/kUnimplemented 400, kNotFound 404,
// kResourceExhausted 429, else 500. A message "field: text" names `field` as the param.
ApiError api_error_from_status(const Status& status);
std::string error_body(const ApiError& error);

// Parses and validates a /v1/chat/completions (chat = true) or /v1/completions body.
// Errors: kInvalidArgument (400), kNotFound (404: unknown model), kUnimplemented (400).
Result<ApiRequest> parse_api_request(const nlohmann::json& body, bool chat, const ApiContext& ctx);

struct Usage {
  int64_t prompt_tokens = 0, completion_tokens = 0, cached_tokens = 0;
};
nlohmann::json usage_json(const Usage& usage);

// Log-probabilities of generated tokens in OpenAI's two shapes. A token's text is its raw
// bytes (byte-level BPE pieces may be partial UTF-8; `bytes` carries them exactly).
struct TokenLogprobs {
  int32_t token = 0;
  float logprob = 0;
  std::vector<std::pair<int32_t, float>> top;  // most likely first
};
// Chat: {"content": [{token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]}]}.
nlohmann::json chat_logprobs_json(const Tokenizer& tok, const std::vector<TokenLogprobs>& tokens);
// Completions (legacy): {tokens, token_logprobs, top_logprobs: [{text: logprob}], text_offset},
// offsets in bytes from the start of the choice's text, starting at `first_offset`.
nlohmann::json completion_logprobs_json(const Tokenizer& tok,
                                        const std::vector<TokenLogprobs>& tokens,
                                        int64_t first_offset = 0);

// One choice of a full reply. logprobs: null when not asked for.
struct ChoiceOutput {
  std::string content;
  std::optional<std::string> reasoning;  // chat, R1 models
  std::string finish_reason;
  nlohmann::json logprobs;
};

// Full (non-streaming) replies, choices in index order.
nlohmann::json chat_completion_json(const std::string& id, int64_t created,
                                    const std::string& model,
                                    const std::vector<ChoiceOutput>& choices, const Usage& usage);
nlohmann::json completion_json(const std::string& id, int64_t created, const std::string& model,
                               const std::vector<ChoiceOutput>& choices, const Usage& usage);

// One streamed chunk for choice `index`. Chat: `delta` ({"role"}, {"content"},
// {"reasoning_content"}, or {}); completions: the text. finish_reason empty = null; logprobs
// null when not asked for. usage set: a usage-only chunk with empty choices
// (stream_options.include_usage).
nlohmann::json chat_chunk_json(const std::string& id, int64_t created, const std::string& model,
                               int32_t index, const nlohmann::json& delta,
                               const std::string& finish_reason,
                               const nlohmann::json& logprobs = nullptr);
nlohmann::json completion_chunk_json(const std::string& id, int64_t created,
                                     const std::string& model, int32_t index,
                                     const std::string& text, const std::string& finish_reason,
                                     const nlohmann::json& logprobs = nullptr);
nlohmann::json usage_chunk_json(const std::string& id, int64_t created, const std::string& model,
                                bool chat, const Usage& usage);

}  // namespace seekserve

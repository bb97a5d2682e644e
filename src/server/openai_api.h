#pragma once
// The OpenAI-compatible API as plain functions: request JSON -> ApiRequest (validated, prompt
// tokenized, chat template applied), and the JSON bodies of replies, stream chunks and errors.
// No HTTP and no engine here, so all of it is unit-testable on strings.
//
// Supported request fields (others are ignored): model, messages (chat) / prompt (completions:
// a string, a token id array, or a one-element array of either), max_tokens /
// max_completion_tokens, temperature, top_p, top_k, min_p, seed, stop (string or list),
// presence_penalty, frequency_penalty, repetition_penalty, ignore_eos, priority, timeout
// (seconds), stream, stream_options.include_usage. Refused with 400 for now: n > 1, logprobs /
// top_logprobs, echo, best_of > 1, several prompts in one request.
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
};

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

// Full (non-streaming) replies.
nlohmann::json chat_completion_json(const std::string& id, int64_t created,
                                    const std::string& model, const std::string& content,
                                    const std::optional<std::string>& reasoning,
                                    const std::string& finish_reason, const Usage& usage);
nlohmann::json completion_json(const std::string& id, int64_t created, const std::string& model,
                               const std::string& text, const std::string& finish_reason,
                               const Usage& usage);

// One streamed chunk. Chat: `delta` ({"role"}, {"content"}, {"reasoning_content"}, or {});
// completions: the text. finish_reason empty = null. usage set: a usage-only chunk with empty
// choices (stream_options.include_usage).
nlohmann::json chat_chunk_json(const std::string& id, int64_t created, const std::string& model,
                               const nlohmann::json& delta, const std::string& finish_reason);
nlohmann::json completion_chunk_json(const std::string& id, int64_t created,
                                     const std::string& model, const std::string& text,
                                     const std::string& finish_reason);
nlohmann::json usage_chunk_json(const std::string& id, int64_t created, const std::string& model,
                                bool chat, const Usage& usage);

}  // namespace seekserve

#include "engine/session.h"

#include <chrono>

#include "engine/text_output.h"

namespace seekserve {
namespace {
constexpr int64_t kBlockSize = 16;
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

Result<std::unique_ptr<Session>> Session::open(const SessionOptions& o) {
  const std::string& path = o.model;
  if (path.empty()) return invalid_argument("-m/--model: required");
  if (o.ctx <= 0) return invalid_argument("--ctx: {} must be positive", o.ctx);
  auto kv_dtype = dtype_from_name(o.kv_dtype);
  if (!kv_dtype) return invalid_argument("--kv-dtype: '{}' is not f32, bf16 or fp8", o.kv_dtype);
  SEEK_ASSIGN_OR_RETURN(std::unique_ptr<ModelWeights> weights, load_model_weights(path));
  std::unique_ptr<Session> s(new Session());
  SEEK_ASSIGN_OR_RETURN(Tokenizer tok, Tokenizer::create(weights->tokenizer));
  s->tokenizer_ = std::make_unique<Tokenizer>(std::move(tok));
  const ModelConfig config = weights->config;
  s->ctx_ = o.ctx;
  s->pool_ = std::make_unique<ThreadPool>(o.threads);
  s->model_ = std::make_unique<Model>(std::move(weights), *s->pool_);
  SEEK_ASSIGN_OR_RETURN(
      KvCache cache,
      KvCache::create(config, (o.ctx + kBlockSize - 1) / kBlockSize, kBlockSize, *kv_dtype));
  s->cache_ = std::make_unique<KvCache>(std::move(cache));
  return s;
}

std::vector<bool> Session::valid_token_mask() const {
  std::vector<bool> valid(static_cast<size_t>(model_->n_vocab()), false);
  for (int64_t id = 0; id < model_->n_vocab(); ++id)
    valid[static_cast<size_t>(id)] = tokenizer_->is_real_token(id);
  return valid;
}

std::vector<int32_t> Session::table(int64_t n_tokens) const {
  std::vector<int32_t> t(static_cast<size_t>((n_tokens + kBlockSize - 1) / kBlockSize));
  for (size_t i = 0; i < t.size(); ++i) t[i] = static_cast<int32_t>(i);
  return t;
}

Result<std::vector<float>> Session::prompt_logits(std::span<const int32_t> tokens) {
  if (tokens.empty()) return invalid_argument("the prompt has no tokens");
  if (static_cast<int64_t>(tokens.size()) > ctx_) {
    return invalid_argument("the prompt has {} tokens, more than --ctx {}", tokens.size(), ctx_);
  }
  const std::vector<int32_t> blocks = table(static_cast<int64_t>(tokens.size()));
  SequenceInput in{tokens, 0, blocks, true};
  std::vector<float> logits;
  SEEK_RETURN_IF_ERROR(model_->forward({&in, 1}, *cache_, logits));
  return logits;
}

Result<Session::GenerateStats> Session::generate(
    std::span<const int32_t> prompt, int64_t max_tokens, const SamplingParams& params,
    const std::function<void(std::string_view)>& on_text) {
  SEEK_RETURN_IF_ERROR(params.validate());
  if (prompt.empty()) return invalid_argument("the prompt has no tokens");
  const int64_t total = static_cast<int64_t>(prompt.size()) + max_tokens;
  if (total > ctx_) {
    return invalid_argument("prompt ({} tokens) + max tokens ({}) exceed --ctx {}", prompt.size(),
                            max_tokens, ctx_);
  }
  const std::vector<int32_t> blocks = table(total);
  Sampler sampler(params, valid_token_mask());
  TextOutput text(*tokenizer_, params.stop);
  GenerateStats stats;
  stats.prompt_tokens = static_cast<int64_t>(prompt.size());
  stats.finish_reason = "length";
  std::vector<int32_t> output;
  std::vector<float> logits;

  auto t0 = std::chrono::steady_clock::now();
  SequenceInput in{prompt, 0, blocks, false};
  SEEK_RETURN_IF_ERROR(model_->forward({&in, 1}, *cache_, logits));
  stats.prompt_seconds = seconds_since(t0);
  t0 = std::chrono::steady_clock::now();
  int32_t next = 0;
  while (static_cast<int64_t>(output.size()) < max_tokens) {
    next = sampler.sample(logits, prompt, output);
    output.push_back(next);
    if (!params.ignore_eos && next == tokenizer_->eos_id()) {
      stats.finish_reason = "stop";
      break;
    }
    const std::string chunk = text.push(next);
    if (!chunk.empty()) on_text(chunk);
    if (text.stopped()) {
      stats.finish_reason = "stop";
      break;
    }
    if (static_cast<int64_t>(output.size()) == max_tokens) break;
    const int32_t tok = next;
    SequenceInput step{
        {&tok, 1}, stats.prompt_tokens + static_cast<int64_t>(output.size()) - 1, blocks, false};
    SEEK_RETURN_IF_ERROR(model_->forward({&step, 1}, *cache_, logits));
  }
  if (const std::string rest = text.finish(); !rest.empty()) on_text(rest);
  stats.generated_tokens = static_cast<int64_t>(output.size());
  stats.generate_seconds = seconds_since(t0);
  return stats;
}

}  // namespace seekserve

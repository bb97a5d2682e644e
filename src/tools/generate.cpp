#include "tools/generate.h"

#include <cmath>
#include <cstdio>
#include <memory>
#include <vector>

#include <fmt/format.h>

#include "core/mapped_file.h"
#include "engine/session.h"
#include "formats/chat_prompt.h"
#include "formats/chat_template.h"
#include "tools/make_model.h"
#include "tools/npy.h"

namespace seekserve {
namespace {

void add_session_options(CLI::App* sub, SessionOptions& o) {
  sub->add_option("-m,--model", o.model,
                  "HF model folder or .gguf file (default: the demo model, tiny-v3)");
  sub->add_option("-t,--threads", o.threads, "Worker threads (0 = physical cores)")
      ->capture_default_str();
  sub->add_option("--ctx", o.ctx, "Context length (tokens) the KV cache holds")
      ->capture_default_str();
  sub->add_option("--kv-dtype", o.kv_dtype, "KV cache type: f32, bf16 or fp8")
      ->capture_default_str();
}

Result<std::unique_ptr<Session>> open_session(SessionOptions o) {
  if (o.model.empty()) {
    SEEK_ASSIGN_OR_RETURN(o.model, ensure_demo_model());
  }
  return Session::open(o);
}

// The prompt as a user message in the model's chat template.
Result<std::string> chat_prompt(const Session& s, const std::string& text,
                                const std::string& template_name) {
  ChatTemplateKind kind;
  if (!template_name.empty()) {
    auto named = chat_template_from_name(template_name);
    if (!named.ok()) return named.status().with_context("--chat-template");
    kind = *named;
  } else {
    const auto& shipped = s.tokenizer().chat_template();
    std::optional<ChatTemplateKind> detected =
        shipped ? detect_chat_template(*shipped) : std::nullopt;
    if (!detected) {
      return invalid_argument(
          "--chat: the model's chat template is not one seekserve has built in; name one with "
          "--chat-template (deepseek-v3, deepseek-r1, chatml, llama3, llama3.1)");
    }
    kind = *detected;
  }
  return render_chat_for_model(s.tokenizer(), kind,
                               {ChatMessage{ChatRole::kUser, text, {}, std::nullopt}}, true);
}

Result<std::vector<int32_t>> parse_token_list(const std::string& text) {
  std::vector<int32_t> ids;
  size_t i = 0;
  while (i < text.size()) {
    size_t j = text.find(',', i);
    if (j == std::string::npos) j = text.size();
    const std::string item = text.substr(i, j - i);
    try {
      size_t used = 0;
      const long long v = std::stoll(item, &used);
      if (used != item.size() || v < 0 || v > INT32_MAX) throw std::invalid_argument(item);
      ids.push_back(static_cast<int32_t>(v));
    } catch (const std::exception&) {
      return invalid_argument("--tokens: '{}' is not a token id", item);
    }
    i = j + 1;
  }
  if (ids.empty()) return invalid_argument("--tokens: no token ids");
  return ids;
}

Status run_generate(const SessionOptions& so, const std::string& prompt, bool chat,
                    const std::string& tmpl, int64_t n, const SamplingParams& params) {
  SEEK_ASSIGN_OR_RETURN(std::unique_ptr<Session> s, open_session(so));
  std::vector<int32_t> ids;
  if (chat) {
    SEEK_ASSIGN_OR_RETURN(std::string text, chat_prompt(*s, prompt, tmpl));
    ids = s->tokenizer().encode(text, /*add_special=*/false);
  } else {
    ids = s->tokenizer().encode(prompt, /*add_special=*/true);
  }
  SEEK_ASSIGN_OR_RETURN(Session::GenerateStats st,
                        s->generate(ids, n, params, [](std::string_view text) {
                          std::fwrite(text.data(), 1, text.size(), stdout);
                          std::fflush(stdout);
                        }));
  std::fputs("\n", stdout);
  std::fflush(stdout);  // the text, then the figures on stderr, in that order
  std::fprintf(
      stderr,
      "prompt: %lld tokens, %.1f tok/s | generation: %lld tokens, %.1f tok/s | finish: %s\n",
      static_cast<long long>(st.prompt_tokens),
      st.prompt_tokens / std::max(st.prompt_seconds, 1e-9),
      static_cast<long long>(st.generated_tokens),
      st.generated_tokens / std::max(st.generate_seconds, 1e-9), st.finish_reason.c_str());
  return Status::ok_status();
}

// -log p(token) for every position after the first, from logits [n, vocab].
double sum_nll(const std::vector<float>& logits, std::span<const int32_t> tokens, int64_t vocab) {
  double nll = 0.0;
  for (size_t t = 0; t + 1 < tokens.size(); ++t) {
    const float* row = logits.data() + t * static_cast<size_t>(vocab);
    const float mx = *std::max_element(row, row + vocab);
    double sum = 0.0;
    for (int64_t i = 0; i < vocab; ++i) sum += std::exp(static_cast<double>(row[i] - mx));
    nll += -(row[tokens[t + 1]] - mx - std::log(sum));
  }
  return nll;
}

// Against a base model: mean KL(base || model) and top-1 agreement over every position, and the
// same agreement restricted to "confident" positions, where the base's top-1 logit exceeds its
// second by more than margin_factor x the spread (standard deviation over the vocabulary) of
// that position's logit difference between the two models. A flip needs the two top logits'
// errors to differ by more than the margin; with errors of spread s their difference has spread
// ~1.4 s, so at 3 s a flip is a > 2-sigma event, and positions inside the band say little about
// the quantiser. (A global RMS would let positions whose MoE routing flipped, with errors far
// above the average, count as confident.) A zero spread (identical logits) is confident.
Status run_perplexity(const SessionOptions& so, const std::string& file,
                      const std::string& base_model, double margin_factor) {
  SEEK_ASSIGN_OR_RETURN(std::unique_ptr<Session> s, open_session(so));
  std::unique_ptr<Session> base;
  if (!base_model.empty()) {
    SessionOptions bo = so;
    bo.model = base_model;
    SEEK_ASSIGN_OR_RETURN(base, Session::open(bo));
    if (base->model().n_vocab() != s->model().n_vocab()) {
      return invalid_argument("--kl-base: vocabularies differ ({} vs {})", base->model().n_vocab(),
                              s->model().n_vocab());
    }
  }
  SEEK_ASSIGN_OR_RETURN(std::string text, read_text_file(file));
  const std::vector<int32_t> ids = s->tokenizer().encode(text, /*add_special=*/true);
  if (ids.size() < 2) return invalid_argument("{}: needs at least 2 tokens of text", file);
  const int64_t vocab = s->model().n_vocab();
  double nll = 0.0, kl = 0.0, sq_diff = 0.0;
  int64_t scored = 0, agree = 0;
  std::vector<double> margins;  // per position: base top-1 logit - base top-2 logit
  std::vector<bool> agrees;     // per position: same top-1
  for (size_t start = 0; start + 1 < ids.size(); start += static_cast<size_t>(so.ctx)) {
    const size_t len = std::min(ids.size() - start, static_cast<size_t>(so.ctx));
    if (len < 2) break;
    std::span<const int32_t> window(ids.data() + start, len);
    SEEK_ASSIGN_OR_RETURN(std::vector<float> logits, s->prompt_logits(window));
    nll += sum_nll(logits, window, vocab);
    if (base) {
      SEEK_ASSIGN_OR_RETURN(std::vector<float> ref, base->prompt_logits(window));
      for (size_t t = 0; t < len; ++t) {
        const float* p = ref.data() + t * static_cast<size_t>(vocab);
        const float* q = logits.data() + t * static_cast<size_t>(vocab);
        const float pm = *std::max_element(p, p + vocab), qm = *std::max_element(q, q + vocab);
        double ps = 0, qs = 0;
        for (int64_t i = 0; i < vocab; ++i) {
          ps += std::exp(static_cast<double>(p[i] - pm));
          qs += std::exp(static_cast<double>(q[i] - qm));
        }
        double k = 0;
        for (int64_t i = 0; i < vocab; ++i) {
          const double lp = p[i] - pm - std::log(ps), lq = q[i] - qm - std::log(qs);
          k += std::exp(lp) * (lp - lq);
        }
        kl += k;
        const int64_t top = std::max_element(p, p + vocab) - p;
        const bool same = top == std::max_element(q, q + vocab) - q;
        agree += same;
        double second = -INFINITY, sum = 0.0, sq = 0.0;
        for (int64_t i = 0; i < vocab; ++i) {
          const double d = static_cast<double>(q[i]) - static_cast<double>(p[i]);
          sum += d;
          sq += d * d;
          if (i != top) second = std::max(second, static_cast<double>(p[i]));
        }
        sq_diff += sq;
        // The spread of this position's logit error; a shift common to all logits is not noise.
        const double mean = sum / static_cast<double>(vocab);
        const double spread =
            std::sqrt(std::max(0.0, sq / static_cast<double>(vocab) - mean * mean));
        margins.push_back((static_cast<double>(p[top]) - second) / spread);
        agrees.push_back(same);
      }
    }
    scored += static_cast<int64_t>(len) - 1;
  }
  std::printf("tokens scored: %lld\nperplexity: %.4f\n", static_cast<long long>(scored),
              std::exp(nll / scored));
  if (base) {
    const int64_t positions = static_cast<int64_t>(ids.size());
    std::printf("mean KL divergence vs base: %.6f\ntop-1 agreement vs base: %.2f%%\n",
                kl / positions,
                100.0 * static_cast<double>(agree) / static_cast<double>(positions));
    const double rms = std::sqrt(sq_diff / (static_cast<double>(margins.size()) * vocab));
    int64_t confident = 0, confident_agree = 0;
    for (size_t i = 0; i < margins.size(); ++i) {
      if (!(margins[i] > margin_factor)) continue;
      ++confident;
      confident_agree += agrees[i];
    }
    std::printf("RMS logit difference vs base: %.6g\n", rms);
    std::printf(
        "confident positions (base top-1 margin > %g x the position's logit error "
        "spread): %lld of %zu\n",
        margin_factor, static_cast<long long>(confident), margins.size());
    if (confident > 0) {
      std::printf("top-1 agreement on confident positions: %.2f%%\n",
                  100.0 * static_cast<double>(confident_agree) / static_cast<double>(confident));
    } else {
      std::printf("top-1 agreement on confident positions: n/a\n");
    }
  }
  return Status::ok_status();
}

}  // namespace

void add_generate_command(CLI::App& app, CommandContext& ctx) {
  struct Opts {
    SessionOptions session;
    std::string prompt, chat_template;
    bool chat = false;
    int64_t n = 64;
    SamplingParams sampling;
  };
  auto o = std::make_shared<Opts>();
  o->sampling.temperature = 0.0f;
  CLI::App* sub = app.add_subcommand("generate", "Generate text from a prompt, streaming it");
  add_session_options(sub, o->session);
  sub->add_option("-p,--prompt", o->prompt, "Prompt text")->required();
  sub->add_flag("--chat", o->chat,
                "Wrap the prompt as a user message in the model's chat template");
  sub->add_option("--chat-template", o->chat_template, "Override the chat template by name");
  sub->add_option("-n,--max-tokens", o->n, "Tokens to generate at most")->capture_default_str();
  sub->add_option("--temp", o->sampling.temperature, "Temperature (0 = greedy)")
      ->capture_default_str();
  sub->add_option("--top-k", o->sampling.top_k, "Top-k (0 = off)")->capture_default_str();
  sub->add_option("--top-p", o->sampling.top_p, "Top-p")->capture_default_str();
  sub->add_option("--min-p", o->sampling.min_p, "Min-p")->capture_default_str();
  sub->add_option("--repeat-penalty", o->sampling.repetition_penalty, "Repetition penalty")
      ->capture_default_str();
  sub->add_option("--presence-penalty", o->sampling.presence_penalty, "Presence penalty")
      ->capture_default_str();
  sub->add_option("--frequency-penalty", o->sampling.frequency_penalty, "Frequency penalty")
      ->capture_default_str();
  sub->add_option("--seed", o->sampling.seed, "Sampling seed")->capture_default_str();
  sub->add_option("--stop", o->sampling.stop, "Stop string (repeatable)");
  sub->add_flag("--ignore-eos", o->sampling.ignore_eos, "Keep generating past EOS");
  sub->callback([o, &ctx] {
    ctx.exit_code = exit_code_for(
        run_generate(o->session, o->prompt, o->chat, o->chat_template, o->n, o->sampling));
  });
}

void add_logits_command(CLI::App& app, CommandContext& ctx) {
  struct Opts {
    SessionOptions session;
    std::string prompt, tokens, out;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub =
      app.add_subcommand("logits", "Write the float32 logits of every prompt position as .npy");
  add_session_options(sub, o->session);
  auto* p = sub->add_option("--prompt", o->prompt,
                            "Prompt text (tokenized with BOS as the model adds it)");
  auto* t = sub->add_option("--tokens", o->tokens, "Comma-separated token ids");
  p->excludes(t);
  sub->add_option("--out", o->out, "Output .npy file: [n_tokens, n_vocab] float32")->required();
  sub->callback([o, &ctx] {
    auto run = [&]() -> Status {
      SEEK_ASSIGN_OR_RETURN(std::unique_ptr<Session> s, open_session(o->session));
      std::vector<int32_t> ids;
      if (!o->tokens.empty()) {
        SEEK_ASSIGN_OR_RETURN(ids, parse_token_list(o->tokens));
      } else if (!o->prompt.empty()) {
        ids = s->tokenizer().encode(o->prompt, /*add_special=*/true);
      } else {
        return invalid_argument("give --prompt or --tokens");
      }
      SEEK_ASSIGN_OR_RETURN(std::vector<float> logits, s->prompt_logits(ids));
      return write_npy_f32(o->out, logits,
                           {static_cast<int64_t>(ids.size()), s->model().n_vocab()});
    };
    ctx.exit_code = exit_code_for(run());
  });
}

void add_perplexity_command(CLI::App& app, CommandContext& ctx) {
  struct Opts {
    SessionOptions session;
    std::string file, kl_base;
    double margin_factor = 3.0;
  };
  auto o = std::make_shared<Opts>();
  o->session.ctx = 512;
  CLI::App* sub = app.add_subcommand(
      "perplexity", "Perplexity of a text, and KL divergence against a base model");
  add_session_options(sub, o->session);
  sub->add_option("-f,--file", o->file, "Text file")->required();
  sub->add_option("--kl-base", o->kl_base,
                  "Base model: report mean KL divergence and top-1 agreement against it");
  sub->add_option(
         "--margin-factor", o->margin_factor,
         "With --kl-base: also report top-1 agreement on positions whose base top-1 "
         "margin exceeds this many standard deviations of that position's logit difference")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  sub->callback([o, &ctx] {
    ctx.exit_code =
        exit_code_for(run_perplexity(o->session, o->file, o->kl_base, o->margin_factor));
  });
}

}  // namespace seekserve

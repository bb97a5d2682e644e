#include "engine/engine.h"

#include <time.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <unordered_set>

#include "core/log.h"
#include "engine/block_manager.h"
#include "engine/text_output.h"

namespace seekserve {

namespace {
double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}
double seconds_between(EngineClock::time_point a, EngineClock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}
constexpr int64_t kMinPrefillChunk = 16;
constexpr int64_t kFirstPrefillChunk = 256;  // before any step was measured
}  // namespace

struct Engine::Sequence {
  uint64_t id = 0;
  uint64_t arrival = 0;
  int32_t index = 0;  // choice index within its request
  GenerationRequest request;
  std::shared_ptr<RequestChannel> channel;
  std::vector<int32_t> tokens;  // prompt, then generated ids
  int64_t n_prompt = 0;
  int64_t n_computed = 0;
  std::vector<int32_t> blocks;
  std::vector<uint64_t> block_hashes;  // chain hashes of the leading registered full blocks
  std::unique_ptr<Sampler> sampler;
  std::unique_ptr<TextOutput> text;
  EngineClock::time_point submitted;
  bool started = false;       // has been scheduled once
  bool counted_queue = true;  // still holds an admission slot
  int64_t queue_tokens = 0;   // prompt tokens it counts against --max-queue-tokens
  int64_t cached_tokens = 0;
  // Choices 1..n-1 of an n > 1 request, held by choice 0 until its prompt is computed.
  std::vector<std::unique_ptr<Sequence>> forks;

  int64_t n_generated() const { return static_cast<int64_t>(tokens.size()) - n_prompt; }
};

struct Engine::Inbox {
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<std::unique_ptr<Sequence>> requests;
  std::vector<uint64_t> cancels;
  bool stop = false;
};

Result<std::unique_ptr<Engine>> Engine::start(std::unique_ptr<Model> model,
                                              const Tokenizer& tokenizer, EngineOptions options) {
  if (options.n_blocks <= 0) return invalid_argument("KV cache: {} blocks", options.n_blocks);
  if (options.block_size <= 0 || options.block_size > 1024)
    return invalid_argument("--block-size: {} is not in 1..1024", options.block_size);
  if (options.max_num_seqs <= 0) return invalid_argument("--max-num-seqs must be positive");
  if (options.max_num_batched_tokens <= 0)
    return invalid_argument("--max-num-batched-tokens must be positive");
  if (options.max_step_ms <= 0) return invalid_argument("--max-step-ms must be positive");
  if (options.max_queue < 0) return invalid_argument("--max-queue must be >= 0");
  if (options.max_num_seqs_limit < options.max_num_seqs)
    options.max_num_seqs_limit = options.max_num_seqs;
  SEEK_ASSIGN_OR_RETURN(KvCache cache, KvCache::create(model->config(), options.n_blocks,
                                                       options.block_size, options.kv_dtype));
  std::unique_ptr<Engine> e(new Engine(std::move(model), tokenizer, options, std::move(cache)));
  e->thread_ = std::thread([p = e.get()] { p->loop(); });
  return e;
}

Engine::Engine(std::unique_ptr<Model> model, const Tokenizer& tokenizer, EngineOptions options,
               KvCache cache)
    : model_(std::move(model)),
      tokenizer_(tokenizer),
      options_(options),
      cache_(std::make_unique<KvCache>(std::move(cache))),
      blocks_(std::make_unique<BlockManager>(options.n_blocks, options.block_size,
                                             options.prefix_cache)),
      inbox_(std::make_unique<Inbox>()),
      max_num_seqs_(options.max_num_seqs),
      max_num_batched_tokens_(options.max_num_batched_tokens) {
  std::vector<bool> valid(static_cast<size_t>(model_->n_vocab()), false);
  for (int64_t id = 0; id < model_->n_vocab(); ++id)
    valid[static_cast<size_t>(id)] = tokenizer_.is_real_token(id);
  vocab_mask_ = std::make_shared<const VocabMask>(std::move(valid));
  max_model_len_ = options.n_blocks * options.block_size;
  if (model_->config().max_position_embeddings > 0)
    max_model_len_ = std::min(max_model_len_, model_->config().max_position_embeddings);
  busy_clock_ = EngineClock::now();
  heartbeat();
}

Engine::~Engine() {
  {
    std::lock_guard<std::mutex> lock(inbox_->mutex);
    inbox_->stop = true;
  }
  inbox_->cv.notify_all();
  if (thread_.joinable()) thread_.join();
}

Result<std::shared_ptr<RequestChannel>> Engine::submit(GenerationRequest r) {
  const int64_t n = static_cast<int64_t>(r.prompt.size());
  if (n == 0) return invalid_argument("the prompt has no tokens");
  for (int32_t id : r.prompt) {
    if (id < 0 || id >= model_->n_vocab())
      return invalid_argument("token id {} is outside the vocabulary [0, {})", id,
                              model_->n_vocab());
  }
  if (r.max_tokens < 1) return invalid_argument("max_tokens must be at least 1");
  if (n + r.max_tokens > max_model_len_) {
    return invalid_argument(
        "this model's maximum context length is {} tokens; the prompt has {} and {} more were "
        "asked for",
        max_model_len_, n, r.max_tokens);
  }
  SEEK_RETURN_IF_ERROR(r.sampling.validate());
  if (r.n < 1 || r.n > options_.max_num_seqs_limit)
    return invalid_argument("n: {} is not in 1..{}", r.n, options_.max_num_seqs_limit);
  if (r.logprobs > n_vocab_logprobs_max())
    return invalid_argument("logprobs: {} is more than {}", r.logprobs, n_vocab_logprobs_max());
  const int64_t n_seqs = r.n;
  // Admission: a bounded queue (a request with n choices takes n places). Compare-and-add under the
  // inbox lock so two submitters cannot both take the last slot.
  auto s = std::make_unique<Sequence>();
  {
    std::lock_guard<std::mutex> lock(inbox_->mutex);
    if (inbox_->stop) return Status(StatusCode::kResourceExhausted, "the engine is stopping");
    if (queued_requests_.load() + n_seqs > options_.max_queue) {
      return Status(
          StatusCode::kResourceExhausted,
          fmt::format("the server is at capacity ({} requests waiting)", queued_requests_.load()));
    }
    if (options_.max_queue_tokens > 0 && queued_requests_.load() > 0 &&
        queued_tokens_.load() + n > options_.max_queue_tokens) {
      return Status(StatusCode::kResourceExhausted,
                    fmt::format("the server is at capacity ({} prompt tokens waiting)",
                                queued_tokens_.load()));
    }
    queued_requests_ += n_seqs;
    queued_tokens_ += n;
    s->id = next_id_.fetch_add(static_cast<uint64_t>(n_seqs));
    s->arrival = s->id;
  }
  s->channel = std::make_shared<RequestChannel>(s->id);
  s->tokens = r.prompt;
  s->n_prompt = n;
  s->submitted = EngineClock::now();
  s->sampler = std::make_unique<Sampler>(r.sampling, vocab_mask_);
  s->text = std::make_unique<TextOutput>(tokenizer_, r.sampling.stop);
  s->queue_tokens = n;
  for (int32_t i = 1; i < r.n; ++i) {
    auto f = std::make_unique<Sequence>();
    f->id = s->id + static_cast<uint64_t>(i);
    f->arrival = s->arrival;
    f->index = i;
    f->channel = s->channel;
    f->tokens = r.prompt;
    f->n_prompt = n;
    f->submitted = s->submitted;
    f->request = r;
    f->request.sampling.seed = r.sampling.seed + static_cast<uint64_t>(i);
    f->sampler = std::make_unique<Sampler>(f->request.sampling, vocab_mask_);
    f->text = std::make_unique<TextOutput>(tokenizer_, r.sampling.stop);
    s->forks.push_back(std::move(f));
  }
  s->request = std::move(r);
  std::shared_ptr<RequestChannel> channel = s->channel;
  {
    std::lock_guard<std::mutex> lock(inbox_->mutex);
    inbox_->requests.push_back(std::move(s));
  }
  inbox_->cv.notify_one();
  return channel;
}

void Engine::cancel(uint64_t id) {
  {
    std::lock_guard<std::mutex> lock(inbox_->mutex);
    inbox_->cancels.push_back(id);
  }
  inbox_->cv.notify_one();
}

Status Engine::set_limits(EngineLimits limits) {
  if (limits.max_num_seqs < 0 || limits.max_num_seqs > options_.max_num_seqs_limit)
    return invalid_argument("max_num_seqs: {} is not in 1..{} (--max-num-seqs-limit)",
                            limits.max_num_seqs, options_.max_num_seqs_limit);
  if (limits.max_num_batched_tokens < 0)
    return invalid_argument("max_num_batched_tokens: must be positive");
  if (limits.max_num_seqs > 0) max_num_seqs_.store(limits.max_num_seqs);
  if (limits.max_num_batched_tokens > 0)
    max_num_batched_tokens_.store(limits.max_num_batched_tokens);
  inbox_->cv.notify_one();
  return Status::ok_status();
}

EngineStats Engine::stats() const {
  EngineStats st;
  st.running = counters_.running.load();
  st.waiting = counters_.waiting.load();
  st.kv_blocks_in_use = counters_.kv_in_use.load();
  st.kv_blocks = options_.n_blocks;
  st.busy_ratio = counters_.busy_ratio.load();
  st.steps = counters_.steps.load();
  st.preemptions = counters_.preemptions.load();
  st.prompt_tokens = counters_.prompt_tokens.load();
  st.generation_tokens = counters_.generation_tokens.load();
  st.prefix_cache_queries = counters_.prefix_queries.load();
  st.prefix_cache_hits = counters_.prefix_hits.load();
  const int64_t now_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(EngineClock::now().time_since_epoch())
          .count();
  st.seconds_since_heartbeat = static_cast<double>(now_ns - counters_.heartbeat_ns.load()) * 1e-9;
  st.prefill_tokens_per_ms = counters_.tokens_per_ms.load();
  st.computed_tokens = counters_.computed_tokens.load();
  st.max_num_seqs = max_num_seqs_.load();
  st.max_num_batched_tokens = max_num_batched_tokens_.load();
  st.last_step_ms = counters_.last_step_ms.load();
  st.forward_seconds = counters_.forward_seconds.load();
  st.forward_cpu_seconds = counters_.forward_cpu_seconds.load();
  return st;
}

int Engine::retry_after_seconds() const {
  const auto now = EngineClock::now();
  double rate = 0;  // completions per second over the last 30 s
  {
    std::lock_guard<std::mutex> lock(finished_mutex_);
    int64_t n = 0;
    for (auto t : finished_times_)
      if (seconds_between(t, now) <= 30) ++n;
    if (n > 0 && !finished_times_.empty())
      rate = static_cast<double>(n) / std::max(1.0, seconds_between(finished_times_.front(), now));
  }
  const double ahead = static_cast<double>(queued_requests_.load() + 1);
  const double wait = rate > 0 ? ahead / rate : 1.0;
  return static_cast<int>(std::clamp(std::ceil(wait), 1.0, 60.0));
}

void Engine::heartbeat() {
  counters_.heartbeat_ns.store(
      std::chrono::duration_cast<std::chrono::nanoseconds>(EngineClock::now().time_since_epoch())
          .count());
}

void Engine::loop() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(inbox_->mutex);
      if (inbox_->stop) break;
      if (running_.empty() && waiting_.empty()) {
        inbox_->cv.wait_for(lock, std::chrono::milliseconds(200), [this] {
          return inbox_->stop || !inbox_->requests.empty() || !inbox_->cancels.empty();
        });
        if (inbox_->stop) break;
      }
    }
    take_inbox();
    expire_deadlines();
    flush_events();  // cancellations and timeouts are answered before the step runs
    const auto t0 = EngineClock::now();
    const bool worked = step();
    flush_events();  // one wake-up per reader per step, whatever it got
    const auto t1 = EngineClock::now();
    // Busy ratio: exponentially decaying share of wall time spent in steps (time constant 10 s).
    const double dt = seconds_between(busy_clock_, t1);
    if (dt > 0) {
      const double busy = worked ? std::min(1.0, seconds_between(t0, t1) / dt) : 0.0;
      const double a = std::exp(-dt / 10.0);
      counters_.busy_ratio.store(counters_.busy_ratio.load() * a + busy * (1 - a));
    }
    busy_clock_ = t1;
    update_gauges();
    heartbeat();
  }
  take_inbox();
  const Status stopping(StatusCode::kResourceExhausted, "the server is shutting down");
  for (auto& s : running_) fail(*s, stopping, false);
  for (auto& s : waiting_) fail(*s, stopping, false);
  running_.clear();
  waiting_.clear();
  flush_events();
  update_gauges();
}

void Engine::emit(Sequence& s, EngineEvent ev) {
  if (s.channel->push_quiet(std::move(ev))) unnotified_.push_back(s.channel);
}

void Engine::flush_events() {
  for (auto& c : unnotified_) c->notify();
  unnotified_.clear();
}

void Engine::take_inbox() {
  std::vector<std::unique_ptr<Sequence>> requests;
  std::vector<uint64_t> cancels;
  {
    std::lock_guard<std::mutex> lock(inbox_->mutex);
    requests.swap(inbox_->requests);
    cancels.swap(inbox_->cancels);
  }
  for (auto& r : requests) waiting_.push_back(std::move(r));
  if (cancels.empty()) return;
  const std::unordered_set<uint64_t> ids(cancels.begin(), cancels.end());
  for (auto* list : {&running_, &waiting_}) {
    for (auto& s : *list) {
      if (ids.count(s->channel->id())) {
        log_info("[{}] cancelled after {} tokens", s->request.request_id, s->n_generated());
        finish(*s, "cancelled");
        s.reset();
      }
    }
    std::erase(*list, nullptr);
  }
}

void Engine::expire_deadlines() {
  const auto now = EngineClock::now();
  for (auto& s : waiting_) {
    if (now < s->request.deadline) continue;
    if (s->started) {
      finish(*s, "timeout");
    } else {
      fail(*s,
           Status(StatusCode::kResourceExhausted,
                  fmt::format("the request timed out after waiting {:.1f} s in the queue",
                              seconds_between(s->submitted, now))),
           true);
    }
    s.reset();
  }
  std::erase(waiting_, nullptr);
  for (auto& s : running_) {
    if (now < s->request.deadline) continue;
    finish(*s, "timeout");
    s.reset();
  }
  std::erase(running_, nullptr);
}

void Engine::free_blocks(Sequence& s) {
  for (int32_t b : s.blocks) blocks_->release(b);
  s.blocks.clear();
  s.block_hashes.clear();
  s.n_computed = 0;
}

void Engine::left_waiting(Sequence& s) {
  if (!s.counted_queue) return;
  s.counted_queue = false;
  queued_requests_ -= 1;
  queued_tokens_ -= s.queue_tokens;
}

void Engine::finish(Sequence& s, const std::string& reason) {
  for (auto& f : s.forks) finish(*f, reason);  // choices not forked yet end with it
  s.forks.clear();
  free_blocks(s);
  left_waiting(s);
  const auto now = EngineClock::now();
  EngineEvent ev;
  ev.kind = EngineEvent::Kind::kFinished;
  ev.index = s.index;
  ev.time = now;
  ev.finish_reason = reason;
  ev.text = s.text->finish();
  ev.completion_tokens = s.n_generated();
  ev.prompt_tokens = s.n_prompt;
  ev.cached_tokens = s.cached_tokens;
  emit(s, std::move(ev));
  std::lock_guard<std::mutex> lock(finished_mutex_);
  finished_times_.push_back(now);
  while (finished_times_.size() > 1024 ||
         (!finished_times_.empty() && seconds_between(finished_times_.front(), now) > 30))
    finished_times_.pop_front();
}

void Engine::fail(Sequence& s, const Status& status, bool timed_out) {
  for (auto& f : s.forks) fail(*f, status, timed_out);
  s.forks.clear();
  free_blocks(s);
  left_waiting(s);
  EngineEvent ev;
  ev.kind = EngineEvent::Kind::kError;
  ev.time = EngineClock::now();
  ev.error = status;
  ev.timed_out = timed_out;
  emit(s, std::move(ev));
}

void Engine::update_gauges() {
  counters_.running.store(static_cast<int64_t>(running_.size()));
  counters_.waiting.store(static_cast<int64_t>(waiting_.size()));
  counters_.kv_in_use.store(blocks_->n_in_use());
}

bool Engine::step() {
  if (running_.empty() && waiting_.empty()) return false;
  const int64_t bs = options_.block_size;

  // What the planner sees.
  std::vector<SchedSequence> run_view, wait_view;
  int64_t n_decoding = 0;
  for (auto& s : running_) {
    SchedSequence v;
    v.id = s->id;
    v.priority = s->request.priority;
    v.arrival = s->arrival;
    v.n_tokens = static_cast<int64_t>(s->tokens.size());
    v.n_computed = s->n_computed;
    v.n_blocks = static_cast<int64_t>(s->blocks.size());
    n_decoding += v.n_tokens - v.n_computed == 1;
    run_view.push_back(v);
  }
  for (auto& s : waiting_) {
    SchedSequence v;
    v.id = s->id;
    v.priority = s->request.priority;
    v.arrival = s->arrival;
    v.n_tokens = static_cast<int64_t>(s->tokens.size());
    // Keep at least one token to compute: its logits pick the next token.
    const auto peek = blocks_->peek_prefix(s->tokens, (v.n_tokens - 1) / bs);
    v.n_cached = peek.n_blocks * bs;
    v.n_cached_unused_blocks = peek.n_unused;
    wait_view.push_back(v);
  }
  SchedulerConfig cfg;
  cfg.max_num_batched_tokens = max_num_batched_tokens_.load();
  cfg.max_num_seqs = max_num_seqs_.load();
  cfg.block_size = bs;
  cfg.policy = options_.policy;
  int64_t prefill = kFirstPrefillChunk;
  if (ms_per_token_ > 0)
    prefill = static_cast<int64_t>(options_.max_step_ms / ms_per_token_) - n_decoding;
  cfg.max_prefill_tokens =
      std::clamp<int64_t>(prefill, kMinPrefillChunk, cfg.max_num_batched_tokens);
  const StepPlan plan = plan_step(run_view, wait_view, blocks_->n_available(), cfg);

  // Preemptions: free the blocks, recompute later (generated tokens become part of what is
  // recomputed; the sampler keeps its state, so the continuation is unchanged).
  for (uint64_t id : plan.preempted) {
    for (auto& s : running_) {
      if (s && s->id == id) {
        log_info("[{}] preempted (out of KV blocks or a more important request)",
                 s->request.request_id);
        free_blocks(*s);
        counters_.preemptions += 1;
        waiting_.push_back(std::move(s));
      }
    }
  }
  std::erase(running_, nullptr);
  // Admissions: share cached prefix blocks first (before any allocation can evict them).
  for (uint64_t id : plan.admitted) {
    for (auto& s : waiting_) {
      if (!s || s->id != id) continue;
      const int64_t n = static_cast<int64_t>(s->tokens.size());
      s->blocks = blocks_->acquire_prefix(s->tokens, (n - 1) / bs, s->block_hashes);
      s->n_computed = static_cast<int64_t>(s->blocks.size()) * bs;
      if (!s->started) {
        s->started = true;
        s->cached_tokens = s->n_computed;
        counters_.prompt_tokens += s->n_prompt;
        counters_.prefix_queries += s->n_prompt;
        counters_.prefix_hits += s->cached_tokens;
        left_waiting(*s);
        EngineEvent ev;
        ev.kind = EngineEvent::Kind::kStarted;
        ev.time = EngineClock::now();
        ev.prompt_tokens = s->n_prompt;
        ev.cached_tokens = s->cached_tokens;
        ev.queue_seconds = seconds_between(s->submitted, ev.time);
        emit(*s, std::move(ev));
      }
      running_.push_back(std::move(s));
    }
  }
  std::erase(waiting_, nullptr);

  // The batch: allocate what each item's new tokens need.
  struct Work {
    Sequence* s;
    int64_t n;
  };
  std::vector<Work> work;
  std::vector<SequenceInput> batch;
  for (const auto& item : plan.items) {
    Sequence* s = nullptr;
    for (auto& r : running_)
      if (r->id == item.id) s = r.get();
    if (s == nullptr) continue;
    const int64_t n =
        std::min(item.n_tokens, static_cast<int64_t>(s->tokens.size()) - s->n_computed);
    if (n <= 0) continue;
    bool ok = true;
    while (static_cast<int64_t>(s->blocks.size()) < blocks_->blocks_for(s->n_computed + n)) {
      std::optional<int32_t> b = blocks_->allocate();
      if (!b) {
        ok = false;
        break;
      }
      s->blocks.push_back(*b);
    }
    if (!ok) {  // the plan was too optimistic (should not happen): recompute it later
      free_blocks(*s);
      counters_.preemptions += 1;
      for (auto& r : running_)
        if (r.get() == s) waiting_.push_back(std::move(r));
      std::erase(running_, nullptr);
      continue;
    }
    work.push_back({s, n});
  }
  for (const Work& w : work) {
    batch.push_back(
        SequenceInput{std::span<const int32_t>(w.s->tokens)
                          .subspan(static_cast<size_t>(w.s->n_computed), static_cast<size_t>(w.n)),
                      w.s->n_computed, w.s->blocks, false});
  }
  if (batch.empty()) return !plan.preempted.empty();

  const double cpu0 = thread_cpu_seconds();
  const auto t0 = EngineClock::now();
  const Status st = model_->forward(batch, *cache_, logits_);
  const double ms = seconds_between(t0, EngineClock::now()) * 1e3;
  counters_.forward_cpu_seconds.store(counters_.forward_cpu_seconds.load() +
                                      (thread_cpu_seconds() - cpu0));
  counters_.steps += 1;
  counters_.last_step_ms.store(ms);
  counters_.forward_seconds.store(counters_.forward_seconds.load() + ms / 1e3);  // one writer
  for (const Work& w : work) counters_.computed_tokens += w.n;
  if (!st.ok()) {
    log_error("engine step failed: {}", st.to_string());
    for (const Work& w : work) {
      fail(*w.s, internal_error("the forward pass failed: {}", st.message()), false);
      for (auto& r : running_)
        if (r.get() == w.s) r.reset();
    }
    std::erase(running_, nullptr);
    return true;
  }
  // Step-time model: ms per token, from steps that are mostly prefill (decode-only steps are
  // dominated by per-sequence costs and would overstate it).
  if (plan.n_tokens >= 2 * static_cast<int64_t>(work.size()) && plan.n_tokens >= 32) {
    const double sample = ms / static_cast<double>(plan.n_tokens);
    ms_per_token_ = ms_per_token_ > 0 ? 0.7 * ms_per_token_ + 0.3 * sample : sample;
    counters_.tokens_per_ms.store(1.0 / ms_per_token_);
  }

  const int64_t n_vocab = model_->n_vocab();
  for (size_t i = 0; i < work.size(); ++i) {
    Sequence& s = *work[i].s;
    s.n_computed += work[i].n;
    // Register the full blocks now computed, extending the hash chain.
    while (static_cast<int64_t>(s.block_hashes.size()) < s.n_computed / bs) {
      const size_t b = s.block_hashes.size();
      const uint64_t parent = b == 0 ? 0 : s.block_hashes[b - 1];
      s.block_hashes.push_back(
          blocks_->register_full_block(s.blocks[b], parent,
                                       std::span<const int32_t>(s.tokens).subspan(
                                           b * static_cast<size_t>(bs), static_cast<size_t>(bs))));
    }
    if (s.n_computed < static_cast<int64_t>(s.tokens.size())) continue;  // mid-prefill
    std::span<float> row(logits_.data() + i * static_cast<size_t>(n_vocab),
                         static_cast<size_t>(n_vocab));
    const bool want_logprobs = s.request.logprobs >= 0;
    const bool forking = !s.forks.empty();
    if (want_logprobs || forking) raw_.assign(row.begin(), row.end());
    LogprobTable table;
    if (want_logprobs) table = logprob_table(raw_, vocab_mask_->valid(), s.request.logprobs);
    const std::span<const int32_t> all(s.tokens);
    const int32_t next =
        s.sampler->sample(row, all.first(static_cast<size_t>(s.n_prompt)),
                          all.subspan(static_cast<size_t>(s.n_prompt)), &sample_scratch_);
    // The prompt is computed: the other choices start from here, before this one can finish.
    if (forking) fork(s, raw_);
    if (accept_token(s, next, raw_, want_logprobs ? &table : nullptr)) {
      for (auto& r : running_)
        if (r.get() == &s) r.reset();
    }
  }
  std::erase(running_, nullptr);
  return true;
}

bool Engine::accept_token(Sequence& s, int32_t next, std::span<const float> raw,
                          const LogprobTable* table) {
  s.tokens.push_back(next);
  counters_.generation_tokens += 1;
  const bool eos = !s.request.sampling.ignore_eos && next == tokenizer_.eos_id();
  std::string reason;
  if (eos) {
    reason = "stop";
  } else {
    EngineEvent ev;
    ev.kind = EngineEvent::Kind::kToken;
    ev.index = s.index;
    ev.time = EngineClock::now();
    ev.text = s.text->push(next);
    ev.completion_tokens = s.n_generated();
    if (table) {
      ev.token = next;
      ev.logprob = static_cast<float>(raw[static_cast<size_t>(next)] - table->log_z);
      ev.top_logprobs = table->top;
    }
    emit(s, std::move(ev));
    if (s.text->stopped()) reason = "stop";
  }
  if (reason.empty() && (s.n_generated() >= s.request.max_tokens ||
                         static_cast<int64_t>(s.tokens.size()) >= max_model_len_))
    reason = "length";
  if (reason.empty()) return false;
  finish(s, reason);
  return true;
}

void Engine::fork(Sequence& parent, std::span<const float> raw) {
  const int64_t bs = options_.block_size;
  const int64_t n_full = parent.n_prompt / bs;
  const int64_t tail = parent.n_prompt - n_full * bs;
  const std::vector<float> base(raw.begin(), raw.end());
  std::vector<float> row, slot(static_cast<size_t>(cache_->width()));
  std::vector<std::unique_ptr<Sequence>> forks;
  forks.swap(parent.forks);
  for (auto& f : forks) {
    // Full prompt blocks are shared; the partial last one is copied (copy-on-write up front:
    // both sequences write their next tokens into it).
    for (int64_t b = 0; b < n_full; ++b) {
      blocks_->share(parent.blocks[static_cast<size_t>(b)]);
      f->blocks.push_back(parent.blocks[static_cast<size_t>(b)]);
    }
    f->block_hashes.assign(
        parent.block_hashes.begin(),
        parent.block_hashes.begin() +
            std::min<std::ptrdiff_t>(static_cast<std::ptrdiff_t>(parent.block_hashes.size()),
                                     static_cast<std::ptrdiff_t>(n_full)));
    if (tail > 0) {
      std::optional<int32_t> b = blocks_->allocate();
      if (!b) {  // no block for the copy: it waits and is prefilled like a preempted one
        free_blocks(*f);
        f->started = true;
        left_waiting(*f);
        waiting_.push_back(std::move(f));
        continue;
      }
      f->blocks.push_back(*b);
      for (int64_t layer = 0; layer < cache_->n_layers(); ++layer) {
        for (int64_t pos = n_full * bs; pos < parent.n_prompt; ++pos) {
          cache_->read(layer, parent.blocks, pos, 0, cache_->width(), slot.data());
          cache_->write(layer, f->blocks, pos, slot.data());
        }
      }
    }
    f->n_computed = f->n_prompt;
    f->started = true;
    f->cached_tokens = parent.cached_tokens;
    left_waiting(*f);
    row = base;
    LogprobTable table;
    if (f->request.logprobs >= 0)
      table = logprob_table(base, vocab_mask_->valid(), f->request.logprobs);
    const int32_t next = f->sampler->sample(row, std::span<const int32_t>(f->tokens),
                                            std::span<const int32_t>(), &sample_scratch_);
    if (!accept_token(*f, next, base, f->request.logprobs >= 0 ? &table : nullptr))
      running_.push_back(std::move(f));
  }
}

}  // namespace seekserve

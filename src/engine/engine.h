#pragma once
// The serving engine: one thread owns the Model, the KvCache, the BlockManager and the
// scheduler's state and runs steps (continuous batching). Other threads only:
//   submit()  — post a request; admission control answers at once (queue full ->
//   kResourceExhausted); cancel()  — post a cancellation; the engine frees the sequence's blocks at
//   its next step; stats()   — read a snapshot of counters and gauges (atomics; any thread).
// Events of a request arrive on its RequestChannel.
//
// A step: take new requests and cancellations from the inbox, drop waiting requests past their
// deadline, ask plan_step() what runs, apply its preemptions (blocks freed, recomputed later)
// and admissions (prefix-cache blocks shared), run one Model::forward over the varlen batch,
// then sample a token for every sequence whose known tokens are all computed. Prefill chunks
// are sized so a step takes about max_step_ms (tokens per ms measured on earlier steps).

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/status.h"
#include "engine/request_channel.h"
#include "engine/sampler.h"
#include "formats/tokenizer.h"
#include "model/model.h"
#include "scheduler/scheduler.h"

namespace seekserve {

class BlockManager;

struct EngineOptions {
  int64_t max_num_batched_tokens = 4096;
  int64_t max_num_seqs = 32;
  double max_step_ms = 250;  // target step time; bounds prefill chunks
  SchedulingPolicy policy = SchedulingPolicy::kPriority;
  int64_t max_queue = 256;       // requests waiting (not yet running) at most
  int64_t max_queue_tokens = 0;  // their prompt tokens at most; 0 = no bound
  int64_t n_blocks = 0;          // KV cache blocks (> 0)
  int64_t block_size = 16;
  DType kv_dtype = DType::kF32;
  bool prefix_cache = true;
  int64_t max_num_seqs_limit = 0;  // largest max_num_seqs set_limits() accepts (>= max_num_seqs)
};

struct GenerationRequest {
  std::string request_id;  // for log lines
  std::vector<int32_t> prompt;
  SamplingParams sampling;
  int64_t max_tokens = 16;
  int32_t priority = 0;  // smaller runs first
  EngineClock::time_point deadline = EngineClock::time_point::max();
  // n > 1: n sequences (choices 0..n-1) forked from one prefill: once the prompt is computed,
  // the others share its full KV blocks and get a copy of its last partial block and of its
  // last logits; choice i samples with seed + i. Counts n against --max-queue.
  int32_t n = 1;
  int32_t logprobs = -1;  // -1: none; k >= 0: each token's logprob and the k most likely
};

// A consistent-enough snapshot (each field read atomically on its own).
struct EngineStats {
  int64_t running = 0, waiting = 0;
  int64_t kv_blocks_in_use = 0, kv_blocks = 0;
  double busy_ratio = 0;  // share of recent wall time spent in steps (decaying, ~10 s)
  int64_t steps = 0, preemptions = 0;
  int64_t prompt_tokens = 0, generation_tokens = 0;
  int64_t prefix_cache_queries = 0, prefix_cache_hits = 0;  // in tokens
  double seconds_since_heartbeat = 0;  // since the loop last completed a step or idled
  double prefill_tokens_per_ms = 0;
  int64_t computed_tokens = 0;  // tokens run through the model (prefill, decode, recompute)
  int64_t max_num_seqs = 0, max_num_batched_tokens = 0;  // current limits (set_limits)
  double last_step_ms = 0;     // the model's forward pass of the latest step
  double forward_seconds = 0;  // all forward passes so far (serving overhead = the rest)
  // CPU time of the engine thread inside forward passes (all of the forward's CPU time when
  // the model runs on one thread; worker threads' share is not in it).
  double forward_cpu_seconds = 0;
};

// Limits the router's autoscaler may change at run time (POST /admin/scheduler); 0 = unchanged.
struct EngineLimits {
  int64_t max_num_seqs = 0;
  int64_t max_num_batched_tokens = 0;
};

class Engine {
 public:
  // Takes the model; sizes the KV cache from options (n_blocks x block_size). Starts the loop.
  static Result<std::unique_ptr<Engine>> start(std::unique_ptr<Model> model,
                                               const Tokenizer& tokenizer, EngineOptions options);
  ~Engine();  // stops the loop; unfinished requests get a kError event

  // kInvalidArgument for a request that can never run (empty prompt, bad id, too long, bad
  // sampling), kResourceExhausted when the queue is full.
  Result<std::shared_ptr<RequestChannel>> submit(GenerationRequest request);
  // Cancels every sequence of the request whose channel has this id (waiting or running).
  void cancel(uint64_t request_id);
  // Changes limits; the engine thread applies them before its next step. kInvalidArgument
  // for a non-positive value.
  Status set_limits(EngineLimits limits);

  EngineStats stats() const;
  // Seconds a client turned away now should wait: queue length over recent service rate.
  int retry_after_seconds() const;
  // Longest prompt + completion a request may have (model context and KV capacity).
  int64_t max_model_len() const { return max_model_len_; }
  const ModelConfig& model_config() const { return model_->config(); }
  // The options it started with (the limits may have changed since: see stats()).
  const EngineOptions& options() const { return options_; }

 private:
  struct Sequence;
  struct Inbox;

  Engine(std::unique_ptr<Model> model, const Tokenizer& tokenizer, EngineOptions options,
         KvCache cache);
  void loop();
  bool step();  // false when there was nothing to do
  void take_inbox();
  void expire_deadlines();
  void finish(Sequence& s, const std::string& reason);
  void fail(Sequence& s, const Status& status, bool timed_out);
  void free_blocks(Sequence& s);
  void left_waiting(Sequence& s);  // first admission or drop: releases its queue slot
  // Starts choices 1..n-1 of `parent` from its computed prompt and its last logits `raw`.
  void fork(Sequence& parent, std::span<const float> raw);
  // Appends a sampled token, tells the reader, and finishes the sequence when it is done
  // (returns true then). `raw`: the logits before sampling; table: logprobs were asked for.
  bool accept_token(Sequence& s, int32_t next, std::span<const float> raw,
                    const LogprobTable* table);
  static int32_t n_vocab_logprobs_max() { return 20; }
  void update_gauges();
  void heartbeat();
  // Queues an event on the sequence's channel; flush_events() wakes the readers, once each.
  void emit(Sequence& s, EngineEvent ev);
  void flush_events();

  std::unique_ptr<Model> model_;
  const Tokenizer& tokenizer_;
  EngineOptions options_;
  std::unique_ptr<KvCache> cache_;
  std::unique_ptr<BlockManager> blocks_;
  std::shared_ptr<const VocabMask> vocab_mask_;  // ids that may be sampled (shared by samplers)
  int64_t max_model_len_ = 0;

  // Engine thread only.
  std::vector<std::unique_ptr<Sequence>> running_, waiting_;
  std::vector<float> logits_;
  std::vector<std::shared_ptr<RequestChannel>> unnotified_;  // channels with events queued quietly
  std::vector<float> raw_;         // scratch: one row of logits before the sampler changes it
  SamplerScratch sample_scratch_;  // every sequence's sampler draws with it
  double ms_per_token_ = 0;        // measured on prefill-heavy steps; 0 = not yet
  EngineClock::time_point busy_clock_;

  // Shared with submitters.
  std::unique_ptr<Inbox> inbox_;
  std::atomic<int64_t> max_num_seqs_, max_num_batched_tokens_;  // set_limits() -> engine
  std::atomic<uint64_t> next_id_{1};
  std::atomic<int64_t> queued_requests_{0}, queued_tokens_{0};  // admission accounting

  struct Counters {
    std::atomic<int64_t> running{0}, waiting{0}, kv_in_use{0}, steps{0}, preemptions{0},
        prompt_tokens{0}, generation_tokens{0}, prefix_queries{0}, prefix_hits{0},
        computed_tokens{0};
    std::atomic<double> busy_ratio{0}, tokens_per_ms{0}, last_step_ms{0}, forward_seconds{0},
        forward_cpu_seconds{0};
    std::atomic<int64_t> heartbeat_ns{0};
  } counters_;

  mutable std::mutex finished_mutex_;
  std::deque<EngineClock::time_point> finished_times_;  // recent completions (service rate)

  std::thread thread_;
};

}  // namespace seekserve

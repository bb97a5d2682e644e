// The engine against the hardware: single-stream decode as a fraction of the memory roofline,
// batched decode total tok/s at several batch sizes (ratio to batch 1), prefill as effective
// TFLOP/s, and peak RSS against file size + KV cache, over Model::forward with synthetic prompts.
//
//   build/bench/engine_bench --bandwidth                       # measure read GB/s and exit
//   build/bench/engine_bench --model M [--threads 2] [--reps 3] [--bw GBs]
//       [--decode N] [--batches 1,4,16,32] [--batch-gen N] [--prefill T] [--kv-dtype f32]
//       [--weights auto|mmap|copy] [--pack on|off]
//
// --pack off keeps Q8_0/Q4_0 weights in the file's layout (LoadOptions::pack_weights), the
// kernels before the 16-row packing, for side-by-side runs of one binary.
// --bw gives the read bandwidth measured by a separate --bandwidth run (its 2 GiB buffer would
// otherwise count in this process's peak RSS); bench/decode_bench.sh runs both.

#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "bench_util.h"
#include "core/dtype.h"
#include "core/thread_pool.h"
#include "model/kv_cache.h"
#include "model/model.h"
#include "model/model_weights.h"

namespace seekserve {
namespace {

using bench::median;
using bench::now_seconds;

constexpr int64_t kBlockSize = 16;

uint64_t view_bytes(const WeightView& w) {
  uint64_t b = *dtype_bytes(w.dtype, static_cast<uint64_t>(w.rows * w.cols));
  if (w.dtype == DType::kF8E4M3)
    b += static_cast<uint64_t>((w.rows + 127) / 128 * ((w.cols + 127) / 128)) * 4;
  return b;
}

// Weights one token reads (batch 1): every matrix of attention and dense MLPs, the router, the
// shared experts and num_experts_per_tok routed experts per MoE layer, and lm_head; the embedding
// contributes one row (ignored). `params` counts the multiply-adds per token excluding lm_head.
struct Span {
  const uint8_t* p;
  uint64_t bytes;
};
struct TokenCost {
  uint64_t bytes = 0;
  int64_t params = 0;
  int64_t lm_head_params = 0;
  std::vector<Span> spans;  // the bytes themselves (the MoE layers' first k experts)
};

TokenCost token_cost(const ModelWeights& w) {
  TokenCost c;
  auto span = [&](const void* p, uint64_t bytes) {
    c.spans.push_back({static_cast<const uint8_t*>(p), bytes});
    c.bytes += bytes;
  };
  auto add = [&](const WeightView& v) {
    if (v.data == nullptr) return;
    span(v.data, view_bytes(v));
    c.params += v.rows * v.cols;
  };
  auto add_mlp = [&](const MlpWeights& m) {
    for (const WeightView* v : {&m.gate, &m.up, &m.down}) add(*v);
  };
  for (const LayerWeights& L : w.layers) {
    for (const WeightView* v : {&L.wq, &L.wk, &L.wv, &L.wo, &L.wq_a, &L.wq_b, &L.wkv_a}) add(*v);
    for (const WeightView& v : L.w_uk_t) add(v);
    for (const WeightView& v : L.w_uv) add(v);
    if (L.is_moe) {
      span(L.router.data(), L.router.size() * sizeof(float));
      c.params += static_cast<int64_t>(L.router.size());
      if (L.has_shared) add_mlp(L.shared);
      for (int64_t e = 0; e < w.config.num_experts_per_tok; ++e) add_mlp(L.experts[e]);
    } else {
      add_mlp(L.mlp);
    }
  }
  span(w.lm_head.data, view_bytes(w.lm_head));
  c.lm_head_params = w.lm_head.rows * w.lm_head.cols;
  return c;
}

// Seconds to stream-read one token's weight bytes where they lie (same memory, same threads,
// 1 MiB tasks), the best case a decode step could reach: min of `passes`.
double stream_seconds(ThreadPool& pool, const std::vector<Span>& spans, int passes = 3) {
  constexpr uint64_t kChunk = 1 << 20;
  std::vector<Span> chunks;
  for (const Span& s : spans) {
    for (uint64_t off = 0; off < s.bytes; off += kChunk)
      chunks.push_back({s.p + off, std::min(kChunk, s.bytes - off)});
  }
  std::vector<uint64_t> sink(static_cast<size_t>(pool.n_threads()));
  double best = 1e30;
  for (int r = 0; r < passes; ++r) {
    const double t0 = now_seconds();
    pool.parallel_for(static_cast<int64_t>(chunks.size()), [&](int64_t i, int thread) {
      sink[thread] += bench::read_bytes(chunks[i].p, static_cast<int64_t>(chunks[i].bytes));
    });
    best = std::min(best, now_seconds() - t0);
  }
  uint64_t total = 0;
  for (uint64_t v : sink) total += v;
  if (total == 42) std::printf(" ");  // keep the reads
  return best;
}

std::vector<int32_t> synthetic_prompt(int64_t seq, int64_t n, int64_t vocab) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    t[static_cast<size_t>(i)] = static_cast<int32_t>((seq * 7919 + i * 104729 + 3) % vocab);
  return t;
}

int32_t argmax(const float* v, int64_t n) {
  return static_cast<int32_t>(std::max_element(v, v + n) - v);
}

void check(const Status& s) {
  if (!s.ok()) {
    std::fprintf(stderr, "engine_bench: %s\n", s.to_string().c_str());
    std::exit(1);
  }
}

// CPU seconds used by this process (all threads) so far.
double process_cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// B sequences: prefill `prompt` tokens each (untimed), then `gen` decode steps of B tokens;
// returns the seconds of the decode steps (and, in *cpu_seconds, the process CPU time they took).
double run_decode(Model& model, KvCache& cache, int64_t B, int64_t prompt, int64_t gen,
                  double* cpu_seconds = nullptr) {
  const int64_t vocab = model.n_vocab();
  const int64_t blocks_per_seq = (prompt + gen + kBlockSize - 1) / kBlockSize;
  std::vector<std::vector<int32_t>> tables(static_cast<size_t>(B)), prompts(static_cast<size_t>(B));
  std::vector<int32_t> next(static_cast<size_t>(B));
  std::vector<float> logits;
  for (int64_t s = 0; s < B; ++s) {
    for (int64_t b = 0; b < blocks_per_seq; ++b)
      tables[s].push_back(static_cast<int32_t>(s * blocks_per_seq + b));
    prompts[s] = synthetic_prompt(s, prompt, vocab);
  }
  // Prefill in chunks of up to 8 sequences so a big batch does not need one huge step.
  for (int64_t s0 = 0; s0 < B; s0 += 8) {
    std::vector<SequenceInput> batch;
    for (int64_t s = s0; s < std::min(B, s0 + 8); ++s)
      batch.push_back({prompts[s], 0, tables[s], false});
    check(model.forward(batch, cache, logits));
    for (int64_t s = s0; s < std::min(B, s0 + 8); ++s)
      next[s] = argmax(logits.data() + (s - s0) * vocab, vocab);
  }
  const double t0 = now_seconds(), cpu0 = process_cpu_seconds();
  for (int64_t step = 0; step < gen; ++step) {
    std::vector<SequenceInput> batch;
    for (int64_t s = 0; s < B; ++s)
      batch.push_back({{&next[s], 1}, prompt + step, tables[s], false});
    check(model.forward(batch, cache, logits));
    for (int64_t s = 0; s < B; ++s) next[s] = argmax(logits.data() + s * vocab, vocab);
  }
  if (cpu_seconds != nullptr) *cpu_seconds = process_cpu_seconds() - cpu0;
  return now_seconds() - t0;
}

std::vector<int64_t> parse_list(const std::string& s) {
  std::vector<int64_t> v;
  size_t i = 0;
  while (i < s.size()) {
    size_t j = s.find(',', i);
    if (j == std::string::npos) j = s.size();
    v.push_back(std::atoll(s.substr(i, j - i).c_str()));
    i = j + 1;
  }
  return v;
}

}  // namespace
}  // namespace seekserve

int main(int argc, char** argv) {
  using namespace seekserve;
  std::string model_path, batches_arg, kv_dtype_name = "f32", weights_name = "auto";
  int threads = 2, reps = 3;
  double bw = 0.0;
  bool bandwidth_only = false, pack = true;
  int64_t decode_tokens = 0, batch_gen = 8, prefill_tokens = 0, prompt = 16;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    const char* val = i + 1 < argc ? argv[i + 1] : "";
    if (flag == "--bandwidth") {
      bandwidth_only = true;
      continue;
    }
    ++i;
    if (flag == "--model")
      model_path = val;
    else if (flag == "--threads")
      threads = std::atoi(val);
    else if (flag == "--reps")
      reps = std::atoi(val);
    else if (flag == "--bw")
      bw = std::atof(val);
    else if (flag == "--decode")
      decode_tokens = std::atoll(val);
    else if (flag == "--batches")
      batches_arg = val;
    else if (flag == "--batch-gen")
      batch_gen = std::atoll(val);
    else if (flag == "--prefill")
      prefill_tokens = std::atoll(val);
    else if (flag == "--prompt")
      prompt = std::atoll(val);
    else if (flag == "--kv-dtype")
      kv_dtype_name = val;
    else if (flag == "--weights")
      weights_name = val;
    else if (flag == "--pack" && (std::string(val) == "on" || std::string(val) == "off"))
      pack = std::string(val) == "on";
    else {
      std::fprintf(stderr, "engine_bench: unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  ThreadPool pool(threads);
  if (bandwidth_only) {
    std::printf("read_bandwidth_gbs %.2f threads %d\n", bench::read_bandwidth(pool, 5), threads);
    return 0;
  }
  if (model_path.empty()) {
    std::fprintf(stderr, "engine_bench: --model or --bandwidth required\n");
    return 2;
  }
  const auto memory = weight_memory_from_name(weights_name);
  if (!memory) {
    std::fprintf(stderr, "engine_bench: bad --weights (auto, mmap or copy)\n");
    return 2;
  }
  const double load_t0 = now_seconds();
  LoadOptions load_options;
  load_options.memory = *memory;
  load_options.pack_weights = pack;
  auto loaded = load_model_weights(model_path, load_options);
  check(loaded.status());
  const double load_seconds = now_seconds() - load_t0;
  std::unique_ptr<ModelWeights> weights = std::move(*loaded);
  const TokenCost cost = token_cost(*weights);
  const uint64_t file_bytes = weights->mapped_bytes;
  const char* memory_name = weight_memory_name(weights->memory);
  const uint64_t packed_bytes = weights->packed_bytes;
  const double pack_seconds = weights->pack_seconds;
  Model model(std::move(weights), pool);
  const auto kv_dtype = dtype_from_name(kv_dtype_name);
  if (!kv_dtype) {
    std::fprintf(stderr, "engine_bench: bad --kv-dtype\n");
    return 2;
  }
  std::vector<int64_t> batches = parse_list(batches_arg);
  int64_t max_b = 1;
  for (int64_t b : batches) max_b = std::max(max_b, b);
  const int64_t ctx = std::max({prompt + std::max(decode_tokens, batch_gen), prefill_tokens});
  const int64_t blocks = std::max(max_b * ((prompt + batch_gen + kBlockSize - 1) / kBlockSize),
                                  (ctx + kBlockSize - 1) / kBlockSize);
  auto cache_or = KvCache::create(model.config(), blocks, kBlockSize, *kv_dtype);
  check(cache_or.status());
  KvCache cache = std::move(*cache_or);
  std::printf(
      "model %s: file %.1f MiB, weights read per token %.1f MiB, %.3f G params/token, "
      "KV cache %.1f MiB (%s), %d threads, weights %s, %.1f MiB packed for VNNI in %.2f s (loaded "
      "in %.2f s)\n",
      model_path.c_str(), file_bytes / 1048576.0, cost.bytes / 1048576.0, cost.params / 1e9,
      cache.total_bytes() / 1048576.0, kv_dtype_name.c_str(), threads, memory_name,
      packed_bytes / 1048576.0, pack_seconds, load_seconds);
  if (bw > 0) {
    std::printf("roofline (read %.2f GB/s / %.1f MiB per token): %.2f tok/s\n", bw,
                cost.bytes / 1048576.0, bw * 1e9 / cost.bytes);
  }
  if (decode_tokens > 0) {
    // Each rep is followed by a streaming read of the same bytes: on a shared machine the
    // bandwidth moves by 2x within minutes, so the ratio of the two adjacent figures is the
    // meaningful one.
    std::vector<double> rates, stream_gbs, fractions;
    for (int r = 0; r < reps; ++r) {
      const double rate = decode_tokens / run_decode(model, cache, 1, prompt, decode_tokens);
      const double stream = stream_seconds(pool, cost.spans);
      rates.push_back(rate);
      stream_gbs.push_back(cost.bytes / stream / 1e9);
      fractions.push_back(rate * stream);
    }
    const double rate = median(rates);
    std::printf("decode: %.3f tok/s (median of %d, %lld tokens after a %lld-token prompt)", rate,
                reps, static_cast<long long>(decode_tokens), static_cast<long long>(prompt));
    if (bw > 0)
      std::printf(", %.0f%% of the --bw roofline", 100.0 * rate * cost.bytes / (bw * 1e9));
    std::printf(
        "\ndecode vs streaming the same weights right after each rep: %.2f GB/s read, decode at "
        "%.0f%% of it (medians)\n",
        median(stream_gbs), 100.0 * median(fractions));
  }
  // Also per CPU-second: on a machine shared with other work the wall rate moves with how much
  // of the 2 cores this process got; tokens per CPU-second of ours (the thread pool sleeps when
  // idle) is what a quiet machine's wall rate would be, times the thread count, where compute is
  // the limit.
  double base = 0, cpu_base = 0;
  for (int64_t B : batches) {
    std::vector<double> rates, cpu_rates;
    for (int r = 0; r < reps; ++r) {
      double cpu = 0;
      const double wall = run_decode(model, cache, B, prompt, batch_gen, &cpu);
      rates.push_back(B * batch_gen / wall);
      cpu_rates.push_back(B * batch_gen / cpu);
    }
    const double rate = median(rates), cpu_rate = median(cpu_rates);
    if (B == batches.front()) {
      base = rate / B;
      cpu_base = cpu_rate / B;
    }
    std::printf(
        "batched decode B=%lld: %.2f tok/s total (%.2fx batch-1 rate); %.2f tok per CPU-second "
        "(%.2fx)\n",
        static_cast<long long>(B), rate, rate / base, cpu_rate, cpu_rate / cpu_base);
    std::fflush(stdout);
  }
  if (prefill_tokens > 0) {
    const std::vector<int32_t> tokens = synthetic_prompt(99, prefill_tokens, model.n_vocab());
    std::vector<int32_t> table;
    for (int64_t b = 0; b < (prefill_tokens + kBlockSize - 1) / kBlockSize; ++b)
      table.push_back(static_cast<int32_t>(b));
    std::vector<double> times;
    std::vector<float> logits;
    for (int r = 0; r < reps; ++r) {
      SequenceInput in{tokens, 0, table, false};
      const double t0 = now_seconds();
      check(model.forward({&in, 1}, cache, logits));
      times.push_back(now_seconds() - t0);
    }
    const double t = median(times);
    const double flops = 2.0 * (static_cast<double>(cost.params) * prefill_tokens +
                                static_cast<double>(cost.lm_head_params));
    std::printf("prefill %lld tokens: %.2f s, %.1f tok/s, %.3f TFLOP/s effective (median of %d)\n",
                static_cast<long long>(prefill_tokens), t, prefill_tokens / t, flops / t / 1e12,
                reps);
  }
  const uint64_t hwm = bench::proc_status_bytes("VmHWM");
  const double limit = 1.10 * static_cast<double>(file_bytes + cache.total_bytes());
  std::printf("peak RSS %.1f MiB vs (file + KV) x 1.1 = %.1f MiB: %s\n", hwm / 1048576.0,
              limit / 1048576.0, hwm <= limit ? "within" : "OVER");
  return 0;
}

#pragma once
// estimate: memory and capacity planning. What a model takes in memory when seekserve runs it —
// weights by tensor class and precision, the KV cache, the forward pass's activations and scratch,
// the engine's own copies and the process baseline — and the largest batch × context that fits a
// memory budget. Everything is derived from the model-shape registry (formats/model_presets.h)
// and the tensor list (formats/model_tensors.h); the activation and overhead formulas mirror what
// src/model/*.cpp and src/engine/session.cpp allocate (docs/ESTIMATE.md states them).
//
// Units: bytes everywhere (GiB = 2^30 only when printed); "GB" = 10^9 only in the rule of thumb.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/dtype.h"
#include "core/status.h"
#include "formats/model_config.h"
#include "formats/model_tensors.h"

namespace seekserve {

enum class WeightClass {
  kEmbedding,
  kAttention,  // q/kv/o projections (+ Qwen2's q/k/v biases)
  kDenseMlp,
  kRoutedExperts,
  kSharedExperts,
  kRouter,  // MoE gate and e_score_correction_bias
  kNorms,
  kLmHead,
  kOther,  // a tensor of a file that none of the above names (e.g. GGUF rope_freqs)
};
inline constexpr int kNumWeightClasses = 9;
const char* weight_class_name(WeightClass cls);  // "embeddings", "attention", ...

// The class of an HF-named tensor of hf_tensor_specs().
WeightClass classify_tensor(TensorRole role, std::string_view hf_name);

// One stored (or planned) tensor, reduced to what the planner needs.
struct PlannedTensor {
  WeightClass cls = WeightClass::kOther;
  TensorRole role = TensorRole::kLinear;
  DType dtype = DType::kF32;
  int64_t params = 0;        // elements (0 for a scale tensor)
  uint64_t bytes = 0;        // stored bytes of the values
  uint64_t scale_bytes = 0;  // FP8: the f32 scale_inv, one per 128×128 block
};

// How a tensor is stored when planning for `precision` (MODELS.md §5): FP8 for linear
// projections only (embeddings, lm_head, router gate, norms, biases in BF16; router bias F32),
// Q8_0/Q4_0 for linear, embedding and lm_head (norms, biases and the router in F32, as GGUF
// keeps them; a row not a whole number of 32-blocks stays BF16), F32/F16/BF16 for everything
// but the router bias (F32, as DeepSeek ships it). Bytes come from dtype_bytes.
PlannedTensor plan_tensor(const TensorSpec& spec, DType precision);

// What estimate plans for: a preset, a config.json, an HF folder or a GGUF file.
struct ModelSource {
  std::string name;  // as given
  std::string kind;  // "preset" | "config" | "hf" | "gguf"
  ModelConfig config;
  std::vector<PlannedTensor> stored;  // the file's tensors as stored ("hf", "gguf")
  bool mla_split = false;             // GGUF with attn_k_b/attn_v_b: no owned W_UKᵀ/W_UV copies
  int64_t tokenizer_entries = 0;      // GGUF: tokens in the file's tokenizer (0: vocab_size)
  uint64_t gguf_extra_bytes = 0;      // GGUF: file bytes that are not tensors (header, metadata)
  int64_t gguf_array_elements = 0;    // GGUF: elements of the metadata arrays
};
Result<ModelSource> load_model_source(const std::string& model);

// The process baseline, term by term. The sizes per item are measured (docs/BENCHMARKS.md,
// "Estimate vs measured" and "Estimate vs a loaded server"); the counts come from the model and
// the serving configuration.
//
// Code: the binary's and its libraries' resident pages (file-backed): Rss − Anonymous of
// `generate` and of an idle `serve`, 10.0–10.4 MiB.
inline constexpr uint64_t kCodePagesBytes = uint64_t{10} << 20;
// The tokenizer and the heap around it, per vocabulary entry: id → string and string → id
// tables, the merge ranks (a BPE vocabulary has about as many merges as tokens), the
// TokenizerData the weights keep, the heap they fragment. 48.3 MiB anonymous for the
// DeepSeek-V3 tokenizer's 129,280 entries (tiny presets, `generate`).
inline constexpr uint64_t kTokenizerBytesPerEntry = 392;
// A GGUF keeps its parsed metadata alive: per element of its metadata arrays (token strings,
// token types, merges). 18 MiB for the 386,301 elements of the V3 tokenizer's arrays.
inline constexpr uint64_t kGgufMetadataBytesPerElement = 48;
// `serve` only. Every HTTP worker thread touches its first stack pages, its struct pthread and
// its static TLS when it starts, whether it ever serves a request: 3 pages (12.4 KiB measured:
// an idle server with 1,000 threads against 8).
inline constexpr uint64_t kHttpThreadStartBytes = uint64_t{12} << 10;
// `serve` only, per request in flight: the deeper stack and the malloc arena pages of the HTTP
// thread that serves it (glibc gives each thread an arena, up to 8 per core). Small: within the
// noise of the measurements at 1, 8 and 16 requests in flight.
inline constexpr uint64_t kRequestInFlightBytes = uint64_t{64} << 10;
// `serve` only: the HTTP server and its listener, the engine and signal threads, the metrics
// registry, and the request path's code and heap first touched by a request. Measured: a loaded
// server less the engine's terms above, with 24 HTTP threads, at 1, 8 and 16 requests in flight:
// 8.1–9.3 MiB.
inline constexpr uint64_t kServeRuntimeBytes = uint64_t{8} << 20;
// serve's defaults (src/tools/serve.cpp): --max-queue, and HTTP threads = --max-num-seqs-limit
// (4 × --max-num-seqs) + --max-queue + 8.
inline constexpr int64_t kServeMaxQueue = 256;

struct EstimateOptions {
  std::optional<DType> precision;  // weights; nullopt = as stored (file) or the config's dtype
  DType kv_dtype = DType::kF32;    // the engine's default (--kv-dtype)
  int64_t batch = 1;
  int64_t ctx = 2048;
  int64_t step_tokens = 0;     // tokens in the largest forward step; 0 = min(batch × ctx, 4096)
  bool all_logits = false;     // logits for every step token (logits/perplexity), else one per seq
  int64_t threads = 0;         // workers (per-thread attention scratch); 0 = this machine's cores
  int64_t kv_block_size = 16;  // the engine's KV block (src/engine/session.cpp)
  std::optional<uint64_t> memory;  // budget in bytes
  bool process = true;             // count the process baseline (code, tokenizer, metadata)
  // Plan for `seekserve serve` (HTTP threads, requests in flight) with batch = --max-num-seqs.
  bool serve = false;
  int64_t max_queue = kServeMaxQueue;  // serve's --max-queue
  int64_t http_threads = 0;            // serve's --http-threads (0 = serve's default)
};

struct WeightClassBytes {
  WeightClass cls = WeightClass::kOther;
  int64_t params = 0;
  uint64_t bytes = 0;  // including scale_bytes
  uint64_t scale_bytes = 0;
  std::map<std::string, uint64_t> bytes_by_dtype;  // "fp8", "bf16", "f32", ...
};

// The forward pass's buffers for one step of T tokens (f32 unless stated), bytes.
struct ActivationBytes {
  int64_t step_tokens = 0;  // T
  int64_t logits_rows = 0;  // n_out
  uint64_t residual = 0;    // x, h, out [T, hidden] + per-token bookkeeping
  uint64_t logits = 0;      // logits [n_out, vocab], alive across steps
  uint64_t attention = 0;   // peak inside the attention block
  uint64_t mlp = 0;         // dense MLP peak (0 when every layer is MoE)
  uint64_t moe = 0;         // MoE block peak (0 for dense models)
  uint64_t output = 0;      // final norm rows + the lm_head input copy
  uint64_t peak = 0;        // residual + logits + max(attention, mlp, moe, output)
};

struct OverheadBytes {
  uint64_t norms_f32 = 0;         // every norm weight copied to f32
  uint64_t biases_f32 = 0;        // q/k/v biases copied to f32
  uint64_t router_f32 = 0;        // MoE gate + correction bias copied to f32
  uint64_t mla_absorbed_f32 = 0;  // HF / fused-GGUF MLA: per-head W_UKᵀ and W_UV in f32
  uint64_t sampler = 0;           // valid-id mask + the shared sampler scratch
  // The process baseline (EstimateOptions::process), see the constants above.
  uint64_t code = 0;           // binary and library pages
  uint64_t tokenizer = 0;      // entries × kTokenizerBytesPerEntry
  uint64_t gguf_file = 0;      // GGUF: header and metadata bytes of the file, read with it
  uint64_t gguf_metadata = 0;  // GGUF: array elements × kGgufMetadataBytesPerElement
  uint64_t baseline = 0;       // code + tokenizer + gguf_file + gguf_metadata
  uint64_t total = 0;          // everything above (the serve terms are in ServeBytes)
};

// What `seekserve serve` holds beyond the engine (EstimateOptions::serve); grows with batch.
struct ServeBytes {
  int64_t http_threads = 0;
  uint64_t thread_starts = 0;       // http_threads × kHttpThreadStartBytes
  uint64_t requests_in_flight = 0;  // batch × kRequestInFlightBytes
  uint64_t per_sequence = 0;        // batch × token ids (ctx × 8 B)
  uint64_t runtime = 0;             // kServeRuntimeBytes
  uint64_t total = 0;
};

struct RuleOfThumb {
  double params_billion = 0;
  double weights_gb = 0;  // params_billion × 2
  double kv_gb = 0;       // batch × seq × 0.5, seq in tokens (literal)
  double total_gb = 0;
  double kv_gb_seq_in_thousands = 0;  // the same with seq in thousands of tokens
  double total_gb_seq_in_thousands = 0;
};

struct Estimate {
  std::string model, kind, precision, kv_dtype;
  ModelConfig config;
  int64_t batch = 0, ctx = 0, ctx_allocated = 0;  // ctx rounded up to the KV block
  int64_t params = 0;                             // the registry's count (no MTP layer)
  int64_t params_mtp = 0;         // V3/R1: the MTP layer's own parameters (not loaded)
  int64_t params_mtp_stored = 0;  // with the embedding and head copies the checkpoint stores
  std::vector<WeightClassBytes> weights;
  uint64_t weight_bytes = 0;     // memory-mapped: resident once read
  uint64_t embedding_bytes = 0;  // the part of weight_bytes read row by row (only the rows of
                                 // tokens seen become resident: a planning figure counts it all)
  int64_t kv_width = 0;          // values per token per layer
  uint64_t kv_bytes_per_token = 0;
  uint64_t kv_bytes = 0;  // batch × ctx_allocated × per token
  ActivationBytes activations;
  OverheadBytes overhead;
  std::optional<ServeBytes> serve;
  uint64_t total = 0;
  std::optional<uint64_t> memory;
  bool fits = false;
  int64_t max_batch = 0;           // at ctx
  int64_t max_ctx = 0;             // at batch (capped at max_position_embeddings)
  std::string max_ctx_limited_by;  // "memory" | "max_position_embeddings"
  RuleOfThumb rule;
};

Result<Estimate> estimate_memory(const ModelSource& source, const EstimateOptions& options);

// The forward pass's buffers (exposed for tests): see ActivationBytes.
ActivationBytes activation_bytes(const ModelConfig& config, int64_t step_tokens,
                                 int64_t logits_rows, int64_t ctx, int64_t threads,
                                 DType linear_dtype, DType lm_head_dtype);

// "24GiB", "80GB", "1.5TiB", "512MiB", "1000000" (bytes); "8x80GiB" = 8 × 80 GiB. K/M/G/T
// without "i"/"B" read as binary. Errors name `field`.
Result<uint64_t> parse_memory_size(std::string_view text, std::string_view field);

nlohmann::json estimate_to_json(const Estimate& e);
std::string format_estimate(const Estimate& e);

}  // namespace seekserve

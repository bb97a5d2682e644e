#include "tools/estimate.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <thread>
#include <unordered_map>

#include <fmt/format.h>

#include "formats/gguf.h"
#include "formats/gguf_model.h"
#include "formats/hf_config.h"
#include "formats/model_presets.h"
#include "formats/safetensors.h"
#include "model/kv_cache.h"
#include "server/http_server.h"
#include "tools/command.h"

namespace seekserve {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr uint64_t kF32 = 4;
constexpr int64_t kFp8Block = 128;            // DeepSeek's weight_scale_inv block (MODELS.md §5)
constexpr int64_t kDefaultStepTokens = 4096;  // the scheduler's default token budget (DESIGN)

uint64_t u(int64_t v) {
  return static_cast<uint64_t>(std::max<int64_t>(v, 0));
}

// Bytes of n values of `type`; a row that is not a whole number of blocks has no such form.
std::optional<uint64_t> bytes_of(DType type, int64_t n) {
  return dtype_bytes(type, u(n));
}

// The f32 scale_inv of an FP8 [rows, cols] weight: one per 128×128 block.
uint64_t fp8_scale_bytes(const std::vector<int64_t>& shape) {
  const int64_t rows = shape.size() == 2 ? shape[0] : 1;
  const int64_t cols = shape.back();
  return kF32 * u((rows + kFp8Block - 1) / kFp8Block) * u((cols + kFp8Block - 1) / kFp8Block);
}

// The matmul kernels' copy of the activations X [m, k]: BF16 (AVX512-BF16 and AMX paths) for
// BF16/FP8/Q8_0/Q4_0 weights (the Q8 activation path takes 1 + 4/32 bytes, less), none for
// F32/F16 weights (f32 FMA on the activations in place). src/kernels/matmul.cpp.
uint64_t matmul_x_copy(int64_t m, int64_t k, DType weight) {
  if (weight == DType::kF32 || weight == DType::kF16) return 0;
  return 2 * u(m) * u(k);
}

}  // namespace

const char* weight_class_name(WeightClass cls) {
  switch (cls) {
    case WeightClass::kEmbedding:
      return "embeddings";
    case WeightClass::kAttention:
      return "attention";
    case WeightClass::kDenseMlp:
      return "dense_mlp";
    case WeightClass::kRoutedExperts:
      return "routed_experts";
    case WeightClass::kSharedExperts:
      return "shared_experts";
    case WeightClass::kRouter:
      return "router";
    case WeightClass::kNorms:
      return "norms";
    case WeightClass::kLmHead:
      return "lm_head";
    case WeightClass::kOther:
      return "not_loaded";
  }
  return "?";
}

WeightClass classify_tensor(TensorRole role, std::string_view name) {
  switch (role) {
    case TensorRole::kEmbedding:
      return WeightClass::kEmbedding;
    case TensorRole::kLmHead:
      return WeightClass::kLmHead;
    case TensorRole::kNorm:
      return WeightClass::kNorms;
    case TensorRole::kBias:
      return WeightClass::kAttention;
    case TensorRole::kRouter:
    case TensorRole::kRouterBias:
      return WeightClass::kRouter;
    case TensorRole::kLinear:
      if (name.find(".mlp.experts.") != std::string_view::npos) return WeightClass::kRoutedExperts;
      if (name.find(".mlp.shared_experts.") != std::string_view::npos)
        return WeightClass::kSharedExperts;
      if (name.find(".mlp.") != std::string_view::npos) return WeightClass::kDenseMlp;
      return WeightClass::kAttention;
  }
  return WeightClass::kOther;
}

PlannedTensor plan_tensor(const TensorSpec& spec, DType precision) {
  PlannedTensor t;
  t.cls = classify_tensor(spec.role, spec.name);
  t.role = spec.role;
  t.params = spec.n_elements();
  const bool linear = spec.role == TensorRole::kLinear;
  const bool matrix_like =
      linear || spec.role == TensorRole::kEmbedding || spec.role == TensorRole::kLmHead;
  DType d = precision;
  if (spec.role == TensorRole::kRouterBias) {
    d = DType::kF32;
  } else if (precision == DType::kF8E4M3) {
    d = linear ? DType::kF8E4M3 : DType::kBF16;
  } else if (dtype_info(precision).is_quantized) {
    d = matrix_like ? precision : DType::kF32;
    if (matrix_like && spec.shape.back() % dtype_info(precision).block_elements != 0)
      d = DType::kBF16;
  }
  t.dtype = d;
  t.bytes = bytes_of(d, t.params).value_or(0);
  if (d == DType::kF8E4M3) t.scale_bytes = fp8_scale_bytes(spec.shape);
  return t;
}

Result<ModelSource> load_model_source(const std::string& model) {
  if (model.empty()) return invalid_argument("MODEL: required (a preset name, folder or file)");
  ModelSource src;
  src.name = model;
  std::error_code ec;
  if (!fs::exists(model, ec)) {
    auto preset = find_model_preset(model);
    if (!preset.ok()) {
      return invalid_argument("MODEL: '{}' is neither a file, a folder nor a known preset ({})",
                              model, preset.status().message());
    }
    src.kind = "preset";
    src.config = preset->config;
    return src;
  }
  if (fs::is_directory(model, ec)) {
    src.kind = "hf";
    SEEK_ASSIGN_OR_RETURN(src.config, load_hf_config(model + "/config.json"));
    SEEK_ASSIGN_OR_RETURN(SafetensorsModel st, SafetensorsModel::open(model));
    std::unordered_map<std::string, const TensorSpec*> by_name;
    const std::vector<TensorSpec> specs = hf_tensor_specs(src.config);
    for (const TensorSpec& s : specs) by_name[s.name] = &s;
    constexpr std::string_view kScale = "_scale_inv";
    for (const SafetensorsTensor& t : st.tensors()) {
      PlannedTensor p;
      p.dtype = t.dtype;
      std::string weight = t.name;
      const bool is_scale = weight.ends_with(kScale);
      if (is_scale) weight.resize(weight.size() - kScale.size());
      if (auto it = by_name.find(weight); it != by_name.end()) {
        p.role = it->second->role;
        p.cls = classify_tensor(p.role, weight);
      }
      if (is_scale) {
        p.scale_bytes = t.data.size();
      } else {
        p.bytes = t.data.size();
        p.params = 1;
        for (int64_t d : t.shape) p.params *= d;
      }
      src.stored.push_back(p);
    }
    return src;
  }
  if (model.ends_with(".json")) {
    src.kind = "config";
    SEEK_ASSIGN_OR_RETURN(src.config, load_hf_config(model));
    return src;
  }
  src.kind = "gguf";
  SEEK_ASSIGN_OR_RETURN(GgufFile file, GgufFile::open(model));
  SEEK_ASSIGN_OR_RETURN(src.config, model_config_from_gguf(file));
  std::unordered_map<std::string, std::pair<TensorRole, std::string>> by_name;
  for (MlaGgufLayout layout : {MlaGgufLayout::kFused, MlaGgufLayout::kSplit}) {
    for (const GgufTensorPlan& p : gguf_tensor_plan(src.config, layout)) {
      by_name[p.name] = {p.role, p.sources.empty() ? std::string() : p.sources[0]};
    }
  }
  for (const GgufTensorInfo& t : file.tensors()) {
    PlannedTensor p;
    p.dtype = t.dtype;
    p.params = static_cast<int64_t>(t.n_elements);
    p.bytes = t.n_bytes;
    if (auto it = by_name.find(t.name); it != by_name.end() && !it->second.second.empty()) {
      p.role = it->second.first;
      p.cls = classify_tensor(p.role, it->second.second);
    } else if (it != by_name.end()) {
      p.role = it->second.first;
      p.cls = WeightClass::kNorms;  // rope_freqs: a small f32 vector the engine reads
    }
    if (t.name.find(".attn_k_b.") != std::string::npos) src.mla_split = true;
    src.stored.push_back(p);
  }
  // The loader reads the whole file, metadata included, and keeps the parsed metadata.
  uint64_t tensor_bytes = 0;
  for (const GgufTensorInfo& t : file.tensors()) tensor_bytes += t.n_bytes;
  const uint64_t file_bytes = fs::file_size(model, ec);
  if (!ec && file_bytes > tensor_bytes) src.gguf_extra_bytes = file_bytes - tensor_bytes;
  for (const auto& [key, value] : file.metadata()) {
    if (value.type != GgufType::kArray) continue;
    src.gguf_array_elements += static_cast<int64_t>(value.array.size());
    if (key == "tokenizer.ggml.tokens")
      src.tokenizer_entries = static_cast<int64_t>(value.array.size());
  }
  return src;
}

ActivationBytes activation_bytes(const ModelConfig& c, int64_t step_tokens, int64_t logits_rows,
                                 int64_t ctx, int64_t threads, DType linear, DType lm_head) {
  ActivationBytes a;
  const uint64_t T = u(step_tokens), n_out = u(logits_rows), hidden = u(c.hidden_size);
  a.step_tokens = step_tokens;
  a.logits_rows = logits_rows;
  // model.cpp forward(): x, h, out [T, hidden]; seq_of (i32) and pos_of (i64) per token.
  a.residual = 3 * T * hidden * kF32 + T * 12;
  // logits [n_out, vocab], kept by the caller from one step to the next.
  a.logits = n_out * u(c.vocab_size) * kF32;
  const uint64_t per_thread_ctx = u(threads) * u(ctx) * kF32;  // scores [n_ctx] per task
  if (c.is_mla()) {
    // mla_attention.cpp: q [T, H, nope+rope], kv [T, r+rope], q_abs and o [H, T, r], then
    // heads [T, H, v] and tmp [T, v] for W_UV and o_proj; qa [T, q_lora] while q_b runs.
    const uint64_t H = u(c.num_attention_heads), r = u(c.kv_lora_rank);
    const uint64_t qk = u(c.qk_nope_head_dim + c.qk_rope_head_dim), v = u(c.v_head_dim);
    const uint64_t width = u(KvCache::width_for(c));
    const uint64_t q = T * H * qk * kF32, kv = T * width * kF32, lat = 2 * H * T * r * kF32;
    const uint64_t phase_q =
        c.q_lora_rank > 0
            ? q + T * u(c.q_lora_rank) * kF32 + matmul_x_copy(step_tokens, c.q_lora_rank, linear)
            : q + matmul_x_copy(step_tokens, c.hidden_size, linear);
    const uint64_t phase_attn = q + kv + lat + per_thread_ctx + u(threads) * width * kF32;
    const uint64_t phase_out = q + kv + lat + T * H * v * kF32 + T * v * kF32 +
                               matmul_x_copy(step_tokens, static_cast<int64_t>(H * v), linear);
    a.attention = std::max({phase_q, phase_attn, phase_out});
  } else {
    // gqa_attention.cpp: q [T, H·d], kv [T, 2·kv_dim], k and v [T, kv_dim], o [T, H·d].
    const uint64_t qd = u(c.num_attention_heads * c.head_dim);
    const uint64_t kvd = u(c.num_key_value_heads * c.head_dim);
    const uint64_t base = T * (2 * qd + 4 * kvd) * kF32;
    const uint64_t phase_attn = base + per_thread_ctx + u(threads) * u(c.head_dim) * kF32;
    const uint64_t phase_out = base + matmul_x_copy(step_tokens, static_cast<int64_t>(qd), linear);
    a.attention = std::max(phase_attn, phase_out);
  }
  // Model::mlp: gate and up outputs [m, inter], then down reads [m, inter].
  auto mlp = [&](int64_t m, int64_t inter) {
    return 2 * u(m) * u(inter) * kF32 +
           std::max(matmul_x_copy(m, c.hidden_size, linear), matmul_x_copy(m, inter, linear));
  };
  bool any_dense = false, any_moe = false;
  for (int64_t il = 0; il < c.num_hidden_layers; ++il) {
    (c.layer_is_moe(il) ? any_moe : any_dense) = true;
  }
  if (any_dense) a.mlp = mlp(step_tokens, c.intermediate_size);
  if (any_moe) {
    // Model::moe: router logits [T, n_experts], the assignment lists (16 B per choice), xe/ye
    // [n, hidden] for the expert being run — bounded by n = T (one expert may take every
    // token) — then the shared experts' output [T, hidden] and their MLP.
    const uint64_t n_exp = u(c.n_routed_experts);
    const uint64_t base =
        T * n_exp * kF32 + T * u(c.num_experts_per_tok) * 16 + n_exp * 24 + 2 * T * hidden * kF32;
    const uint64_t expert = mlp(step_tokens, c.moe_intermediate_size);
    const uint64_t shared =
        c.n_shared_experts > 0
            ? T * hidden * kF32 + mlp(step_tokens, c.moe_intermediate_size * c.n_shared_experts)
            : 0;
    a.moe = base + std::max(expert, shared);
  }
  // Final norm rows [n_out, hidden] and lm_head's copy of them.
  a.output = n_out * hidden * kF32 + matmul_x_copy(logits_rows, c.hidden_size, lm_head);
  a.peak = a.residual + a.logits + std::max({a.attention, a.mlp, a.moe, a.output});
  return a;
}

Result<uint64_t> parse_memory_size(std::string_view text, std::string_view field) {
  const std::string s(text);
  auto bad = [&] {
    return invalid_argument(
        "{}: '{}' is not a memory size (e.g. 24GiB, 80GB, 512MiB, 8x80GiB, or bytes)", field, s);
  };
  if (s.empty()) return bad();
  double count = 1;
  std::string size = s;
  if (size_t x = s.find_first_of("xX"); x != std::string::npos) {
    const std::string n = s.substr(0, x);
    if (n.empty() || n.find_first_not_of("0123456789") != std::string::npos) return bad();
    count = std::stod(n);
    if (count < 1) return bad();
    size = s.substr(x + 1);
  }
  size_t used = 0;
  double value = 0;
  if (size.empty() || !(std::isdigit(static_cast<unsigned char>(size[0])) || size[0] == '.'))
    return bad();
  try {
    value = std::stod(size, &used);
  } catch (const std::exception&) {
    return bad();
  }
  std::string unit = size.substr(used);
  while (!unit.empty() && unit.front() == ' ') unit.erase(0, 1);
  std::string lower;
  for (char ch : unit) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  static const std::pair<const char*, double> kUnits[] = {
      {"", 1},        {"b", 1},        {"k", 0x1p10},   {"kib", 0x1p10}, {"kb", 1e3},
      {"m", 0x1p20},  {"mib", 0x1p20}, {"mb", 1e6},     {"g", 0x1p30},   {"gib", 0x1p30},
      {"gb", 1e9},    {"t", 0x1p40},   {"tib", 0x1p40}, {"tb", 1e12},    {"ki", 0x1p10},
      {"mi", 0x1p20}, {"gi", 0x1p30},  {"ti", 0x1p40}};
  for (const auto& [name, scale] : kUnits) {
    if (lower == name) {
      const double bytes = std::floor(count * value * scale);
      if (!(bytes >= 1) || bytes > 0x1p62) return bad();
      return static_cast<uint64_t>(bytes);
    }
  }
  return bad();
}

namespace {

// The parts that depend on batch and context.
struct Variable {
  int64_t ctx_allocated = 0;
  uint64_t kv_bytes = 0;
  ActivationBytes act;
  std::optional<ServeBytes> serve;
};

// What `seekserve serve` holds beyond the engine for `batch` sequences of `ctx` tokens
// (src/server/http_server.h: kDefaultHttpThreads I/O threads unless --http-threads).
ServeBytes serve_bytes(const EstimateOptions& o, int64_t batch, int64_t ctx) {
  ServeBytes s;
  s.http_threads = o.http_threads > 0 ? o.http_threads : kDefaultHttpThreads;
  s.thread_starts = u(s.http_threads) * kHttpThreadStartBytes;
  s.requests_in_flight = u(batch) * kRequestInFlightBytes;
  s.per_sequence = u(batch) * u(ctx) * 8;
  s.runtime = kServeRuntimeBytes;
  s.total = s.thread_starts + s.requests_in_flight + s.per_sequence + s.runtime;
  return s;
}

struct Planner {
  const ModelConfig& c;
  const EstimateOptions& o;
  DType linear_dtype, lm_head_dtype;
  uint64_t kv_per_token;
  int64_t threads;

  Variable at(int64_t batch, int64_t ctx) const {
    Variable v;
    const int64_t bs = o.kv_block_size;
    v.ctx_allocated = (ctx + bs - 1) / bs * bs;
    v.kv_bytes = u(batch) * u(v.ctx_allocated) * kv_per_token;
    const int64_t all = batch > INT64_MAX / ctx ? INT64_MAX : batch * ctx;
    const int64_t T = o.step_tokens > 0 ? std::min(o.step_tokens, all)
                                        : std::min<int64_t>(all, kDefaultStepTokens);
    const int64_t n_out = o.all_logits ? T : std::min(batch, T);
    v.act = activation_bytes(c, T, n_out, ctx, threads, linear_dtype, lm_head_dtype);
    if (o.serve) v.serve = serve_bytes(o, batch, ctx);
    return v;
  }
  uint64_t total(uint64_t fixed, int64_t batch, int64_t ctx) const {
    const Variable v = at(batch, ctx);
    return fixed + v.kv_bytes + v.act.peak + (v.serve ? v.serve->total : 0);
  }
};

// The largest n in [1, limit] with fits(n), or 0 when even 1 does not fit (fits is monotone).
template <typename F>
int64_t largest_fitting(int64_t limit, F fits) {
  if (!fits(1)) return 0;
  int64_t lo = 1, hi = 2;
  while (hi <= limit && fits(hi)) {
    lo = hi;
    if (hi > limit / 2) {
      hi = limit + 1;
      break;
    }
    hi *= 2;
  }
  hi = std::min(hi, limit + 1);
  while (hi - lo > 1) {  // fits(lo), !fits(hi) or hi past the limit
    const int64_t mid = lo + (hi - lo) / 2;
    (fits(mid) ? lo : hi) = mid;
  }
  return lo;
}

}  // namespace

Result<Estimate> estimate_memory(const ModelSource& src, const EstimateOptions& o) {
  if (o.batch < 1) return invalid_argument("--batch: {} must be at least 1", o.batch);
  if (o.ctx < 1) return invalid_argument("--ctx: {} must be at least 1", o.ctx);
  if (o.step_tokens < 0)
    return invalid_argument("--step-tokens: {} must be positive (0 = default)", o.step_tokens);
  constexpr int64_t kMaxTokens = int64_t{1} << 40;
  if (o.batch > kMaxTokens / o.ctx || o.step_tokens > kMaxTokens) {
    return invalid_argument("--batch × --ctx ({} × {}) or --step-tokens is beyond 2^40 tokens",
                            o.batch, o.ctx);
  }
  if (o.threads < 0) return invalid_argument("--threads: {} must not be negative", o.threads);
  if (o.max_queue < 0) return invalid_argument("--max-queue: {} must not be negative", o.max_queue);
  if (o.http_threads < 0)
    return invalid_argument("--http-threads: {} must not be negative", o.http_threads);
  if (o.kv_block_size < 1) return invalid_argument("KV block size must be positive");
  if (o.kv_dtype != DType::kF32 && o.kv_dtype != DType::kBF16 && o.kv_dtype != DType::kF8E4M3) {
    return invalid_argument("--kv-dtype: {} is not f32, bf16 or fp8", dtype_name(o.kv_dtype));
  }
  const ModelConfig& c = src.config;
  if (c.hidden_size <= 0 || c.num_hidden_layers <= 0 || c.vocab_size <= 0 ||
      c.num_attention_heads <= 0) {
    return invalid_argument(
        "{}: config: hidden_size, num_hidden_layers, num_attention_heads and vocab_size must be "
        "positive",
        src.name);
  }
  Estimate e;
  e.model = src.name;
  e.kind = src.kind;
  e.config = c;
  e.batch = o.batch;
  e.ctx = o.ctx;
  e.kv_dtype = std::string(dtype_name(o.kv_dtype));

  // Weights: the file as stored, or every tensor of the registry planned for a precision.
  const std::vector<TensorSpec> specs = hf_tensor_specs(c);
  std::vector<PlannedTensor> tensors;
  if (!src.stored.empty() && !o.precision) {
    tensors = src.stored;
    e.precision = "as stored";
  } else {
    DType precision = o.precision.value_or(DType::kBF16);
    if (!o.precision) {
      if (c.torch_dtype == "float32") precision = DType::kF32;
      if (c.torch_dtype == "float16") precision = DType::kF16;
    }
    if (precision != DType::kF32 && precision != DType::kF16 && precision != DType::kBF16 &&
        precision != DType::kF8E4M3 && precision != DType::kQ8_0 && precision != DType::kQ4_0) {
      return invalid_argument("--dtype: {} is not f32, f16, bf16, fp8, q8_0 or q4_0",
                              dtype_name(precision));
    }
    for (const TensorSpec& s : specs) tensors.push_back(plan_tensor(s, precision));
    e.precision = std::string(dtype_name(precision));
  }
  e.weights.resize(kNumWeightClasses);
  for (int i = 0; i < kNumWeightClasses; ++i) e.weights[i].cls = static_cast<WeightClass>(i);
  DType linear_dtype = DType::kF32, lm_head_dtype = DType::kF32, embed_dtype = DType::kF32;
  uint64_t largest_linear = 0;
  for (const PlannedTensor& t : tensors) {
    WeightClassBytes& w = e.weights[static_cast<size_t>(t.cls)];
    w.params += t.params;
    w.bytes += t.bytes + t.scale_bytes;
    w.scale_bytes += t.scale_bytes;
    if (t.bytes > 0) w.bytes_by_dtype[std::string(dtype_name(t.dtype))] += t.bytes;
    if (t.scale_bytes > 0) w.bytes_by_dtype["f32 scale_inv"] += t.scale_bytes;
    if (t.cls != WeightClass::kOther) e.weight_bytes += t.bytes + t.scale_bytes;
    if (t.role == TensorRole::kLinear && t.bytes > largest_linear) {
      largest_linear = t.bytes;
      linear_dtype = t.dtype;
    }
    if (t.role == TensorRole::kLmHead && t.bytes > 0) lm_head_dtype = t.dtype;
    if (t.role == TensorRole::kEmbedding && t.bytes > 0) embed_dtype = t.dtype;
  }
  if (c.tie_word_embeddings) lm_head_dtype = embed_dtype;
  // Tied: lm_head reads every row each step, so the embedding is resident in full.
  if (!c.tie_word_embeddings) e.embedding_bytes = e.weights[0].bytes;

  e.params = parameter_count(c);
  if (c.num_nextn_predict_layers > 0) {
    // One MTP layer = a full decoder block (as the last layer) + enorm, hnorm, eh_proj
    // [hidden, 2·hidden] and shared_head.norm; the checkpoint also stores its own copies of the
    // embedding and the head.
    int64_t block = 0;
    for (const TensorSpec& s : specs)
      if (s.layer == c.num_hidden_layers - 1) block += s.n_elements();
    const int64_t own = block + 3 * c.hidden_size + 2 * c.hidden_size * c.hidden_size;
    e.params_mtp = c.num_nextn_predict_layers * own;
    e.params_mtp_stored = c.num_nextn_predict_layers * (own + 2 * c.vocab_size * c.hidden_size);
  }

  // The engine's owned copies (src/model/model_weights.cpp) and the process baseline.
  OverheadBytes& ov = e.overhead;
  for (const TensorSpec& s : specs) {
    const uint64_t f32 = u(s.n_elements()) * kF32;
    if (s.role == TensorRole::kNorm) ov.norms_f32 += f32;
    if (s.role == TensorRole::kBias) ov.biases_f32 += f32;
    if (s.role == TensorRole::kRouter || s.role == TensorRole::kRouterBias) ov.router_f32 += f32;
  }
  if (c.is_mla() && !src.mla_split) {
    // bind_mla: per head W_UKᵀ [r, nope] and W_UV [v, r] cut out of kv_b_proj, in f32.
    ov.mla_absorbed_f32 = u(c.num_hidden_layers) * u(c.num_attention_heads) * u(c.kv_lora_rank) *
                          u(c.qk_nope_head_dim + c.v_head_dim) * kF32;
  }
  // Sampler (src/engine/sampler.h): the model's valid-id mask (1 bit per id), and the engine's one
  // SamplerScratch shared by every sequence: per id a count (i32), a seen flag (u8), exp (f64),
  // and at most once each a candidate index (i32) and probability (f64): 25 B.
  ov.sampler = u(c.vocab_size) / 8 + u(c.vocab_size) * 25;
  if (o.process) {
    ov.code = kCodePagesBytes;
    const int64_t entries = src.tokenizer_entries > 0 ? src.tokenizer_entries : c.vocab_size;
    ov.tokenizer = u(entries) * kTokenizerBytesPerEntry;
    ov.gguf_file = src.gguf_extra_bytes;
    ov.gguf_metadata = u(src.gguf_array_elements) * kGgufMetadataBytesPerElement;
    ov.baseline = ov.code + ov.tokenizer + ov.gguf_file + ov.gguf_metadata;
  }
  ov.total =
      ov.norms_f32 + ov.biases_f32 + ov.router_f32 + ov.mla_absorbed_f32 + ov.sampler + ov.baseline;

  e.kv_width = KvCache::width_for(c);
  e.kv_bytes_per_token =
      dtype_bytes(o.kv_dtype, u(e.kv_width)).value_or(0) * u(c.num_hidden_layers);
  const int64_t threads =
      o.threads > 0
          ? o.threads
          : std::max<int64_t>(1, static_cast<int64_t>(std::thread::hardware_concurrency()));
  const Planner plan{c, o, linear_dtype, lm_head_dtype, e.kv_bytes_per_token, threads};
  const Variable v = plan.at(o.batch, o.ctx);
  e.ctx_allocated = v.ctx_allocated;
  e.kv_bytes = v.kv_bytes;
  e.activations = v.act;
  e.serve = v.serve;
  const uint64_t fixed = e.weight_bytes + ov.total;
  e.total = fixed + e.kv_bytes + e.activations.peak + (e.serve ? e.serve->total : 0);

  if (o.memory) {
    const uint64_t m = *o.memory;
    e.memory = m;
    e.fits = e.total <= m;
    constexpr int64_t kLimit = int64_t{1} << 40;
    e.max_batch =
        largest_fitting(kLimit, [&](int64_t b) { return plan.total(fixed, b, o.ctx) <= m; });
    const int64_t ctx_limit = c.max_position_embeddings > 0 ? c.max_position_embeddings : kLimit;
    e.max_ctx =
        largest_fitting(ctx_limit, [&](int64_t n) { return plan.total(fixed, o.batch, n) <= m; });
    e.max_ctx_limited_by =
        e.max_ctx == ctx_limit && ctx_limit != kLimit ? "max_position_embeddings" : "memory";
  }

  // The tuning guide's rule, read literally: params (billions) × 2 GB + batch × seq × 0.5 GB.
  RuleOfThumb& r = e.rule;
  r.params_billion = static_cast<double>(e.params) / 1e9;
  r.weights_gb = r.params_billion * 2;
  r.kv_gb = static_cast<double>(o.batch) * static_cast<double>(o.ctx) * 0.5;
  r.total_gb = r.weights_gb + r.kv_gb;
  r.kv_gb_seq_in_thousands = static_cast<double>(o.batch) * static_cast<double>(o.ctx) / 1e3 * 0.5;
  r.total_gb_seq_in_thousands = r.weights_gb + r.kv_gb_seq_in_thousands;
  return e;
}

namespace {

std::string gib(uint64_t bytes) {
  const double v = static_cast<double>(bytes);
  if (v >= 0x1p30) return fmt::format("{:.2f} GiB", v / 0x1p30);
  if (v >= 0x1p20) return fmt::format("{:.2f} MiB", v / 0x1p20);
  if (v >= 0x1p10) return fmt::format("{:.2f} KiB", v / 0x1p10);
  return fmt::format("{} B", bytes);
}

std::string billions(int64_t n) {
  return fmt::format("{:.3f}B", static_cast<double>(n) / 1e9);
}

}  // namespace

json estimate_to_json(const Estimate& e) {
  json weights = json::array();
  for (const WeightClassBytes& w : e.weights) {
    if (w.params == 0 && w.bytes == 0) continue;
    weights.push_back({{"class", weight_class_name(w.cls)},
                       {"params", w.params},
                       {"bytes", w.bytes},
                       {"scale_bytes", w.scale_bytes},
                       {"bytes_by_dtype", w.bytes_by_dtype}});
  }
  const ActivationBytes& a = e.activations;
  const OverheadBytes& o = e.overhead;
  const RuleOfThumb& r = e.rule;
  const double est_gb = static_cast<double>(e.total) / 1e9;
  json j = {
      {"model", e.model},
      {"kind", e.kind},
      {"architecture", arch_name(e.config.arch)},
      {"precision", e.precision},
      {"kv_dtype", e.kv_dtype},
      {"batch", e.batch},
      {"ctx", e.ctx},
      {"ctx_allocated", e.ctx_allocated},
      {"params", e.params},
      {"params_mtp", e.params_mtp},
      {"params_mtp_stored", e.params_mtp_stored},
      {"weights", weights},
      {"weight_bytes", e.weight_bytes},
      {"embedding_bytes", e.embedding_bytes},
      {"anonymous_bytes", e.total - e.overhead.code},
      {"kv_cache",
       {{"values_per_token_per_layer", e.kv_width},
        {"layers", e.config.num_hidden_layers},
        {"bytes_per_token", e.kv_bytes_per_token},
        {"tokens", e.batch * e.ctx_allocated},
        {"bytes", e.kv_bytes}}},
      {"activations",
       {{"step_tokens", a.step_tokens},
        {"logits_rows", a.logits_rows},
        {"residual", a.residual},
        {"logits", a.logits},
        {"attention", a.attention},
        {"dense_mlp", a.mlp},
        {"moe", a.moe},
        {"output", a.output},
        {"peak", a.peak}}},
      {"overhead",
       {{"norms_f32", o.norms_f32},
        {"biases_f32", o.biases_f32},
        {"router_f32", o.router_f32},
        {"mla_absorbed_f32", o.mla_absorbed_f32},
        {"sampler", o.sampler},
        {"code", o.code},
        {"tokenizer", o.tokenizer},
        {"gguf_file", o.gguf_file},
        {"gguf_metadata", o.gguf_metadata},
        {"process_baseline", o.baseline},
        {"total", o.total}}},
      {"serve", e.serve ? json{{"http_threads", e.serve->http_threads},
                               {"thread_starts", e.serve->thread_starts},
                               {"requests_in_flight", e.serve->requests_in_flight},
                               {"per_sequence", e.serve->per_sequence},
                               {"runtime", e.serve->runtime},
                               {"total", e.serve->total}}
                        : json(nullptr)},
      {"total_bytes", e.total},
      {"rule_of_thumb",
       {{"formula", "params_billion * 2 GB + batch * seq * 0.5 GB (GB = 1e9 bytes)"},
        {"params_billion", r.params_billion},
        {"weights_gb", r.weights_gb},
        {"kv_gb", r.kv_gb},
        {"total_gb", r.total_gb},
        {"ratio_to_estimate", r.total_gb / est_gb},
        {"kv_gb_seq_in_thousands", r.kv_gb_seq_in_thousands},
        {"total_gb_seq_in_thousands", r.total_gb_seq_in_thousands},
        {"ratio_to_estimate_seq_in_thousands", r.total_gb_seq_in_thousands / est_gb},
        {"estimate_gb", est_gb}}},
  };
  if (e.memory) {
    j["memory"] = {{"bytes", *e.memory},
                   {"fits", e.fits},
                   {"max_batch_at_ctx", e.max_batch},
                   {"max_ctx_at_batch", e.max_ctx},
                   {"max_ctx_limited_by", e.max_ctx_limited_by}};
  } else {
    j["memory"] = nullptr;
  }
  return j;
}

std::string format_estimate(const Estimate& e) {
  std::string out = fmt::format(
      "{} ({}, {}): {} parameters, weights {}, KV cache {}, batch {} × ctx {}\n", e.model, e.kind,
      arch_name(e.config.arch), billions(e.params), e.precision, e.kv_dtype, e.batch, e.ctx);
  if (e.params_mtp > 0) {
    out += fmt::format(
        "  (+ MTP layer, not loaded: {} own parameters, {} as the checkpoint stores it → {} "
        "in the checkpoint)\n",
        billions(e.params_mtp), billions(e.params_mtp_stored),
        billions(e.params + e.params_mtp_stored));
  }
  out += fmt::format("\nweights{:>29}  {:>12}  {}\n", "params", "bytes", "by dtype");
  for (const WeightClassBytes& w : e.weights) {
    if (w.params == 0 && w.bytes == 0) continue;
    std::string mix;
    for (const auto& [k, v] : w.bytes_by_dtype)
      mix += fmt::format("{}{} {}", mix.empty() ? "" : ", ", k, gib(v));
    out += fmt::format("  {:<16} {:>18}  {:>12}  {}\n", weight_class_name(w.cls),
                       billions(w.params), gib(w.bytes), mix);
  }
  out += fmt::format("  {:<16} {:>18}  {:>12}\n", "total (loaded)", "", gib(e.weight_bytes));
  out += fmt::format(
      "\nKV cache: {} values per token per layer × {} layers = {} per token ({}); "
      "{} × {} tokens = {}\n",
      e.kv_width, e.config.num_hidden_layers, gib(e.kv_bytes_per_token), e.kv_dtype, e.batch,
      e.ctx_allocated, gib(e.kv_bytes));
  const ActivationBytes& a = e.activations;
  out += fmt::format(
      "activations (step of {} tokens, {} logits rows): residual {}, logits {}, attention {}, "
      "dense MLP {}, MoE {}, output {} → peak {}\n",
      a.step_tokens, a.logits_rows, gib(a.residual), gib(a.logits), gib(a.attention), gib(a.mlp),
      gib(a.moe), gib(a.output), gib(a.peak));
  const OverheadBytes& o = e.overhead;
  out += fmt::format(
      "overhead: f32 norms {}, biases {}, router {}, MLA W_UKᵀ/W_UV {}, sampler {}; process: "
      "code {}, tokenizer {}, GGUF header {}, GGUF parsed metadata {} → {}\n",
      gib(o.norms_f32), gib(o.biases_f32), gib(o.router_f32), gib(o.mla_absorbed_f32),
      gib(o.sampler), gib(o.code), gib(o.tokenizer), gib(o.gguf_file), gib(o.gguf_metadata),
      gib(o.total));
  if (e.serve) {
    const ServeBytes& s = *e.serve;
    out += fmt::format(
        "serve: {} HTTP threads started {}, {} requests in flight {}, per sequence {}, runtime "
        "{} → {}\n",
        s.http_threads, gib(s.thread_starts), e.batch, gib(s.requests_in_flight),
        gib(s.per_sequence), gib(s.runtime), gib(s.total));
  }
  out += fmt::format("\ntotal: {} ({:.2f} GB)\n", gib(e.total), static_cast<double>(e.total) / 1e9);
  if (e.memory) {
    out += fmt::format(
        "memory {}: {}; largest batch at ctx {}: {}; largest ctx at batch {}: {} (limited by "
        "{})\n",
        gib(*e.memory), e.fits ? "fits" : "does NOT fit", e.ctx, e.max_batch, e.batch, e.max_ctx,
        e.max_ctx_limited_by);
  }
  const RuleOfThumb& r = e.rule;
  const double est_gb = static_cast<double>(e.total) / 1e9;
  out += fmt::format(
      "\nrule of thumb (params × 2 GB + batch × seq × 0.5 GB, params in billions, seq in "
      "tokens, GB = 1e9 B):\n  {:.1f} × 2 = {:.1f} GB + {} × {} × 0.5 = {:.1f} GB → {:.1f} GB, "
      "{:.2f}× the estimate ({:.1f} GB)\n  read with seq in thousands of tokens: {:.1f} GB KV → "
      "{:.1f} GB, {:.2f}× the estimate\n",
      r.params_billion, r.weights_gb, e.batch, e.ctx, r.kv_gb, r.total_gb, r.total_gb / est_gb,
      est_gb, r.kv_gb_seq_in_thousands, r.total_gb_seq_in_thousands,
      r.total_gb_seq_in_thousands / est_gb);
  return out;
}

void add_estimate_command(CLI::App& app, CommandContext& ctx) {
  struct Opts {
    std::string model, dtype, kv_dtype = "f32", memory, gpus;
    EstimateOptions estimate;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand(
      "estimate", "Memory and capacity planning: what a model needs and what fits a budget");
  sub->add_option("model", o->model,
                  "Preset name (deepseek-v3, deepseek-r1, deepseek-v2-lite, r1-distill-*, tiny-*), "
                  "HF folder, config.json or .gguf file")
      ->required();
  sub->add_option("--dtype", o->dtype,
                  "Weight precision to plan for: f32, f16, bf16, fp8, q8_0, q4_0 (default: as "
                  "stored for a file, the config's torch_dtype otherwise)");
  sub->add_option("--kv-dtype", o->kv_dtype, "KV cache type: f32, bf16 or fp8")
      ->capture_default_str();
  sub->add_option("--batch", o->estimate.batch, "Concurrent sequences")->capture_default_str();
  sub->add_option("--ctx", o->estimate.ctx, "Context length per sequence (tokens)")
      ->capture_default_str();
  sub->add_option("--step-tokens", o->estimate.step_tokens,
                  "Tokens in the largest forward step (0 = min(batch × ctx, 4096))")
      ->capture_default_str();
  sub->add_flag("--all-logits", o->estimate.all_logits,
                "Logits for every step token (logits, perplexity), not one per sequence");
  sub->add_option("--threads", o->estimate.threads, "Worker threads (0 = this machine's cores)")
      ->capture_default_str();
  sub->add_flag("--serve", o->estimate.serve,
                "Plan for `seekserve serve` with --batch = its --max-num-seqs: add its HTTP "
                "threads, requests in flight and per-sequence state");
  sub->add_option("--max-queue", o->estimate.max_queue, "With --serve: serve's --max-queue")
      ->capture_default_str();
  sub->add_option("--http-threads", o->estimate.http_threads,
                  "With --serve: serve's --http-threads (0 = serve's default, 2)")
      ->capture_default_str();
  auto* mem = sub->add_option("--memory", o->memory, "Memory budget: 24GiB, 80GB, 512MiB, bytes");
  auto* gpus = sub->add_option("--gpus", o->gpus, "Devices as COUNTxSIZE (8x80GiB = the total)");
  mem->excludes(gpus);
  sub->add_flag("--json", o->json, "Print JSON for machines (every figure)");
  sub->callback([o, &ctx] {
    auto run = [&]() -> Status {
      EstimateOptions opts = o->estimate;
      if (!o->dtype.empty()) {
        auto d = dtype_from_name(o->dtype);
        if (!d)
          return invalid_argument("--dtype: '{}' is not f32, f16, bf16, fp8, q8_0 or q4_0",
                                  o->dtype);
        opts.precision = *d;
      }
      auto kv = dtype_from_name(o->kv_dtype);
      if (!kv) return invalid_argument("--kv-dtype: '{}' is not f32, bf16 or fp8", o->kv_dtype);
      opts.kv_dtype = *kv;
      if (!o->memory.empty()) {
        SEEK_ASSIGN_OR_RETURN(opts.memory, parse_memory_size(o->memory, "--memory"));
      } else if (!o->gpus.empty()) {
        if (o->gpus.find_first_of("xX") == std::string::npos) {
          return invalid_argument("--gpus: '{}' is not COUNTxSIZE (e.g. 8x80GiB)", o->gpus);
        }
        SEEK_ASSIGN_OR_RETURN(opts.memory, parse_memory_size(o->gpus, "--gpus"));
      }
      SEEK_ASSIGN_OR_RETURN(ModelSource src, load_model_source(o->model));
      SEEK_ASSIGN_OR_RETURN(Estimate e, estimate_memory(src, opts));
      const std::string text = o->json ? estimate_to_json(e).dump(2) + "\n" : format_estimate(e);
      std::fwrite(text.data(), 1, text.size(), stdout);
      return Status::ok_status();
    };
    ctx.exit_code = exit_code_for(run());
  });
}

}  // namespace seekserve

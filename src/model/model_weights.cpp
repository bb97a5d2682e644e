#include "model/model_weights.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <thread>

#include <fmt/format.h>

#include "core/quant.h"
#include "formats/gguf.h"
#include "formats/gguf_model.h"
#include "formats/hf_config.h"
#include "formats/safetensors.h"

namespace seekserve {
namespace {

namespace fs = std::filesystem;

// One tensor as stored, whatever the file format; shape in PyTorch order.
struct RawTensor {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;
  const float* scale_inv = nullptr;
};

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// Looks tensors up by HF name in whichever file the model came from.
class TensorSource {
 public:
  virtual ~TensorSource() = default;
  virtual Result<RawTensor> find(const std::string& hf_name) const = 0;
  virtual bool has(const std::string& hf_name) const = 0;
  virtual const std::string& path() const = 0;
};

class SafetensorsSource : public TensorSource {
 public:
  SafetensorsSource(std::shared_ptr<SafetensorsModel> model, std::string path)
      : model_(std::move(model)), path_(std::move(path)) {}
  Result<RawTensor> find(const std::string& name) const override {
    const SafetensorsTensor* t = model_->find(name);
    if (t == nullptr) return data_loss("{}: tensor {}: missing", path_, name);
    RawTensor r{name, t->dtype, t->shape, t->data.data(), nullptr};
    if (t->dtype == DType::kF8E4M3) {
      SEEK_ASSIGN_OR_RETURN(const SafetensorsTensor* s, model_->scale_inv_for(*t));
      if (s == nullptr)
        return data_loss("{}: tensor {}: FP8 weight without {}_scale_inv", path_, name, name);
      r.scale_inv = reinterpret_cast<const float*>(s->data.data());
    }
    return r;
  }
  bool has(const std::string& name) const override { return model_->find(name) != nullptr; }
  const std::string& path() const override { return path_; }

 private:
  std::shared_ptr<SafetensorsModel> model_;
  std::string path_;
};

class GgufSource : public TensorSource {
 public:
  GgufSource(std::shared_ptr<GgufFile> file, const ModelConfig& config)
      : file_(std::move(file)), path_(file_->name()) {
    for (const GgufTensorPlan& p : gguf_tensor_plan(config, MlaGgufLayout::kFused)) {
      if (p.transform == GgufTransform::kCopy || p.transform == GgufTransform::kPermuteRope) {
        by_hf_[p.sources.at(0)] = p.name;
      } else if (p.transform == GgufTransform::kStackExperts) {
        for (size_t e = 0; e < p.sources.size(); ++e)
          experts_[p.sources[e]] = {p.name, static_cast<int64_t>(e)};
      }
    }
  }
  Result<RawTensor> find(const std::string& name) const override {
    if (auto it = by_hf_.find(name); it != by_hf_.end()) return find_gguf(it->second);
    if (auto it = experts_.find(name); it != experts_.end()) {
      SEEK_ASSIGN_OR_RETURN(RawTensor stacked, find_gguf(it->second.first));
      if (stacked.shape.size() != 3) {
        return data_loss("{}: tensor {}: expected 3 dims (experts outermost)", path_, stacked.name);
      }
      const int64_t e = it->second.second;
      if (e >= stacked.shape[0])
        return data_loss("{}: tensor {}: has no expert {}", path_, stacked.name, e);
      const uint64_t slice =
          *dtype_bytes(stacked.dtype, static_cast<uint64_t>(stacked.shape[1] * stacked.shape[2]));
      return RawTensor{stacked.name + fmt::format("[{}]", e),
                       stacked.dtype,
                       {stacked.shape[1], stacked.shape[2]},
                       stacked.data + static_cast<uint64_t>(e) * slice,
                       nullptr};
    }
    return data_loss("{}: no GGUF tensor for {}", path_, name);
  }
  bool has(const std::string& name) const override {
    auto it = by_hf_.find(name);
    return it != by_hf_.end() && file_->find_tensor(it->second) != nullptr;
  }
  Result<RawTensor> find_gguf(const std::string& gguf_name) const {
    const GgufTensorInfo* t = file_->find_tensor(gguf_name);
    if (t == nullptr) return data_loss("{}: tensor {}: missing", path_, gguf_name);
    std::vector<int64_t> shape(t->dims.rbegin(), t->dims.rend());
    return RawTensor{gguf_name, t->dtype, shape, t->data, nullptr};
  }
  const std::string& path() const override { return path_; }
  const GgufFile& file() const { return *file_; }

 private:
  std::shared_ptr<GgufFile> file_;
  std::string path_;
  std::map<std::string, std::string> by_hf_;
  std::map<std::string, std::pair<std::string, int64_t>> experts_;
};

class Binder {
 public:
  Binder(const TensorSource& source, ModelWeights& weights) : src_(source), w_(weights) {}

  Result<WeightView> matrix(const std::string& name, int64_t rows, int64_t cols) {
    SEEK_ASSIGN_OR_RETURN(RawTensor t, src_.find(name));
    SEEK_RETURN_IF_ERROR(expect_shape(t, {rows, cols}));
    WeightView v{t.dtype, t.data, rows, cols, t.scale_inv};
    Status s = validate_weight(v);
    if (!s.ok()) return data_loss("{}: tensor {}: {}", src_.path(), t.name, s.message());
    return v;
  }

  // A 1-D (or any) tensor converted to f32; `expected` elements.
  Result<std::vector<float>> vector(const std::string& name, int64_t expected) {
    SEEK_ASSIGN_OR_RETURN(RawTensor t, src_.find(name));
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    if (n != expected) {
      return data_loss("{}: tensor {}: {} elements {}, the config needs {}", src_.path(), t.name, n,
                       shape_string(t.shape), expected);
    }
    return to_f32(t, n);
  }

  // The whole tensor as f32 rows (FP8 block scales applied): [rows, cols].
  Result<std::vector<float>> dense(const std::string& name, int64_t rows, int64_t cols) {
    SEEK_ASSIGN_OR_RETURN(WeightView v, matrix(name, rows, cols));
    std::vector<float> out(static_cast<size_t>(rows * cols));
    for (int64_t r = 0; r < rows; ++r) weight_row_to_f32(v, r, out.data() + r * cols);
    return out;
  }

  Result<MlpWeights> mlp(const std::string& prefix, int64_t hidden, int64_t inter) {
    MlpWeights m;
    SEEK_ASSIGN_OR_RETURN(m.gate, matrix(prefix + ".gate_proj.weight", inter, hidden));
    SEEK_ASSIGN_OR_RETURN(m.up, matrix(prefix + ".up_proj.weight", inter, hidden));
    SEEK_ASSIGN_OR_RETURN(m.down, matrix(prefix + ".down_proj.weight", hidden, inter));
    return m;
  }

  // An f32 buffer owned by the model, viewed as a matrix.
  WeightView own(std::vector<float> data, int64_t rows, int64_t cols) {
    auto buffer = std::make_shared<std::vector<float>>(std::move(data));
    w_.keep_alive.push_back(buffer);
    return WeightView{DType::kF32, buffer->data(), rows, cols, nullptr};
  }

 private:
  Status expect_shape(const RawTensor& t, const std::vector<int64_t>& want) {
    if (t.shape != want) {
      return data_loss("{}: tensor {}: shape {}, the config needs {}", src_.path(), t.name,
                       shape_string(t.shape), shape_string(want));
    }
    return Status::ok_status();
  }
  std::vector<float> to_f32(const RawTensor& t, int64_t n) {
    std::vector<float> out(static_cast<size_t>(n));
    if (t.dtype == DType::kF8E4M3 && t.scale_inv != nullptr && t.shape.size() == 2) {
      WeightView v{t.dtype, t.data, t.shape[0], t.shape[1], t.scale_inv};
      for (int64_t r = 0; r < t.shape[0]; ++r) weight_row_to_f32(v, r, out.data() + r * t.shape[1]);
    } else {
      dequantize_row(t.dtype, t.data, out.data(), n);
    }
    return out;
  }

  const TensorSource& src_;
  ModelWeights& w_;
};

Status check_config(const ModelConfig& c, const std::string& path) {
  if (c.hidden_size <= 0 || c.num_hidden_layers <= 0 || c.num_attention_heads <= 0 ||
      c.vocab_size <= 0) {
    return data_loss(
        "{}: config: hidden_size, num_hidden_layers, num_attention_heads and vocab_size must be "
        "positive",
        path);
  }
  if (!c.is_mla() && (c.head_dim <= 0 || c.head_dim % 2 != 0)) {
    return data_loss("{}: config: head_dim {} must be positive and even", path, c.head_dim);
  }
  if (c.is_mla() && (c.qk_rope_head_dim % 2 != 0 || c.qk_nope_head_dim <= 0 || c.v_head_dim <= 0)) {
    return data_loss("{}: config: MLA head sizes (nope {}, rope {}, v {}) are not usable", path,
                     c.qk_nope_head_dim, c.qk_rope_head_dim, c.v_head_dim);
  }
  return Status::ok_status();
}

Status bind_mla(Binder& b, const TensorSource& src, const ModelConfig& c, int64_t il,
                LayerWeights& L, const GgufSource* gguf) {
  const std::string p = fmt::format("model.layers.{}.self_attn.", il);
  const int64_t h = c.num_attention_heads, nope = c.qk_nope_head_dim, rope = c.qk_rope_head_dim;
  const int64_t v = c.v_head_dim, r = c.kv_lora_rank;
  if (c.q_lora_rank > 0) {
    SEEK_ASSIGN_OR_RETURN(L.wq_a, b.matrix(p + "q_a_proj.weight", c.q_lora_rank, c.hidden_size));
    SEEK_ASSIGN_OR_RETURN(L.q_a_norm, b.vector(p + "q_a_layernorm.weight", c.q_lora_rank));
    SEEK_ASSIGN_OR_RETURN(L.wq_b,
                          b.matrix(p + "q_b_proj.weight", h * (nope + rope), c.q_lora_rank));
  } else {
    SEEK_ASSIGN_OR_RETURN(L.wq_b, b.matrix(p + "q_proj.weight", h * (nope + rope), c.hidden_size));
  }
  SEEK_ASSIGN_OR_RETURN(L.wkv_a,
                        b.matrix(p + "kv_a_proj_with_mqa.weight", r + rope, c.hidden_size));
  SEEK_ASSIGN_OR_RETURN(L.kv_a_norm, b.vector(p + "kv_a_layernorm.weight", r));
  SEEK_ASSIGN_OR_RETURN(L.wo, b.matrix(p + "o_proj.weight", c.hidden_size, h * v));
  const std::string kb_name = fmt::format("blk.{}.attn_k_b.weight", il);
  if (gguf != nullptr && gguf->file().find_tensor(kb_name) != nullptr) {
    // Split layout: attn_k_b [H, r, nope] = per head W_UKᵀ; attn_v_b [H, v, r] = per head W_UV.
    SEEK_ASSIGN_OR_RETURN(RawTensor kb, gguf->find_gguf(kb_name));
    SEEK_ASSIGN_OR_RETURN(RawTensor vb, gguf->find_gguf(fmt::format("blk.{}.attn_v_b.weight", il)));
    if (kb.shape != std::vector<int64_t>{h, r, nope} || vb.shape != std::vector<int64_t>{h, v, r}) {
      return data_loss(
          "{}: tensors {} / {}: shapes {} / {}, the config needs [{}, {}, {}] / [{}, {}, {}]",
          src.path(), kb.name, vb.name, shape_string(kb.shape), shape_string(vb.shape), h, r, nope,
          h, v, r);
    }
    const uint64_t kb_head = *dtype_bytes(kb.dtype, static_cast<uint64_t>(r * nope));
    const uint64_t vb_head = *dtype_bytes(vb.dtype, static_cast<uint64_t>(v * r));
    for (int64_t hh = 0; hh < h; ++hh) {
      WeightView k{kb.dtype, kb.data + static_cast<uint64_t>(hh) * kb_head, r, nope, nullptr};
      WeightView vv{vb.dtype, vb.data + static_cast<uint64_t>(hh) * vb_head, v, r, nullptr};
      for (const WeightView* w : {&k, &vv}) {
        Status s = validate_weight(*w);
        if (!s.ok()) return data_loss("{}: tensor {}: {}", src.path(), kb.name, s.message());
      }
      L.w_uk_t.push_back(k);
      L.w_uv.push_back(vv);
    }
    return Status::ok_status();
  }
  // kv_b_proj [H*(nope+v), r]: head h's first nope rows are W_UK_h, the next v rows W_UV_h.
  SEEK_ASSIGN_OR_RETURN(std::vector<float> kv_b,
                        b.dense(p + "kv_b_proj.weight", h * (nope + v), r));
  for (int64_t hh = 0; hh < h; ++hh) {
    std::vector<float> uk_t(static_cast<size_t>(r * nope)), uv(static_cast<size_t>(v * r));
    const float* head = kv_b.data() + hh * (nope + v) * r;
    for (int64_t i = 0; i < nope; ++i)
      for (int64_t j = 0; j < r; ++j) uk_t[static_cast<size_t>(j * nope + i)] = head[i * r + j];
    std::copy(head + nope * r, head + (nope + v) * r, uv.begin());
    L.w_uk_t.push_back(b.own(std::move(uk_t), r, nope));
    L.w_uv.push_back(b.own(std::move(uv), v, r));
  }
  return Status::ok_status();
}

Status bind_gqa(Binder& b, const ModelConfig& c, int64_t il, LayerWeights& L) {
  const std::string p = fmt::format("model.layers.{}.self_attn.", il);
  const int64_t q_dim = c.num_attention_heads * c.head_dim,
                kv_dim = c.num_key_value_heads * c.head_dim;
  SEEK_ASSIGN_OR_RETURN(L.wq, b.matrix(p + "q_proj.weight", q_dim, c.hidden_size));
  SEEK_ASSIGN_OR_RETURN(L.wk, b.matrix(p + "k_proj.weight", kv_dim, c.hidden_size));
  SEEK_ASSIGN_OR_RETURN(L.wv, b.matrix(p + "v_proj.weight", kv_dim, c.hidden_size));
  SEEK_ASSIGN_OR_RETURN(L.wo, b.matrix(p + "o_proj.weight", c.hidden_size, q_dim));
  if (c.attention_bias) {
    SEEK_ASSIGN_OR_RETURN(L.bq, b.vector(p + "q_proj.bias", q_dim));
    SEEK_ASSIGN_OR_RETURN(L.bk, b.vector(p + "k_proj.bias", kv_dim));
    SEEK_ASSIGN_OR_RETURN(L.bv, b.vector(p + "v_proj.bias", kv_dim));
  }
  return Status::ok_status();
}

Status bind_all(const TensorSource& src, ModelWeights& w, const GgufSource* gguf) {
  const ModelConfig& c = w.config;
  SEEK_RETURN_IF_ERROR(check_config(c, src.path()));
  Binder b(src, w);
  SEEK_ASSIGN_OR_RETURN(w.embed,
                        b.matrix("model.embed_tokens.weight", c.vocab_size, c.hidden_size));
  SEEK_ASSIGN_OR_RETURN(w.final_norm, b.vector("model.norm.weight", c.hidden_size));
  if (c.tie_word_embeddings) {
    w.lm_head = w.embed;
  } else {
    SEEK_ASSIGN_OR_RETURN(w.lm_head, b.matrix("lm_head.weight", c.vocab_size, c.hidden_size));
  }
  w.layers.resize(static_cast<size_t>(c.num_hidden_layers));
  for (int64_t il = 0; il < c.num_hidden_layers; ++il) {
    LayerWeights& L = w.layers[static_cast<size_t>(il)];
    const std::string p = fmt::format("model.layers.{}.", il);
    SEEK_ASSIGN_OR_RETURN(L.attn_norm, b.vector(p + "input_layernorm.weight", c.hidden_size));
    SEEK_ASSIGN_OR_RETURN(L.ffn_norm,
                          b.vector(p + "post_attention_layernorm.weight", c.hidden_size));
    if (c.is_mla()) {
      SEEK_RETURN_IF_ERROR(bind_mla(b, src, c, il, L, gguf));
    } else {
      SEEK_RETURN_IF_ERROR(bind_gqa(b, c, il, L));
    }
    if (c.layer_is_moe(il)) {
      L.is_moe = true;
      SEEK_ASSIGN_OR_RETURN(L.router,
                            b.vector(p + "mlp.gate.weight", c.n_routed_experts * c.hidden_size));
      if (c.topk_method == "noaux_tc") {
        SEEK_ASSIGN_OR_RETURN(L.router_bias,
                              b.vector(p + "mlp.gate.e_score_correction_bias", c.n_routed_experts));
      }
      for (int64_t e = 0; e < c.n_routed_experts; ++e) {
        SEEK_ASSIGN_OR_RETURN(MlpWeights m, b.mlp(fmt::format("{}mlp.experts.{}", p, e),
                                                  c.hidden_size, c.moe_intermediate_size));
        L.experts.push_back(m);
      }
      if (c.n_shared_experts > 0) {
        L.has_shared = true;
        SEEK_ASSIGN_OR_RETURN(L.shared, b.mlp(p + "mlp.shared_experts", c.hidden_size,
                                              c.moe_intermediate_size * c.n_shared_experts));
      }
    } else {
      SEEK_ASSIGN_OR_RETURN(L.mlp, b.mlp(p + "mlp", c.hidden_size, c.intermediate_size));
    }
  }
  return Status::ok_status();
}

// kAuto resolved for model files of `bytes` in all.
WeightMemory resolve_memory(WeightMemory asked, uint64_t bytes) {
  if (asked != WeightMemory::kAuto) return asked;
  if (const char* env = std::getenv("SEEKSERVE_WEIGHT_MEMORY"); env != nullptr) {
    if (auto m = weight_memory_from_name(env); m && *m != WeightMemory::kAuto) return *m;
  }
  const uint64_t available = available_memory_bytes();
  if (available == 0) return WeightMemory::kMmap;
  return static_cast<double>(bytes) <= 0.9 * static_cast<double>(available) ? WeightMemory::kCopy
                                                                            : WeightMemory::kMmap;
}

MapOptions map_options(WeightMemory m) {
  MapOptions o;
  o.mode = m == WeightMemory::kCopy ? MapMode::kCopy : MapMode::kMmap;
  return o;
}

Result<std::unique_ptr<ModelWeights>> load_hf(const std::string& dir, const LoadOptions& options) {
  auto w = std::make_unique<ModelWeights>();
  w->source = dir;
  SEEK_ASSIGN_OR_RETURN(w->config, load_hf_config(dir + "/config.json"));
  SEEK_ASSIGN_OR_RETURN(w->tokenizer, load_tokenizer_json(dir + "/tokenizer.json"));
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() == ".safetensors") w->mapped_bytes += entry.file_size();
  }
  w->memory = resolve_memory(options.memory, w->mapped_bytes);
  SEEK_ASSIGN_OR_RETURN(SafetensorsModel st, SafetensorsModel::open(dir, map_options(w->memory)));
  auto model = std::make_shared<SafetensorsModel>(std::move(st));
  w->keep_alive.push_back(model);
  SafetensorsSource src(model, dir);
  SEEK_RETURN_IF_ERROR(bind_all(src, *w, nullptr));
  const ModelConfig& c = w->config;
  w->rope = c.is_mla() ? Rope(c, c.qk_rope_head_dim, RopePairing::kAdjacent)
                       : Rope(c, c.head_dim, RopePairing::kRotateHalf);
  return w;
}

// Every matrix a model binds, for the load-time repacking.
std::vector<WeightView*> bound_matrices(ModelWeights& w) {
  std::vector<WeightView*> out = {&w.embed, &w.lm_head};
  auto mlp = [&](MlpWeights& m) {
    for (WeightView* v : {&m.gate, &m.up, &m.down}) out.push_back(v);
  };
  for (LayerWeights& L : w.layers) {
    for (WeightView* v : {&L.wq, &L.wk, &L.wv, &L.wo, &L.wq_a, &L.wq_b, &L.wkv_a}) out.push_back(v);
    for (WeightView& v : L.w_uk_t) out.push_back(&v);
    for (WeightView& v : L.w_uv) out.push_back(&v);
    mlp(L.mlp);
    for (MlpWeights& e : L.experts) mlp(e);
    mlp(L.shared);
  }
  return out;
}

// Repacks, in place in the private copy, the file's Q8_0/Q4_0 matrices that the VNNI kernel
// would run (rows16_packing_pays). Views of the same bytes (a tied lm_head) are packed once;
// matrices whose bytes overlap another's differently, or lie outside the file, keep the file's
// layout. Groups of 16 rows are spread over a few threads.
Status pack_gguf_matrices(GgufFile& file, ModelWeights& w) {
  struct Range {
    const uint8_t* begin;
    const uint8_t* end;
    std::vector<WeightView*> views;  // of exactly these bytes and shape
    bool clash = false;              // overlaps another range: keep the file's layout
  };
  std::vector<Range> ranges;
  for (WeightView* v : bound_matrices(w)) {
    if (v->data == nullptr || !rows16_packing_pays(*v)) continue;
    const auto* begin = static_cast<const uint8_t*>(v->data);
    const uint64_t bytes = *dtype_bytes(v->dtype, static_cast<uint64_t>(v->rows * v->cols));
    ranges.push_back({begin, begin + bytes, {v}});
  }
  std::sort(ranges.begin(), ranges.end(),
            [](const Range& a, const Range& b) { return a.begin < b.begin; });
  std::vector<Range> merged;
  for (Range& r : ranges) {
    Range* last = merged.empty() ? nullptr : &merged.back();
    if (last != nullptr && last->begin == r.begin && last->end == r.end &&
        last->views[0]->rows == r.views[0]->rows && last->views[0]->dtype == r.views[0]->dtype) {
      last->views.push_back(r.views[0]);
      continue;
    }
    for (Range& m : merged) {
      if (r.begin < m.end) m.clash = r.clash = true;
    }
    merged.push_back(std::move(r));
  }
  constexpr int64_t kGroupsPerTask = 64;
  return file.rewrite([&](uint8_t* bytes) {
    std::vector<std::pair<size_t, int64_t>> work;  // (range, first group)
    for (size_t i = 0; i < merged.size(); ++i) {
      Range& r = merged[i];
      if (r.begin < bytes || r.end > bytes + file.file_size()) r.clash = true;  // not file bytes
      if (r.clash) continue;
      for (int64_t g = 0; g < rows16_groups(*r.views[0]); g += kGroupsPerTask) {
        work.emplace_back(i, g);
      }
    }
    std::atomic<size_t> next{0};
    auto worker = [&] {
      for (size_t t = next++; t < work.size(); t = next++) {
        const auto [i, g] = work[t];
        const WeightView& v = *merged[i].views[0];
        pack_weight_rows16(v, bytes + (merged[i].begin - bytes), g,
                           std::min(g + kGroupsPerTask, rows16_groups(v)));
      }
    };
    std::vector<std::thread> threads;
    const unsigned n_threads = std::clamp(std::thread::hardware_concurrency(), 1u, 8u);
    for (unsigned t = 1; t < n_threads; ++t) threads.emplace_back(worker);
    worker();
    for (std::thread& t : threads) t.join();
    for (const Range& r : merged) {
      if (r.clash) continue;
      for (WeightView* v : r.views) v->layout = WeightLayout::kRows16;
      w.packed_bytes += static_cast<uint64_t>(r.end - r.begin);
    }
  });
}

Result<std::unique_ptr<ModelWeights>> load_gguf(const std::string& path,
                                                const LoadOptions& options) {
  auto w = std::make_unique<ModelWeights>();
  w->source = path;
  std::error_code ec;
  w->memory = resolve_memory(options.memory, fs::file_size(path, ec));
  SEEK_ASSIGN_OR_RETURN(GgufFile gf, GgufFile::open(path, map_options(w->memory)));
  auto file = std::make_shared<GgufFile>(std::move(gf));
  w->keep_alive.push_back(file);
  w->mapped_bytes = file->file_size();
  SEEK_ASSIGN_OR_RETURN(w->config, model_config_from_gguf(*file));
  SEEK_ASSIGN_OR_RETURN(w->tokenizer, tokenizer_data_from_gguf(*file));
  GgufSource src(file, w->config);
  SEEK_RETURN_IF_ERROR(bind_all(src, *w, &src));
  if (options.pack_weights && file->map_mode() == MapMode::kCopy) {
    const auto t0 = std::chrono::steady_clock::now();
    SEEK_RETURN_IF_ERROR(pack_gguf_matrices(*file, *w));
    w->pack_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  const ModelConfig& c = w->config;
  if (c.is_mla()) {
    w->rope = Rope(c, c.qk_rope_head_dim, RopePairing::kAdjacent);
  } else if (c.arch == Arch::kLlama) {
    // llama.cpp permuted q/k rows to adjacent pairs; llama3 scaling is in rope_freqs.
    std::vector<float> factors;
    if (file->find_tensor("rope_freqs.weight") != nullptr) {
      SEEK_ASSIGN_OR_RETURN(RawTensor f, src.find_gguf("rope_freqs.weight"));
      if (f.shape != std::vector<int64_t>{c.head_dim / 2} || f.dtype != DType::kF32) {
        return data_loss("{}: tensor rope_freqs.weight: want f32 [{}]", path, c.head_dim / 2);
      }
      const float* p = reinterpret_cast<const float*>(f.data);
      factors.assign(p, p + c.head_dim / 2);
    }
    w->rope = Rope(c, c.head_dim, RopePairing::kAdjacent, factors);
  } else {
    w->rope = Rope(c, c.head_dim, RopePairing::kRotateHalf);
  }
  return w;
}

}  // namespace

std::optional<WeightMemory> weight_memory_from_name(std::string_view name) {
  if (name == "auto") return WeightMemory::kAuto;
  if (name == "mmap") return WeightMemory::kMmap;
  if (name == "copy") return WeightMemory::kCopy;
  return std::nullopt;
}

const char* weight_memory_name(WeightMemory m) {
  switch (m) {
    case WeightMemory::kAuto:
      return "auto";
    case WeightMemory::kMmap:
      return "mmap";
    case WeightMemory::kCopy:
      return "copy";
  }
  return "?";
}

Result<std::unique_ptr<ModelWeights>> load_model_weights(const std::string& path,
                                                         const LoadOptions& options) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) return load_hf(path, options);
  if (!fs::exists(path, ec)) return not_found("{}: no such model file or folder", path);
  return load_gguf(path, options);
}

}  // namespace seekserve

